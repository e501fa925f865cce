"""Applications on an in-memory store, for unit tests of domain rules (no broker, no database server)."""
import uuid

IN_MEMORY = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}
BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"


def command_ctx(**extra):
    """What the gateway sends with a command: caller, bureau and a fresh idempotency key."""
    return {"user": "/users/1/", "bureau": BUREAU, "command_id": str(uuid.uuid4()), **extra}


def counting_reads(app):
    """The ids of the notifications `app` reads from its log from now on: its recorder's own select_notifications,
    wrapped (the real one runs; each notification it returns is counted)."""
    read, select = [], app.recorder.select_notifications

    def counted(*args, **kwargs):
        notifications = select(*args, **kwargs)
        read.extend(n.id for n in notifications)
        return notifications

    app.recorder.select_notifications = counted
    return read
