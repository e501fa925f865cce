"""The orders application: generic commerce resources plus the order ↔ line-item rules of orders.md §2."""
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError

from services.orders.domain import Comment, CommentAction, LineItem, Order, check_model_choice, check_printable
from shared.application import ResourceApplication
from shared.errors import InvalidPayload
from shared.generic import aggregates_for
from shared.resource import Resource, UniqueKey
from shared.uris import normalise, parse_uri, resource_path


class Orders(ResourceApplication):
    name = "orders"
    aggregates = aggregates_for("orders", {"order": Order, "line-item": LineItem, "comment": Comment,
                                           "comment-action": CommentAction})
    # which line items print a model (for its analysis) and belong to a product (for its design file's model)
    indexed_references = (("line-item", "model"), ("line-item", "product"))

    def create(self, resource_name, payload, ctx):
        if resource_name == "comment" and payload.get("comment_action") is not None:
            request = payload["comment_action"]
            assignee = request.get("assignee_user") if isinstance(request, dict) else None
            try:
                request = dict(request, assignee_user=normalise(assignee) if assignee else None)
            except (TypeError, ValueError):
                raise InvalidPayload("comment_action must be an object whose assignee_user is a user URI.",
                                     field="comment_action") from None
            payload = dict(payload, comment_action=request)
        return super().create(resource_name, payload, ctx)

    def on_create(self, resource_name, new_id, fields, ctx):
        """A comment posted with `comment_action` creates that action with it (the only way to make one)."""
        if resource_name == "comment" and fields.get("comment_action"):
            action = CommentAction.from_comment(uuid5(new_id, "comment-action"), new_id, fields,
                                                fields["comment_action"], ctx.get("bureau"), ctx.get("user"))
            return fields, [action], {}
        return fields, [], {}

    # -- clones (orders.md §1.2, §1.4) ------------------------------------------------------------------------------

    def action_clone(self, resource_name, uuid, payload, ctx):
        """Order: the copy is created now, `cloning`; its products and line items are copied in the background
        (`complete_clone`, run by the service from its own queue). Line item: copied at once into the same order,
        with a product of its own."""
        source = self.load(resource_name, uuid, ctx)
        actor = ctx.get("user")
        if resource_name == "order":
            def command():
                clone = Order.clone_of(source, uuid4(), actor)
                return [clone], {"uri": resource_path("order", clone.id), "accepted": True, "clone_of": str(source.id)}
        else:
            def command():
                order = self._order_of(source)
                product_id = uuid4()
                product_fields = {"order": resource_path("order", order.id) if order else None}
                product = self.aggregates["product"].create(product_id, product_fields, source.bureau, actor)
                clone = LineItem.clone_of(source, uuid4(), resource_path("product", product_id), actor,
                                          payload.get("quantity"))
                if order is not None:
                    clone.join(order, actor)
                return self.outcome("line-item", clone, ctx, extra=[product])
        return self._execute(ctx, command)

    def complete_clone(self, clone_id, source_id):
        """Copy the source order's live products and line items into the clone, then derive its status. Ids are
        derived from (clone, source item), so running this twice (a redelivered message) copies nothing twice."""
        clone = self.repository.get(UUID(clone_id))
        if clone.fields.get("status") != "cloning":
            return None
        source = self.repository.get(UUID(source_id))
        copies, items = [], []
        for item in self._line_items(source):
            product_id = uuid5(clone.id, f"product:{item.fields.get('product')}")
            product_path = resource_path("product", product_id)
            if not any(c.id == product_id for c in copies):
                copies.append(self.aggregates["product"].create(
                    product_id, {"order": resource_path("order", clone.id)}, clone.bureau, None))
            copy = LineItem.clone_of(item, uuid5(clone.id, f"line-item:{item.id}"), product_path, None)
            copy.join(clone, None)
            clone.include(copy, None)
            items.append(copy)
        clone.derive_status(items, None)
        if clone.fields.get("status") == "cloning":  # nothing to copy: an empty order is new
            Resource.update(clone, {"status": "new"}, None)
        recordings = self.save(clone, *copies, *items)
        return max(r.notification.id for r in recordings)

    def fail_clone(self, clone_id, message):
        clone = self.repository.get(UUID(clone_id))
        if clone.fields.get("status") != "cloning":
            return None
        Resource.update(clone, {"status": "error", "error": message}, None)
        return max(r.notification.id for r in self.save(clone))

    def delete(self, resource_name, uuid, ctx):
        if resource_name == "order":
            self.load(resource_name, uuid, ctx).check_deletable_by(ctx.get("role"))
        return super().delete(resource_name, uuid, ctx)

    def consequences(self, resource_name, aggregate, ctx):
        """Keep each order's line items and derived status in step with its line items, in the same transaction:
        a line item joins its product's order (current flow) or the order listing it (older flow), and every
        change recomputes the order's status (§2.3). A manual confirm/cancel of an order cascades (§2.3)."""
        actor = ctx.get("user")
        if resource_name == "line-item":
            self._check_model(aggregate, ctx)
            order = self._order_of(aggregate)
            if order is None:
                return []
            order.include(aggregate, actor)
            order.derive_status(self._line_items(order, aggregate), actor)
            return [order]
        if resource_name == "order":
            claims = self._template_claim(aggregate)
            items = self._line_items(aggregate)
            products = []
            for item in items:
                if not item.fields.get("product") and item.fields.get("type", "product") == "product":
                    # older flow: the order lists line items made before it; each gets a product (1 ↔ 1, §1.4)
                    product = self.aggregates["product"].create(
                        uuid5(item.id, "product"), {"order": resource_path("order", aggregate.id)}, item.bureau, actor)
                    products.append(product)
                    item.join(aggregate, actor, resource_path("product", product.id))
                else:
                    item.join(aggregate, actor)
            aggregate.cascade_manual_status(items, actor)
            for item in items:
                self._check_model(item, ctx)
            aggregate.derive_status(items, actor)
            return [*items, *products, *claims]
        return []

    def _check_model(self, item, ctx):
        """The model rule, with the product's no_model_upload, and the model's state as the files service reported it
        to this command (ctx['model_state'], looked up by the orders service when a model is named)."""
        product = self._get(item.fields["product"]) if item.fields.get("product") else None
        no_model_upload = bool(product is not None and product.fields.get("no_model_upload"))
        check_model_choice(item.fields.get("model"), no_model_upload, item.confirming)
        state = (ctx.get("model_states") or {}).get(item.fields.get("model"))
        check_printable(state)

    def line_items_printing(self, model_path):
        return [found["uri"] for found in self.referencing("line-item", "model", model_path, {"platform_admin": True})]

    def record_estimates(self, line_item_id, estimates, error, command_id):
        """The estimator's result for a line item (or the reason there is none): recorded once per input."""
        def command():
            item = self.load("line-item", line_item_id, {"platform_admin": True})
            item.update({"estimates": estimates, "error": error}, None)
            return self.outcome("line-item", item, {})
        return self._execute({"command_id": command_id}, command)

    def _template_claim(self, order):
        """orders.md §4: a template name is unique in its bureau (400 "The requested template name already
        exists."); the claim is saved with the order that takes the name."""
        name = order.fields.get("template_name")
        if not name:
            return []
        key = f"{order.bureau}:{name.strip().lower()}"
        try:
            holder = self.repository.get(UniqueKey.id_for("order-template", key))
        except AggregateNotFoundError:
            return [UniqueKey.claim("order-template", key, {"order_id": str(order.id)})]
        if holder.value["order_id"] != str(order.id):
            raise InvalidPayload("The requested template name already exists.", field="template_name")
        return []

    def _order_of(self, line_item):
        path = line_item.fields.get("order")
        if not path and line_item.fields.get("product"):
            product = self._get(line_item.fields["product"])
            path = product.fields.get("order") if product is not None else None
        order = self._get(path) if path else None
        if order is not None and line_item.fields.get("order") != path:
            line_item.join(order, None)
        return order if isinstance(order, Order) and not order.deleted else None

    def _line_items(self, order, changed=None):
        """The order's live line items (the one being changed taken as it is now)."""
        items = []
        for path in order.fields.get("line_items") or []:
            item = changed if changed is not None and path == resource_path("line-item", changed.id) else self._get(path)
            if isinstance(item, LineItem) and not item.deleted:
                items.append(item)
        return items

    def _get(self, path):
        try:
            return self.repository.get(UUID(parse_uri(path)[1]))
        except (AggregateNotFoundError, ValueError):
            return None
