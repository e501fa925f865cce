"""Orders aggregates. Fields and enums come from the catalogue (orders.md §1); the rules live here."""
from datetime import datetime, timezone
from uuid import uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError

from services.orders.status import ORDER_MANUAL, check_line_item_transition, check_order_status_request, order_status
from shared.errors import Forbidden, InvalidPayload, NotFound
from shared.resource import Resource, UniqueKey, action
from shared.uris import normalise, parse_uri, resource_path

# Published by the orders service once a command committed (its own durable queues run the jobs).
CLONE_REQUESTED = "order_clone_requested"
ESTIMATE_REQUESTED = "line_item_estimate_requested"
ESTIMATE_INPUTS = ("model", "quantity", "materials")

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
QUANTITY_OUT_OF_RANGE = "The quantity value is too low or too high"
# orders.md §2.1: a line item in production (its pieces planned by production); LineItemQuantityChanged re-plans them
IN_PRODUCTION = frozenset({"confirmed", "printing", "post-processing", "shipping"})
ADDITIVE_NEEDS_PRINTER_TYPE = ("Workflow related to the line_item, with type additive_manufacturing, must have an "
                               "associated printer_type")


def workflow_facts(peers, workflows, ctx):
    """Production's facts about the workflows a confirmation needs (type, printer-type step), by path."""
    facts = {}
    for path in workflows:
        if path and path not in facts:
            try:
                facts[path] = peers.call("production", "workflow_facts", path, ctx)
            except NotFound:
                facts[path] = None
    return facts


def _confirms(payload):
    return isinstance(payload, dict) and payload.get("status") == "confirmed"


def _prints_of(peers, line_item_path, ctx):
    return peers.call("production", "referencing", "print", "line_item", line_item_path, ctx)


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

    # orders.md §5: the named facts of an order
    class OwnerChanged(Resource.Updated):
        field = "order_owner"

    class PriorityChanged(Resource.Updated):
        field = "priority"

    class DueDateChanged(Resource.Updated):
        field = "due_date"

    class ShippingChanged(Resource.Updated):
        field = "shipping"

    class LineItemsChanged(Resource.Updated):
        field = "line_items"

    class EstimatesRecomputed(Resource.Updated):
        field = "estimates"

    class StatusChanged(Resource.Updated):
        field = "status"

    class Confirmed(StatusChanged):
        value = "confirmed"

    class Cancelled(StatusChanged):
        value = "cancelled"

    class Completed(StatusChanged):
        value = "complete"

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

    @action("clone")
    def clone(self, unit, payload):
        """orders.md §1.2: the copy is created now, `cloning`; its products and line items are copied in the
        background (Orders.complete_clone, from the service's own queue, see follow_ups)."""
        copy = Order.clone_of(self, uuid4(), unit.actor)
        return [copy], {"uri": resource_path("order", copy.id), "accepted": True, "clone_of": str(self.id)}

    @classmethod
    def follow_ups(cls, verb, result, payload):
        if result.get("clone_of"):
            return [(CLONE_REQUESTED, {"clone": parse_uri(result["uri"])[1], "source": result["clone_of"]})]
        return []

    def check_deletable(self, unit):
        """orders.md §1.1: restricted and guest users cannot delete an order once it is confirmed; an order whose
        prints are in a run is in production (the prints, from production, in ctx['prints'])."""
        if unit.ctx.get("role") in ("restricted", "self-registered-guest") and self.fields.get("status") not in (
                "new", "pending", "calculating_estimates"):
            raise InvalidPayload("You cannot delete order which is already confirmed (this is not allowed for "
                                 "restricted and guest users).", field="status")
        check_no_prints_in_runs(unit.ctx.get("prints") or [], ORDER_IN_PRODUCTION)

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        if verb == "update" and _confirms(payload):
            order = peers.app.read("order", uuid, ctx)
            items = [peers.app.read("line-item", parse_uri(p)[1], ctx) for p in order.get("line_items") or []]
            return dict(ctx, workflows=workflow_facts(peers, [i.get("workflow") for i in items], ctx))
        if verb != "delete":
            return ctx
        order = peers.app.read("order", uuid, ctx)
        prints = [p for item in order.get("line_items") or [] for p in _prints_of(peers, item, ctx)]
        return dict(ctx, prints=prints)

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

    def line_items(self, unit, changed=None):
        """The order's live line items (the one being changed taken as it is now)."""
        items = []
        for path in self.fields.get("line_items") or []:
            item = changed if changed is not None and path == resource_path("line-item", changed.id) else unit.get(path)
            if isinstance(item, LineItem) and not item.deleted:
                items.append(item)
        return items

    def consequences(self, unit):
        """orders.md §1.4, §2.3: the order's line items join it (the older flow: the order lists line items made
        before it, and each gets a product), a manual confirm/cancel cascades to them, and the order's status is
        derived from theirs, all in the same transaction. A template name is claimed in the bureau."""
        actor = unit.actor
        items = self.line_items(unit)
        products = []
        for item in items:
            if not item.fields.get("product") and item.fields.get("type", "product") == "product":
                product = unit.new("product", uuid5(item.id, "product"), {"order": resource_path("order", self.id)},
                                   item.bureau)
                products.append(product)
                item.join(self, actor, resource_path("product", product.id))
            else:
                item.join(self, actor)
        self.cascade_manual_status(items, actor)
        for item in items:
            item.check_model(unit)
            item.check_workflow(unit)
        self.derive_status(items, actor)
        return [*items, *products, *self._template_claim(unit)]

    def _template_claim(self, unit):
        """orders.md §4: a template name is unique in its bureau (400 "The requested template name already
        exists."); the claim is saved with the order that takes the name."""
        name = self.fields.get("template_name")
        if not name:
            return []
        key = f"{self.bureau}:{name.strip().lower()}"
        try:
            holder = unit.app.repository.get(UniqueKey.id_for("order-template", key))
        except AggregateNotFoundError:
            return [UniqueKey.claim("order-template", key, {"order_id": str(self.id)})]
        if holder.value["order_id"] != str(self.id):
            raise InvalidPayload("The requested template name already exists.", field="template_name")
        return []


class LineItem(Resource):
    resource = "line-item"

    class QuantityChanged(Resource.Updated):
        field = "quantity"

    class WorkflowChanged(Resource.Updated):
        field = "workflow"

    class PrepWorkflowChanged(Resource.Updated):
        field = "prep_workflow"

    class AssignedUserChanged(Resource.Updated):
        field = "assigned_user"

    class EstimatesUpdated(Resource.Updated):
        field = "estimates"

    class ModelReplaced(Resource.Updated):
        field = "model"

    class StatusChanged(Resource.Updated):
        field = "status"

    class Confirmed(StatusChanged):
        value = "confirmed"

    class Cancelled(StatusChanged):
        value = "cancelled"

    class Completed(StatusChanged):  # the last of its pieces is complete (F3)
        value = "complete"

    NOT_CLONED = ("status", "order", "product", "uuid")

    @classmethod
    def clone_of(cls, source, new_id, product_path, actor, quantity=None):
        """orders.md §1.4: a copy starts `new`; no runs, pieces or actuals come along."""
        fields = {k: v for k, v in source.fields.items() if k not in cls.NOT_CLONED}
        fields.update(status="new", product=product_path, cloned_from=resource_path("line-item", source.id))
        if quantity is not None:
            fields["quantity"] = quantity
        return Resource.create.__func__(cls, new_id, fields, source.bureau, actor)

    @action("clone")
    def clone(self, unit, payload):
        """orders.md §1.4: copied at once into the same order, with a product of its own."""
        order = self.order(unit)
        product_id = uuid4()
        product = unit.new("product", product_id, {"order": resource_path("order", order.id) if order else None},
                           self.bureau)
        copy = LineItem.clone_of(self, uuid4(), resource_path("product", product_id), unit.actor,
                                 payload.get("quantity"))
        if order is not None:
            copy.join(order, unit.actor)
        return unit.outcome(copy, extra=[product])

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
        if "quantity" in changes and changes["quantity"] != self.fields.get("quantity") and \
                self.fields.get("status") in ("complete", "cancelled"):
            raise InvalidPayload(QUANTITY_OUT_OF_RANGE, field="quantity")  # finished: nothing is made any more
        super().update(canonical_materials(changes), actor)

    def check_quantity(self, unit):
        """orders.md §1.3, LineItemQuantityChanged → production re-plans: after confirmation a larger quantity gets
        more pieces, a smaller one cancels pieces not in a run yet (the highest copies); it cannot go below the
        pieces whose prints are already in runs (ctx['prints'], gathered from production), nor below 1."""
        if not any(isinstance(e, self.QuantityChanged) for e in self.pending_events):
            return
        quantity = self.fields.get("quantity")
        if quantity is None or quantity < 1:
            raise InvalidPayload(QUANTITY_OUT_OF_RANGE, field="quantity")
        if self.fields.get("status") in IN_PRODUCTION:
            in_runs = {p["fields"].get("piece") for p in unit.ctx.get("prints") or []
                       if p["fields"].get("run") or p["fields"].get("status") not in ("created", "cancelled")}
            if quantity < len(in_runs):
                raise InvalidPayload(QUANTITY_OUT_OF_RANGE, field="quantity")

    def estimated(self, error=None, done=True):
        """orders.md §2.1: the system's own moves as estimates are computed: new → calculating_estimates (work on
        them has started) → pending (`done`: computed, or nothing to compute), or → error when the estimate cannot
        be made (the model is not printable). Only before confirmation: later estimates change no status."""
        status = self.fields.get("status")
        if status not in ("new", "calculating_estimates"):
            return
        if status == "new":
            self.update({"status": "calculating_estimates"}, None)
        if error:
            self.update({"status": "error"}, None)
        elif done:
            self.update({"status": "pending"}, None)

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

    def order(self, unit):
        """The order this line item belongs to (through its product in the current flow), or None."""
        path = self.fields.get("order")
        if not path and self.fields.get("product"):
            product = unit.get(self.fields["product"])
            path = product.fields.get("order") if product is not None else None
        order = unit.get(path) if path else None
        if order is not None and self.fields.get("order") != path:
            self.join(order, None)
        return order if isinstance(order, Order) and not order.deleted else None

    def consequences(self, unit):
        """orders.md §2.3: a line item joins its product's order (current flow) or the order listing it (older
        flow), and every change recomputes the order's status, in the same transaction."""
        self.check_model(unit)
        self.check_workflow(unit)
        self.check_quantity(unit)
        order = self.order(unit)
        if order is None:
            return []
        order.include(self, unit.actor)
        order.derive_status(order.line_items(unit, self), unit.actor)
        return [order]

    def check_workflow(self, unit):
        """orders.md §2.1 (pending → confirmed guards): an additive workflow must have a printer-type step. The
        workflow's facts come from production (ctx['workflows'], gathered by the orders service)."""
        if not self.confirming or not self.fields.get("workflow"):
            return
        facts = (unit.ctx.get("workflows") or {}).get(self.fields["workflow"])
        if facts and facts.get("type") == "additive_manufacturing" and not facts.get("has_printer_type"):
            raise InvalidPayload(ADDITIVE_NEEDS_PRINTER_TYPE, field="workflow")

    def check_model(self, unit):
        """The model rule, with the product's no_model_upload, and the model's state as the files service reported it
        to this command (ctx['model_states'], gathered by the orders service when a model is named)."""
        product = unit.get(self.fields["product"]) if self.fields.get("product") else None
        no_model_upload = bool(product is not None and product.fields.get("no_model_upload"))
        check_model_choice(self.fields.get("model"), no_model_upload, self.confirming)
        check_printable((unit.ctx.get("model_states") or {}).get(self.fields.get("model")))

    def check_deletable(self, unit):
        """orders.md §1.3: a line item whose prints are in a run is in production (prints from ctx['prints'])."""
        check_no_prints_in_runs(unit.ctx.get("prints") or [], LINE_ITEM_IN_PRODUCTION)

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """Deleting, or changing the quantity of a line item in production, needs its prints (production); naming a
        model needs its state (files)."""
        if verb == "delete":
            return dict(ctx, prints=_prints_of(peers, f"/line-item/{uuid}/", ctx))
        if verb == "update" and isinstance(payload, dict) and "quantity" in payload:
            current = peers.app.read("line-item", uuid, ctx)
            if current.get("status") in IN_PRODUCTION:  # how many of its pieces are already in runs (production)
                ctx = dict(ctx, prints=_prints_of(peers, f"/line-item/{uuid}/", ctx))
        if verb == "update" and _confirms(payload):
            workflow = payload.get("workflow") or peers.app.read("line-item", uuid, ctx).get("workflow")
            try:
                workflow = normalise(workflow) if workflow else None
            except ValueError:
                workflow = None  # not a URI: validation answers that
            ctx = dict(ctx, workflows=workflow_facts(peers, [workflow], ctx))
        model = payload.get("model") if isinstance(payload, dict) else None
        if not model:
            return ctx
        try:
            model_uuid = parse_uri(model)[1]
        except ValueError:
            return ctx  # not a URI: validation answers that
        try:
            state = peers.call("files", "get", "model", model_uuid, ctx)
        except NotFound:
            state = {"status": "missing"}
        return dict(ctx, model_states={f"/model/{model_uuid}/": state})

    @classmethod
    def follow_ups(cls, verb, result, payload):
        """orders.md §3: estimates follow the inputs they are made from."""
        if verb in ("create", "act") or verb == "update" and (
                any(key in payload for key in ESTIMATE_INPUTS) or payload.get("status") == "calculating_estimates"):
            return [(ESTIMATE_REQUESTED, {"line_item": result["uri"]})]
        return []


# orders.md §1.11: comments on orders and line items (related_table_name → the resource its uuid names).
RELATED_RESOURCES = {"order": "order", "line_item": "line-item", "prep_task_record": "prep-task-record",
                     "model_library": "model-library", "run": "run", "service_provider_job": "service-provider-job",
                     "piece": "piece"}


class Comment(Resource):
    resource = "comment"

    class Edited(Resource.Updated):
        field = "text"

    @classmethod
    def prepare(cls, payload, ctx):
        """`comment_action: {assignee_user}` holds a user URI, stored as a path like every other reference."""
        request = payload.get("comment_action")
        if request is None:
            return payload
        assignee = request.get("assignee_user") if isinstance(request, dict) else None
        try:
            request = dict(request, assignee_user=normalise(assignee) if assignee else None)
        except (TypeError, ValueError):
            raise InvalidPayload("comment_action must be an object whose assignee_user is a user URI.",
                                 field="comment_action") from None
        return dict(payload, comment_action=request)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """orders.md §1.12: a comment posted with `comment_action` creates that action with it (the only way)."""
        if not fields.get("comment_action"):
            return fields, [], {}
        action = CommentAction.from_comment(uuid5(new_id, "comment-action"), new_id, fields,
                                            fields["comment_action"], unit.bureau, unit.actor)
        return fields, [action], {}

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields, user=actor)
        fields.pop("comment_action", None)  # becomes a comment action of its own (see on_create)
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

    class StatusChanged(Resource.Updated):
        field = "status"

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

