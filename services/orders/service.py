import logging

from nameko.events import event_handler

from services.orders.application import Orders
from shared.eventstore import EventStore
from shared.service import ResourceService, rpc

CLONE_REQUESTED = "order_clone_requested"
log = logging.getLogger(__name__)


class OrdersService(ResourceService):
    name = "orders"
    app = EventStore(Orders)

    @rpc
    def act(self, resource, uuid, action, payload, ctx):
        result = super().act(resource, uuid, action, payload, ctx)
        if result.get("clone_of"):
            # The copy of products and line items runs from a durable queue, after this command has committed.
            self.dispatch(CLONE_REQUESTED, {"clone": result["uri"].split("/")[2], "source": result["clone_of"]})
        return result

    @event_handler("orders", CLONE_REQUESTED)
    def complete_clone(self, payload):
        try:
            position = self.app.complete_clone(payload["clone"], payload["source"])
        except Exception as error:  # a failed copy shows on the order (status error), it is not silently dropped
            log.exception("clone %s failed", payload["clone"])
            position = self.app.fail_clone(payload["clone"], f"Cloning failed: {error}")
        if position:
            self._announce({"application": self.app.name, "position": position})
