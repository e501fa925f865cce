"""Every process of a Stratum deployment: name → the nameko service class it runs."""
from importlib import import_module

PROCESSES = {
    "identity": "services.identity.service:IdentityService",
    "orders": "services.orders.service:OrdersService",
    "projector": "gateway.projector:ProjectorService",
    "gateway": "gateway.service:GatewayService",
}

# Applications (event stores) to create in the migrate step, by service.
APPLICATIONS = {
    "identity": "services.identity.application:Identity",
    "orders": "services.orders.application:Orders",
}


def load(dotted):
    module, _, attribute = dotted.partition(":")
    return getattr(import_module(module), attribute)
