"""The event store inside nameko: one `eventsourcing` application per service container."""
import os
import time

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")  # psycopg's C wait would block the eventlet hub

# Imported eagerly: two containers constructing Postgres apps concurrently would otherwise race on a
# half-imported module under green threads ("Found 0 infrastructure factory classes").
import eventsourcing.postgres  # noqa: E402,F401
import eventsourcing.sqlite  # noqa: E402,F401
from eventlet.event import Event  # noqa: E402
from nameko.extensions import DependencyProvider  # noqa: E402

from shared.settings import PING_IDLE_SECONDS, event_store_env  # noqa: E402
from shared.sweep import create_checkpoint_table  # noqa: E402


class EventStore(DependencyProvider):
    """Provides the service's Application; created once per container, closed on stop and kill.

    nameko starts a container's extensions side by side, so its consumers may take requests while a subclass's
    `start` (identity's bootstrap of the first administrator) is still at work: such a request would see a store
    that is not ready (a login refused with 401 during the first seconds, D12). Workers therefore wait here until
    `start` has returned."""

    def __init__(self, application_cls):
        self.application_cls = application_cls
        self.app = None
        self.started = None

    def setup(self):
        env = event_store_env(self.container.config, self.application_cls.name.lower())
        self.app = self.application_cls(env=env)
        ping_when_idle(self.app)
        self.started = Event()
        start = self.start  # this class's, or a subclass's override

        def start_then_serve():
            try:
                start()
            finally:
                if not self.started.ready():
                    self.started.send(True)

        self.start = start_then_serve  # what the container calls

    def get_dependency(self, worker_ctx):
        if not self.started.ready():
            self.started.wait()
        return self.app

    def stop(self):
        self._close()

    def kill(self):
        self._close()

    def _close(self):
        if self.app is not None:
            self.app.close()
            self.app = None


def ping_when_idle(app, idle_seconds=PING_IDLE_SECONDS):
    """On PostgreSQL (POSTGRES_PRE_PING), the pool checks a connection with a round trip before lending it. That
    check is made only for a connection that sat in the pool for `idle_seconds` or more since it was last given
    back: one that went away meanwhile (a restarted server, a terminated backend, a closed idle socket) is found and
    replaced before anyone uses it, while a busy process's connections, given back and lent again within
    milliseconds, cost no extra round trip each. A check never made a connection safe for the statements after it
    anyway: a server lost between the check and a statement fails that statement (eventsourcing retries its own
    reads and writes on such errors). Returns the pool, or None (not PostgreSQL, or no check configured)."""
    pool = getattr(getattr(getattr(app, "recorder", None), "datastore", None), "pool", None)
    check = getattr(pool, "_check", None)
    if pool is None or check is None:
        return None
    give_back = pool.putconn

    def putconn(conn):
        try:
            conn._stratum_given_back = time.monotonic()
        except AttributeError:  # not our connection class: check it every time, as before
            pass
        give_back(conn)

    def check_when_idle(conn):
        given_back = getattr(conn, "_stratum_given_back", None)
        if given_back is None or time.monotonic() - given_back >= idle_seconds:
            check(conn)

    pool.putconn = putconn
    pool._check = check_when_idle
    return pool


def create_tables(config, application_cls):
    """Migrate step: create one service's schema and tables (PostgreSQL) or file (SQLite) before it serves."""
    create_store(event_store_env(config, application_cls.name.lower()), application_cls)


def create_store(env, application_cls):
    """Create the schema and tables an eventsourcing `env` names."""
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        _create_schema(env)
    # one connection is all DDL needs (the services' pools open later, with their own sizes)
    app = application_cls(env=dict(env, CREATE_TABLE="y", POSTGRES_POOL_SIZE="1", POSTGRES_MAX_OVERFLOW="0"))
    try:
        create_checkpoint_table(app)  # where its sweepers keep their place (shared.sweep)
        if hasattr(app, "create_extra_tables"):  # tables of its own beside the events (capture's sensor readings)
            app.create_extra_tables()
    finally:
        app.close()


def _create_schema(env):
    import psycopg

    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
    ) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{env["POSTGRES_SCHEMA"]}"')
