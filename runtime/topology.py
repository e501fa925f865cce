"""Every process of a Stratum deployment: name → the nameko service class it runs."""
from importlib import import_module

PROCESSES = {
    "identity": "services.identity.service:IdentityService",
    "orders": "services.orders.service:OrdersService",
    "production": "services.production.service:ProductionService",
    "materials": "services.materials.service:MaterialsService",
    "files": "services.files.service:FilesService",
    "capture": "services.capture.service:CaptureService",
    "notifications": "services.notifications.service:NotificationsService",
    "projector": "gateway.projector:ProjectorService",
    "gateway": "gateway.service:GatewayService",
}

# Applications (event stores) to create in the migrate step, by service.
APPLICATIONS = {
    "identity": "services.identity.application:Identity",
    "orders": "services.orders.application:Orders",
    "production": "services.production.application:Production",
    "materials": "services.materials.application:Materials",
    "files": "services.files.application:Files",
    "capture": "services.capture.application:Capture",
    "notifications": "services.notifications.application:Notifications",
}

# Services whose feeds the read side follows: every service with an event store (application name = service name).
# The gateway keeps its own copy (gateway.readside.FOLLOWED_SERVICES: it does not import the wiring);
# tests/unit/test_config.py holds the two equal.
FOLLOWED = tuple(APPLICATIONS)


def load(dotted):
    module, _, attribute = dotted.partition(":")
    return getattr(import_module(module), attribute)
