"""`/line-item-available-for-run/` (orders.md §1.17, production.md §12 F1 step 3; the reference's path was lost):
the line items with prints available for a new run, for the ADD RUN page. One row per live line item (the row's
uuid is the line item's); `available` says whether at least one of its pieces waits for a run (its current print has
no run and the status `created`), and LIST shows only those by default (`filter[available]=true`, the catalogue's
default filter). `available_quantity` counts those pieces; `available_for_printer` lists the printers of the types
those prints' steps need, so `filter[available_for_printer]=<printer>` gives what that printer can take.

Rows are recomputed from the current documents whenever a source changes (a print, a piece, the line item, its
order, model, material or workflow, a printer), as gateway.production_views does, so the live read side and one
rebuilt in any feed order agree: a row exists exactly while its line item does, and a removed one is an empty
tombstone.
"""
from gateway.batch import Entry
from gateway.viewstore import document, pointing_at, upsert_view
from shared.uris import resource_path, uuid_of

VIEW = "line-item-available-for-run"


def _live(batch, path):
    entry = batch.entry(path) if path else None
    return entry.doc if entry is not None and not entry.deleted else None


def row_path(line_item_path):
    return resource_path(VIEW, uuid_of(line_item_path))


def refresh(batch, line_item_path):
    target = row_path(line_item_path)
    item = _live(batch, line_item_path)
    available, types = 0, []
    if item is not None:
        for ref in pointing_at(batch, "piece", "line_item", line_item_path):
            piece = document(batch, ref.path)
            current = _live(batch, piece.get("current_print"))
            if current is None or current.get("run") or current.get("status") != "created" or piece.get(
                    "status") in ("complete", "cancelled", "incomplete"):
                continue
            available += 1
            if current.get("workstation_type_uri") and current["workstation_type_uri"] not in types:
                types.append(current["workstation_type_uri"])
    if item is None:
        existing = batch.entry(target)
        if existing is not None and not existing.deleted:
            batch.put(target, Entry(existing.resource, existing.bureau, {}, True))  # the same whatever the order
        return
    order = document(batch, item.get("order"))
    model = document(batch, item.get("model"))
    material = (item.get("materials") or {}).get("base")
    size = model.get("size") or {}
    try:
        volume = float(size["x"]) * float(size["y"]) * float(size["z"])
    except (KeyError, TypeError, ValueError):
        volume = None
    printers = sorted({ref.path for kind in types for ref in pointing_at(batch, "printer", "printer_type", kind)
                       if not document(batch, ref.path).get("archived")})
    row = {"available": available > 0, "name": item.get("name"), "order": item.get("order"), "order_name": order.get("name"),
           "order_due_date": order.get("due_date"), "location": order.get("location"),
           "quantity": item.get("quantity"), "available_quantity": available, "available_for_printer": printers,
           "dimensions": size or None, "size": volume, "material": material,
           "material_name": document(batch, material).get("name") if material else None,
           "priority": item.get("priority"), "status": item.get("status"), "type": item.get("type") or "product",
           "workflow": item.get("workflow"), "workflow_type": document(batch, item.get("workflow")).get("type"),
           "estimates": item.get("estimates"), "estimates_additive": None, "estimates_powder": None,
           "additive": None, "powder": None, "updated": item.get("updated")}
    entry = batch.entry(line_item_path)
    upsert_view(batch, target, VIEW, entry.bureau if entry else None, row, item.get("created"))


def _touches(event, fields):
    return event["kind"] != "updated" or bool(set(fields) & set(event.get("fields") or {}))


def _print_changed(batch, event, path, bureau, before, after):
    if _touches(event, ("run", "status")):
        item = (after or before or {}).get("line_item")
        if item:
            refresh(batch, item)


def _piece_changed(batch, event, path, bureau, before, after):
    if _touches(event, ("current_print", "status")):
        item = (after or before or {}).get("line_item")
        if item:
            refresh(batch, item)


def _line_item_changed(batch, event, path, bureau, before, after):
    if _touches(event, ("name", "quantity", "status", "priority", "materials", "model", "workflow", "estimates",
                        "order")):
        refresh(batch, path)


def _order_changed(batch, event, path, bureau, before, after):
    if _touches(event, ("name", "due_date", "location")):
        for ref in pointing_at(batch, "line-item", "order", path):
            refresh(batch, ref.path)


def _named_by_line_items(field, shown):
    """A model's size, a material's name or a workflow's type shows on the rows of the line items naming it."""
    def changed(batch, event, path, bureau, before, after):
        if _touches(event, shown):
            for ref in pointing_at(batch, "line-item", field, path):
                refresh(batch, ref.path)
    return changed


def _printer_changed(batch, event, path, bureau, before, after):
    """A printer added, archived or moved to another type changes which rows list it."""
    if not _touches(event, ("printer_type", "archived")):
        return
    items = []
    for kind in {(before or {}).get("printer_type"), (after or {}).get("printer_type")} - {None}:
        for ref in pointing_at(batch, "print", "workstation_type_uri", kind):
            each = document(batch, ref.path)
            if each.get("status") == "created" and not each.get("run") and each.get("line_item") not in items:
                items.append(each.get("line_item"))
    for item in items:
        if item:
            refresh(batch, item)


VIEWS = {"print": (_print_changed,), "piece": (_piece_changed,), "line-item": (_line_item_changed,),
         "order": (_order_changed,), "printer": (_printer_changed,),
         "model": (_named_by_line_items("model", ("size",)),),
         "material": (_named_by_line_items("materials.base", ("name",)),),
         "workflow": (_named_by_line_items("workflow", ("type",)),)}
DERIVED_PATHS = {"line-item": (lambda path: [row_path(path)],)}
POINTED = {"line-item": (lambda path, doc: [("piece", "line_item", path)],)}
REFERENCES = (("printer", "printer_type"),)
