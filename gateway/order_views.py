"""Read-side views of the orders area (orders.md §1.7, §1.8, §1.10), derived from documents only, so each is
rebuilt from zero by replaying the feeds and agrees with the live one whatever order the feeds arrive in."""
from gateway.viewstore import delete_view, document, merge_view, pointing_at, upsert_view, url_uuid
from shared.uris import resource_path, uuid_of

# orders.md §1.10: an assignment per responsible party of a related object; for an order, its owner.
_DONE = {"order": ("complete", "cancelled")}


def _assignment_path(related_path, assignee):
    return resource_path("assignment", url_uuid(f"stratum:assignment:{related_path}:{assignee}"))


def _order_assignments(batch, event, path, bureau, before, after):
    """Created when the order names an owner, deleted when the owner changes or the order goes, made inactive when
    the order is done; its status copy follows the order's."""
    old_owner = (before or {}).get("order_owner")
    new_owner = (after or {}).get("order_owner")
    if old_owner and old_owner != new_owner:
        delete_view(batch, _assignment_path(path, old_owner))
    if not new_owner:
        return
    target = _assignment_path(path, new_owner)
    status = after.get("status")
    doc = {"assignee_user": new_owner, "assignee_edit_group": None, "created_by": after.get("user"),
           "is_active": status not in _DONE["order"], "name": after.get("name"), "related_object_status": status,
           "related_table_name": "order", "related_uri": path, "related_uuid": event["uuid"],
           "updated": event["timestamp"]}
    upsert_view(batch, target, "assignment", bureau, doc, event["timestamp"])


# orders.md §1.7: the flat order, for exports. The order's own fields, its owner's name and e-mail, shipping from
# the order's shipping object, its line-item count and the dates it was first confirmed and completed.
_FLAT_ORDER_COPIED = ("name", "status", "created", "customer_email", "customer_id", "customer_name", "due_date",
                      "ip_sensitivity", "notes", "order_type", "application_type", "custom_field_values",
                      "quote_approved")


def _flat_order(batch, event, path, bureau, before, after):
    target = resource_path("flat-order", event["uuid"])
    if after is None:
        delete_view(batch, target)
        return
    flat = {key: after.get(key) for key in _FLAT_ORDER_COPIED}
    dates = document(batch, target)
    owner = document(batch, after.get("order_owner"))
    creator = document(batch, after.get("user"))
    shipping = after.get("shipping") or {}
    flat.update(uuid=event["uuid"], owner_name=owner.get("name"), owner_email=owner.get("email"),
                created_by=creator.get("name") or creator.get("username"),
                shipping_name=shipping.get("name"), shipping_address=shipping.get("address"),
                line_items_quantity=len(after.get("line_items") or []), updated=event["timestamp"])
    for status, key in (("confirmed", "confirmed_date"), ("complete", "completed_date")):
        if after.get("status") == status and not dates.get(key):
            flat[key] = event["timestamp"]  # the first time only
    flat.update(_order_totals(batch, after))
    upsert_view(batch, target, "flat-order", bureau, flat, event["timestamp"])


def _order_totals(batch, order):
    """The flat order's sums over its line items (orders.md §1.7): prints, model volume (mm³), material use (cm³)
    and material cost from each line item's estimates; None where no line item has the figure yet."""
    totals = {"prints_quantity": 0, "order_volume": None, "total_order_material_usage": None, "material_cost": None}

    def add(key, value):
        if value is not None:
            totals[key] = (totals[key] or 0) + value

    for path in order.get("line_items") or []:
        item = document(batch, path)
        quantity = item.get("quantity") or 0
        totals["prints_quantity"] += quantity
        volume = document(batch, item.get("model")).get("volume_mm")
        add("order_volume", volume * quantity if volume is not None else None)
        estimates = item.get("estimates") or {}
        add("total_order_material_usage", (estimates.get("materials") or {}).get("base"))
        add("material_cost", (estimates.get("cost") or {}).get("material"))
    return totals


def _refresh_flat_order_totals(batch, order_path):
    order = document(batch, order_path)
    if order:
        merge_view(batch, resource_path("flat-order", uuid_of(order_path)),
                   _order_totals(batch, order))


def _comment_action_assignments(batch, event, path, bureau, before, after):
    """A comment action's assignee has an assignment until the action is complete."""
    assignee = (after or before or {}).get("assignee_user")
    if not assignee:
        return
    target = _assignment_path(path, assignee)
    if after is None:
        delete_view(batch, target)
        return
    doc = {"assignee_user": assignee, "assignee_edit_group": None, "created_by": after.get("created_by"),
           "is_active": after.get("status") != "complete", "name": after.get("related_table_name"),
           "related_object_status": after.get("status"), "related_table_name": "comment_action",
           "related_uri": path, "related_uuid": event["uuid"], "updated": event["timestamp"]}
    upsert_view(batch, target, "assignment", bureau, doc, event["timestamp"])


# orders.md §1.8, files.md §6: the flat line item joins the line item with its order, model, materials and workflow.
# It is recomputed from the current documents whenever any of them changes, so it converges to the same rows
# whatever order the services' feeds are applied in (live, or rebuilt from zero).
_FLAT_LINE_ITEM_COPIED = ("status", "notes", "design_time", "layer_thickness", "custom_field_values",
                          "additional_costs", "model")
_FLAT_LINE_ITEM_FROM_ORDER = {"customer_email": "customer_email", "customer_name": "customer_name",
                              "due_date": "due_date", "ip_sensitivity": "ip_sensitivity",
                              "application_type": "application_type", "currency": "currency",
                              "order_customer_id": "customer_id", "order_date": "created"}


def refresh_flat_line_item(batch, path, bureau, at):
    target = resource_path("flat-line-item", uuid_of(path))
    row = batch.entry(path)
    if row is None or row.deleted:
        delete_view(batch, target)
        return
    item = row.doc
    order, model = document(batch, item.get("order")), document(batch, item.get("model"))
    materials = item.get("materials") or {}
    quantity = item.get("quantity") or 0
    size = model.get("size") or {}
    flat = {key: item.get(key) for key in _FLAT_LINE_ITEM_COPIED}
    flat.update({key: order.get(source) for key, source in _FLAT_LINE_ITEM_FROM_ORDER.items()})
    flat.update(
        uuid=uuid_of(path), prints_quantity=quantity,
        order=uuid_of(item.get("order")),
        order_created_by=document(batch, order.get("user")).get("name"),
        model_render=model.get("snapshot"),
        model_name=model.get("name"), model_updated=model.get("updated"),
        model_surface_area=model.get("surface_area_mm"),
        model_volume=model["volume_mm"] * quantity if model.get("volume_mm") is not None else None,
        print_bounding_box=size["x"] * size["y"] * size["z"] if all(size.get(k) for k in "xyz") else None,
        base_material_name=document(batch, materials.get("base")).get("name"),
        support_material_name=document(batch, materials.get("support")).get("name"),
        workflow_name=document(batch, item.get("workflow")).get("name"),
        year=(order.get("created") or "")[:4] or None, month=(order.get("created") or "")[5:7] or None,
    )
    upsert_view(batch, target, "flat-line-item", bureau, flat, at)


def _line_item_changed(batch, event, path, bureau, before, after):
    refresh_flat_line_item(batch, path, bureau, event["timestamp"])
    for order_path in {(before or {}).get("order"), (after or {}).get("order")} - {None}:
        _refresh_flat_order_totals(batch, order_path)


def _refresh_line_items_naming(*fields, reads=None):
    """A change of a document the flat line item reads (its order, model, materials, workflow) reaches the flat line
    items that point at it, whichever feed brought it first. `reads`: the only fields of that document the flat line
    item (and the flat order's totals, for a model) read, when known: an update that changes none of them leaves
    every flat line item as it is, and is skipped (an order's status or line items, changed by each command)."""
    def refresh(batch, event, path, bureau, before, after):
        if reads is not None and event["kind"] == "updated" and reads.isdisjoint(event["fields"]):
            return
        for field in fields:
            for row in pointing_at(batch, "line-item", field, path):
                refresh_flat_line_item(batch, row.path, row.bureau, event["timestamp"])
                if field == "model":  # a model's volume reaches the orders that print it
                    order_path = document(batch, row.path).get("order")
                    if order_path:
                        _refresh_flat_order_totals(batch, order_path)
    return refresh


def _user_renamed(batch, event, path, bureau, before, after):
    """A user's new name or e-mail reaches the flat orders they own or created, and the flat line items of the
    orders they created (order_created_by)."""
    if after is None or not {"name", "email", "username"} & set(event["fields"]):
        return
    for row in pointing_at(batch, "order", "order_owner", path):
        merge_view(batch, resource_path("flat-order", uuid_of(row.path)),
                   {"owner_name": after.get("name"), "owner_email": after.get("email")})
    for row in pointing_at(batch, "order", "user", path):
        merge_view(batch, resource_path("flat-order", uuid_of(row.path)),
                   {"created_by": after.get("name") or after.get("username")})
        for item in pointing_at(batch, "line-item", "order", row.path):
            refresh_flat_line_item(batch, item.path, item.bureau, event["timestamp"])


_FLAT_LINE_ITEM_READS_OF_ORDER = frozenset(_FLAT_LINE_ITEM_FROM_ORDER.values()) | {"user"}  # user: order_created_by
_FLAT_LINE_ITEM_READS_OF_NAMED = frozenset({"name"})  # a material's, a workflow's

VIEWS = {"order": (_order_assignments, _flat_order,
                   _refresh_line_items_naming("order", reads=_FLAT_LINE_ITEM_READS_OF_ORDER)),
         "users": (_user_renamed,),
         "comment-action": (_comment_action_assignments,),
         "line-item": (_line_item_changed,),
         "model": (_refresh_line_items_naming("model"),),
         "material": (_refresh_line_items_naming("materials.base", "materials.support",
                                                 reads=_FLAT_LINE_ITEM_READS_OF_NAMED),),
         "workflow": (_refresh_line_items_naming("workflow", reads=_FLAT_LINE_ITEM_READS_OF_NAMED),)}

# For gateway.projection.prefetch: the views a resource's event refreshes (by the resource's own path), and the
# documents pointing at it that they look up, so a batch reads both for all its events at once.
DERIVED_PATHS = {"order": (lambda path: [resource_path("flat-order", uuid_of(path))],),
                 "line-item": (lambda path: [resource_path("flat-line-item", uuid_of(path))],)}
POINTED = {"order": (lambda path, doc: [("line-item", "order", path)],),
           "model": (lambda path, doc: [("line-item", "model", path)],),
           "material": (lambda path, doc: [("line-item", "materials.base", path),
                                           ("line-item", "materials.support", path)],),
           "workflow": (lambda path, doc: [("line-item", "workflow", path)],),
           "users": (lambda path, doc: [("order", "order_owner", path), ("order", "user", path)],)}
