"""Applications on an in-memory store, for unit tests of domain rules (no broker, no database server)."""
import uuid

IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}
BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"


def command_ctx(**extra):
    """What the gateway sends with a command: caller, bureau and a fresh idempotency key."""
    return {"user": "/users/1/", "bureau": BUREAU, "command_id": str(uuid.uuid4()), **extra}
