from services.orders.application import Orders
from shared.eventstore import EventStore
from shared.service import ResourceService


class OrdersService(ResourceService):
    name = "orders"
    app = EventStore(Orders)
