from services.orders.domain import Order
from shared.application import ResourceApplication


class Orders(ResourceApplication):
    name = "orders"
    aggregates = {"order": Order}
