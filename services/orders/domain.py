"""Orders aggregates. Fields and enums come from the catalogue (orders.md §1); the rules live here."""
from datetime import datetime, timezone

from services.orders.status import ORDER_MANUAL, check_line_item_transition, check_order_status_request, order_status
from shared.errors import Forbidden, InvalidPayload
from shared.resource import Resource
from shared.uris import normalise, resource_path

# orders.md §1.3 rule 1 and files.md §1.1: a line item prints one model, or says it needs none (on its product).
MODEL_CHOICE = ("Either supply a model uri, or set no_model_upload to True. You cannot do both, and you cannot do "
                "neither.")
NOT_PRINTABLE = "The model does not seem printable"
UNPRINTABLE_MODEL_STATUSES = ("error", "inoperable", "file-too-large", "irreparable")


def check_model_choice(model, no_model_upload, confirming):
    """Both is always wrong. Neither is wrong once the line item is confirmed: before that the current UI flow
    (product, then design file, then its model) legitimately has a line item whose model is still coming."""
    if model and no_model_upload:
        raise InvalidPayload(MODEL_CHOICE, field="model")
    if confirming and not model and not no_model_upload:
        raise InvalidPayload(MODEL_CHOICE, field="model")


def check_no_prints_in_runs(prints, message):
    """orders.md §1.1, §1.3: what has prints in a run is in production and cannot be deleted."""
    if any(p["fields"].get("run") for p in prints):
        raise InvalidPayload(message)


ORDER_IN_PRODUCTION = "An order with prints associated with a run cannot be deleted"
LINE_ITEM_IN_PRODUCTION = "An line-item with prints that are associated with a run cannot be deleted"


def check_printable(model_state):
    """A model the files service could not use (broken, quarantined, too large) cannot be ordered."""
    if model_state and (model_state.get("status") in UNPRINTABLE_MODEL_STATUSES
                        or model_state.get("virus_scan") == "quarantined"):
        raise InvalidPayload(NOT_PRINTABLE, field="model")


def canonical_materials(fields):
    """`materials: {base, support}` hold material URIs; stored as paths like every other reference."""
    materials = fields.get("materials")
    if not isinstance(materials, dict):
        return fields
    clean = {}
    for role, value in materials.items():
        if role not in ("base", "support"):
            raise InvalidPayload(f"'materials' takes 'base' and 'support', not '{role}'.", field="materials")
        try:
            clean[role] = normalise(value) if value else None
        except ValueError:
            raise InvalidPayload(f"materials.{role} must be a material URI.", field="materials") from None
        if clean[role] and not clean[role].startswith("/material/"):
            raise InvalidPayload(f"materials.{role} must be a material URI.", field="materials")
    return dict(fields, materials=clean)


def _check_created_new(fields):
    """A client creates orders and line items as `new`; later statuses are reached by the documented moves."""
    if fields.get("status") not in (None, "new"):
        raise InvalidPayload("Provided status transformation is not allowed", field="status")
    return dict(fields, status="new")


class Order(Resource):
    resource = "order"
    CHANGE_EVENTS = {"order_owner": "OwnerChanged", "priority": "PriorityChanged", "due_date": "DueDateChanged",
                     "shipping": "ShippingChanged", "line_items": "LineItemsChanged", "status": "StatusChanged",
                     "estimates": "EstimatesRecomputed"}
    STATUS_EVENTS = {"confirmed": "Confirmed", "cancelled": "Cancelled", "complete": "Completed"}

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = _check_created_new(fields)
        # orders.md §1.1: customer_id defaults to the first 8 characters of the UUID.
        if not fields.get("customer_id"):
            fields["customer_id"] = str(id)[:8]
        fields["user"] = actor
        fields["is_template"] = bool(fields.get("template_name"))
        return super().create(id, fields, bureau, actor)

    def update(self, changes, actor):
        changes = dict(changes)
        if "status" in changes:
            check_order_status_request(self.fields.get("status"), changes["status"])
        if "template_name" in changes:
            if self.fields.get("template_name") and changes["template_name"] != self.fields["template_name"]:
                raise InvalidPayload("template_name can be set only once.", field="template_name")
            changes["is_template"] = bool(changes["template_name"])
        super().update(changes, actor)

    # orders.md §1.2 [prop]: a copy carries none of the source's state, production links or template identity.
    NOT_CLONED = ("status", "template_name", "is_template", "line_items", "customer_id", "user", "error", "notes",
                  "estimates", "piece_count", "quote_approved", "build_file_status", "planning_status")

    @classmethod
    def clone_of(cls, source, new_id, actor):
        """A new order copied from `source`, `cloning` until its products and line items are copied."""
        fields = {k: v for k, v in source.fields.items() if k not in cls.NOT_CLONED}
        fields.update(status="cloning", line_items=[], customer_id=str(new_id)[:8], user=actor, is_template=False,
                      cloned_from=resource_path("order", source.id))
        return Resource.create.__func__(cls, new_id, fields, source.bureau, actor)

    def check_deletable_by(self, role):
        """orders.md §1.1: restricted and guest users cannot delete an order once it is confirmed."""
        if role in ("restricted", "self-registered-guest") and self.fields.get("status") not in ("new", "pending",
                                                                                                "calculating_estimates"):
            raise InvalidPayload("You cannot delete order which is already confirmed (this is not allowed for "
                                 "restricted and guest users).", field="status")

    def include(self, line_item, actor):
        """Keep `line_items` listing the order's live line items."""
        path = resource_path("line-item", line_item.id)
        listed = list(self.fields.get("line_items") or [])
        if line_item.deleted and path in listed:
            listed.remove(path)
        elif not line_item.deleted and path not in listed:
            listed.append(path)
        Resource.update(self, {"line_items": listed}, actor)

    def cascade_manual_status(self, line_items, actor):
        """A client's confirm or cancel of the order moves every line item (with the line items' own rules)."""
        requested = self.fields.get("status")
        if requested in ORDER_MANUAL and line_items:
            for item in line_items:
                if item.fields.get("status") not in ("cancelled", "complete"):
                    item.update({"status": requested}, actor)

    def derive_status(self, line_items, actor):
        """orders.md §2.3: the order's status is the aggregate of its line items' (recorded only when it changes)."""
        if line_items or self.fields.get("status") not in ORDER_MANUAL:
            Resource.update(self, {"status": order_status(i.fields.get("status") for i in line_items)}, actor)


class LineItem(Resource):
    resource = "line-item"
    CHANGE_EVENTS = {"quantity": "QuantityChanged", "workflow": "WorkflowChanged",
                     "prep_workflow": "PrepWorkflowChanged", "assigned_user": "AssignedUserChanged",
                     "estimates": "EstimatesUpdated", "status": "StatusChanged", "model": "ModelReplaced"}
    STATUS_EVENTS = {"confirmed": "Confirmed", "cancelled": "Cancelled"}
    NOT_CLONED = ("status", "order", "product", "uuid")

    @classmethod
    def clone_of(cls, source, new_id, product_path, actor, quantity=None):
        """orders.md §1.4: a copy starts `new`; no runs, pieces or actuals come along."""
        fields = {k: v for k, v in source.fields.items() if k not in cls.NOT_CLONED}
        fields.update(status="new", product=product_path, cloned_from=resource_path("line-item", source.id))
        if quantity is not None:
            fields["quantity"] = quantity
        return Resource.create.__func__(cls, new_id, fields, source.bureau, actor)

    @classmethod
    def create(cls, id, fields, bureau, actor):
        # orders.md §1.3: a product line item in an order needs its product; one with no order yet (the older client
        # flow: line items first, then the order listing them) gets its product when an order takes it.
        if fields.get("order") and not fields.get("product") and fields.get("type", "product") == "product":
            raise InvalidPayload("A line item of type product in an order needs its product.", field="product")
        return super().create(id, canonical_materials(_check_created_new(fields)), bureau, actor)

    def update(self, changes, actor):
        if "status" in changes:
            check_line_item_transition(self.fields.get("status"), changes["status"])
        super().update(canonical_materials(changes), actor)

    @property
    def confirming(self):
        """Whether the change being made now moves this line item to confirmed."""
        return any(isinstance(e, Resource.Updated) and e.changes.get("status") == "confirmed"
                   for e in self.pending_events)

    def join(self, order, actor, product_path=None):
        changes = {"order": resource_path("order", order.id)}
        if product_path and not self.fields.get("product"):
            changes["product"] = product_path
        Resource.update(self, changes, actor)


# orders.md §1.11: comments on orders and line items (related_table_name → the resource its uuid names).
RELATED_RESOURCES = {"order": "order", "line_item": "line-item", "prep_task_record": "prep-task-record",
                     "model_library": "model-library", "run": "run", "service_provider_job": "service-provider-job",
                     "piece": "piece"}


class Comment(Resource):
    resource = "comment"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields, user=actor)
        fields.pop("comment_action", None)  # becomes a comment action of its own (see Orders.on_create)
        return super().create(id, fields, bureau, actor)

    def update(self, changes, actor):
        self._check_author(actor)
        changes = {k: v for k, v in changes.items() if k != "comment_action"}
        super().update(changes, actor)

    def delete(self, actor):
        self._check_author(actor)
        super().delete(actor)

    def _check_author(self, actor):
        if actor != self.fields.get("user"):
            raise Forbidden("Modification of the comment allowed only for comment owner.")


class CommentAction(Resource):
    """orders.md §1.12: a task written in a comment, for its assignee: new → in-progress → complete (and reopen)."""

    resource = "comment-action"
    MOVES = {"new": {"in-progress", "complete"}, "in-progress": {"complete"}, "complete": {"in-progress"}}
    CHANGE_EVENTS = {"status": "StatusChanged"}

    @classmethod
    def from_comment(cls, id, comment_id, comment_fields, request, bureau, actor):
        related = RELATED_RESOURCES[comment_fields["related_table_name"]]
        fields = {"comment": resource_path("comment", comment_id), "assignee_user": request.get("assignee_user"),
                  "created_by": actor, "related_table_name": comment_fields["related_table_name"],
                  "related_uuid": comment_fields["related_uuid"],
                  "related_uri": resource_path(related, comment_fields["related_uuid"]),
                  "status": "new", "completed": None}
        return super().create(id, fields, bureau, actor)

    def update(self, changes, actor):
        if actor != self.fields.get("assignee_user"):
            raise Forbidden("Only the assignee can change a comment action.")
        changes = {k: v for k, v in changes.items() if k == "status"}
        status = changes.get("status")
        if status and status != self.fields.get("status"):
            if status not in self.MOVES.get(self.fields.get("status"), ()):
                raise InvalidPayload("Provided status transformation is not allowed", field="status")
            changes["completed"] = datetime.now(timezone.utc).isoformat() if status == "complete" else None
        super().update(changes, actor)

