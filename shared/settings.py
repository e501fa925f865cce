"""What the shared plumbing reads from a process's config dict: where the event stores, the blobs and the secret key
are. Pure functions of the config (plus the data directory they may create); the config itself is built from the
environment by runtime.config, and service code reads settings only from `container.config`, never `os.environ`.
"""
import os
import secrets
from urllib.parse import unquote, urlparse


def secret_key(config):
    """STRATUM_SECRET_KEY, or a key generated once and kept in the data directory (shared by local processes).
    It signs sessions' CSRF tokens and file links, and derives the key that encrypts stored files: every process of
    one deployment must share it (set STRATUM_SECRET_KEY when they do not share a data directory)."""
    if config.get("STRATUM_SECRET_KEY"):
        return config["STRATUM_SECRET_KEY"].encode()
    path = os.path.join(config["STRATUM_DATA_DIR"], "secret-key")
    if not os.path.exists(path):
        os.makedirs(config["STRATUM_DATA_DIR"], exist_ok=True)
        try:
            with open(path, "x") as handle:
                handle.write(secrets.token_hex(32))
        except FileExistsError:
            pass  # another process wrote it first
    with open(path) as handle:
        return handle.read().strip().encode()


# A pooled connection idle this long is checked with a round trip before it is lent (shared.eventstore.ping_when_idle)
PING_IDLE_SECONDS = 1.0


def gateway_processes(config):
    """How many gateway processes the deployment runs: STRATUM_GATEWAY_PROCESSES (1 by default: on a busy 2-core
    machine a second one took no more orders/s for the same CPU, and the live lag at load grew, bench/README.md
    "Round 7").
    runtime.launch starts that many on one port; the gateway splits its per-address login limit between them
    (gateway.ratelimit). Behind compose or Kubernetes, where each replica is a container of its own, set it to the
    number of gateway replicas."""
    value = str(config.get("STRATUM_GATEWAY_PROCESSES") or "1").strip()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        raise ValueError(f"STRATUM_GATEWAY_PROCESSES must be a whole number from 1 to 64, not {value!r}")
    return count


def blob_dir(config):
    return config.get("STRATUM_BLOB_DIR") or os.path.join(config["STRATUM_DATA_DIR"], "blobs")


def postgres_params(dsn):
    """Split a `postgresql://user:pass@host:port/dbname` DSN into its parts (empty DSN → None)."""
    if not dsn:
        return None
    parsed = urlparse(dsn)
    if parsed.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"STRATUM_POSTGRES_DSN must start with postgresql://, got {dsn!r}")
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": str(parsed.port or 5432),
        "user": unquote(parsed.username or "postgres"),
        "password": unquote(parsed.password or ""),
        "dbname": (parsed.path or "/postgres").lstrip("/") or "postgres",
    }


def event_store_env(config, service):
    """The `eventsourcing` environment for one service's event store.

    SQLite: one file per service under STRATUM_DATA_DIR. PostgreSQL: one schema per service in the configured
    database; tables come from the migrate step, so services run with CREATE_TABLE off (no first-boot DDL race).
    """
    pg = postgres_params(config.get("STRATUM_POSTGRES_DSN"))
    if pg is None:
        data_dir = config["STRATUM_DATA_DIR"]
        os.makedirs(data_dir, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": os.path.join(data_dir, f"{service}.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": pg["dbname"],
        "POSTGRES_HOST": pg["host"],
        "POSTGRES_PORT": pg["port"],
        "POSTGRES_USER": pg["user"],
        "POSTGRES_PASSWORD": pg["password"],
        "POSTGRES_SCHEMA": service,
        # psycopg_pool opens POOL_SIZE connections at start and keeps them; up to MAX_OVERFLOW more while busy.
        "POSTGRES_POOL_SIZE": str(event_store_pool(config)[0]),
        "POSTGRES_MAX_OVERFLOW": str(event_store_pool(config)[1]),
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_PRE_PING": "y",
        "CREATE_TABLE": config.get("STRATUM_CREATE_TABLES", "n"),
        "APPLICATION_RECORDER_TOPIC": "shared.recorders:ApplicationRecorder",  # no NOTIFY per write
        "PROCESS_RECORDER_TOPIC": "shared.recorders:ProcessRecorder",
    }


def event_store_pool(config):
    """(pool size, max overflow) of one service's event-store pool on PostgreSQL: STRATUM_PG_POOL_SIZE connections
    are opened at start and kept, up to STRATUM_PG_MAX_OVERFLOW more while it is busy (closed after 10 idle
    minutes). Writes to one event store are serialised by its table lock anyway, so a few connections suffice."""
    return _count(config, "STRATUM_PG_POOL_SIZE", 2), _count(config, "STRATUM_PG_MAX_OVERFLOW", 3)


def read_side_pool(config):
    """(pool size, max overflow) of one process's read-side pool (SQLAlchemy) on PostgreSQL: up to
    STRATUM_READ_POOL_SIZE connections kept once used, up to STRATUM_READ_MAX_OVERFLOW more while busy."""
    return _count(config, "STRATUM_READ_POOL_SIZE", 3), _count(config, "STRATUM_READ_MAX_OVERFLOW", 5)


def _count(config, key, default):
    value = config.get(key)
    number = default if value in (None, "") else int(value)
    if number < 0:
        raise ValueError(f"{key} must be 0 or more, got {value!r}")
    return number
