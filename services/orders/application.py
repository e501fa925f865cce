"""The orders application: its resources' classes, and the background work the orders service runs on them
(order clones, estimates). The rules themselves live in the resources' classes (services.orders.domain)."""
from uuid import UUID, uuid5

from services.orders import progress
from services.orders.domain import Comment, CommentAction, LineItem, Order
from shared.application import ResourceApplication, Unit
from shared.follower import FeedFollower
from shared.registry import resource_classes
from shared.resource import Resource

INTERNAL = {"platform_admin": True}


class Orders(FeedFollower, ResourceApplication):
    name = "orders"
    aggregates = resource_classes("orders", [Order, LineItem, Comment, CommentAction])
    # which line items print a model (for its analysis) and belong to a product (for its design file's model)
    indexed_references = (("line-item", "model"), ("line-item", "product"))

    def apply_feed(self, application, feed):
        """One batch of production's feed (F3): pieces' progress moves line items and orders (services.orders.progress),
        recorded with the position reached (shared.follower)."""
        return self.follow_batch(application, feed, progress.apply_event)

    def complete_clone(self, clone_id, source_id):
        """Copy the source order's live products and line items into the clone, then derive its status. Ids are
        derived from (clone, source item), so running this twice (a redelivered message) copies nothing twice."""
        clone = self.repository.get(UUID(clone_id))
        if clone.fields.get("status") != "cloning":
            return None
        source = self.repository.get(UUID(source_id))
        unit = Unit(self, INTERNAL)
        copies, items = [], []
        for item in source.line_items(unit):
            product_id = uuid5(clone.id, f"product:{item.fields.get('product')}")
            product_path = f"/product/{product_id}/"
            if not any(c.id == product_id for c in copies):
                # the product's own facts come along (no_model_upload decides whether its line items wait for a model)
                source_product = unit.get(item.fields["product"]) if item.fields.get("product") else None
                kept = {k: v for k, v in (source_product.fields if source_product is not None else {}).items()
                        if k not in ("order", "design_file", "model")}
                copies.append(unit.new("product", product_id, dict(kept, order=f"/order/{clone.id}/"), clone.bureau))
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

    def line_items_printing(self, model_path):
        return [found["uri"] for found in self.referencing("line-item", "model", model_path, INTERNAL)]

    def record_estimates(self, line_item_id, estimates, error, command_id):
        """The estimator's result for a line item (or the reason there is none): recorded once per input."""
        unit = Unit(self, INTERNAL)

        def command():
            item = self.load("line-item", line_item_id, INTERNAL)
            item.update({"estimates": estimates, "error": error}, None)
            item.estimated(error)
            return self.outcome(item, unit)
        return self._execute({"command_id": command_id}, command)

    def estimating(self, line_item_id, model_pending):
        """orders.md §2.1 for a line item whose estimates cannot be computed now: its model is still being analysed
        (→ calculating_estimates; the analysis brings the estimate job back), or it needs no model (its product says
        no_model_upload: nothing to compute → pending). A line item still waiting for its model stays new. None when
        there is nothing to move."""
        unit = Unit(self, INTERNAL)
        if self.load("line-item", line_item_id, INTERNAL).fields.get("status") not in ("new", "calculating_estimates"):
            return None  # nothing to move (a sweep or a repeated message): nothing recorded, not even a receipt

        def command():
            item = self.load("line-item", line_item_id, INTERNAL)
            if model_pending:
                item.estimated(done=False)
            else:
                product = unit.get(item.fields["product"]) if item.fields.get("product") else None
                if product is not None and product.fields.get("no_model_upload") and not item.fields.get("model"):
                    item.estimated()
            return self.outcome(item, unit)
        return self._execute({}, command)
