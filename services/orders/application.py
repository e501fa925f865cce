"""The orders application: generic commerce resources plus the order ↔ line-item rules of orders.md §2."""
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from services.orders.domain import LineItem, Order
from shared.application import ResourceApplication
from shared.errors import InvalidPayload
from shared.generic import aggregates_for
from shared.resource import UniqueKey
from shared.uris import parse_uri, resource_path


class Orders(ResourceApplication):
    name = "orders"
    aggregates = aggregates_for("orders", {"order": Order, "line-item": LineItem})

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
            order = self._order_of(aggregate)
            if order is None:
                return []
            order.include(aggregate, actor)
            order.derive_status(self._line_items(order, aggregate), actor)
            return [order]
        if resource_name == "order":
            claims = self._template_claim(aggregate)
            items = self._line_items(aggregate)
            for item in items:
                item.join(aggregate, actor)
            aggregate.cascade_manual_status(items, actor)
            aggregate.derive_status(items, actor)
            return [*items, *claims]
        return []

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
