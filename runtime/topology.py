"""Every process of a Stratum deployment: name → the nameko service class it runs."""
from importlib import import_module

from shared.settings import gateway_processes

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


# Processes a deployment may run several of on one machine (runtime.launch: STRATUM_GATEWAY_PROCESSES): the gateway
# holds no truth of its own, and its copies share the HTTP port through the kernel's SO_REUSEPORT, which hands each
# new connection to one of them. What a gateway keeps in memory is a cache or a per-process turn: sessions,
# idempotency keys (claimed with an insert that another process's same key waits on) and positions live in the read
# store; a feed's position only grows and appliers take turns in the database (gateway.readstore._take_turn), so two
# gateways catching up one feed apply each event once; the follower's "reached" memory, kept plans and totals'
# estimates are its own; the event stream polls the store; signed links and CSRF tokens need only the shared secret
# key. What is weaker per process, and made whole: the per-address login limit (gateway.ratelimit: a share each).
# What costs more: commands batch per process (shared.rpc), so each service's transactions carry fewer of them.
REPLICATED = ("gateway",)
REPLICA_MARK = "-"  # the second gateway is "gateway-2": its log lines and readiness body say which copy speaks


def instances(config, processes=PROCESSES):
    """{instance name: process name} of a deployment on one machine: one of each process, but
    `STRATUM_GATEWAY_PROCESSES` gateways ("gateway", "gateway-2", …), each supervised as a child of its own."""
    count = gateway_processes(config)
    named = {}
    for name in processes:
        named[name] = name
        for copy in range(2, count + 1 if name in REPLICATED else 0):
            named[f"{name}{REPLICA_MARK}{copy}"] = name
    return named


def process_of(instance):
    """The process an instance runs: "gateway-2" → "gateway"; a process's own name is its first instance."""
    name, mark, copy = instance.rpartition(REPLICA_MARK)
    return name if mark and copy.isdigit() and name in REPLICATED else instance


def load(dotted):
    module, _, attribute = dotted.partition(":")
    return getattr(import_module(module), attribute)
