from services.orders.domain import LineItem, Order
from shared.application import ResourceApplication
from shared.generic import aggregates_for


class Orders(ResourceApplication):
    name = "orders"
    aggregates = aggregates_for("orders", {"order": Order, "line-item": LineItem})
