"""One place that turns the process environment into the nameko config dict every Stratum process uses.

Service code reads settings only from `container.config` (never `os.environ`), so tests can hand a container
a config built by `build_config(overrides)` without touching the environment.
"""
import os
import secrets
from urllib.parse import unquote, urlparse

DEFAULTS = {
    "STRATUM_DATA_DIR": "./var",
    "STRATUM_POSTGRES_DSN": "",
    "STRATUM_HOST": "127.0.0.1",
    "STRATUM_PORT": "8000",
    "STRATUM_BASE_URL": "",
    "STRATUM_RPC_TIMEOUT": "30",
    "STRATUM_ADMIN_EMAIL": "admin@stratum.local",
    "STRATUM_ADMIN_PASSWORD": "",
    "STRATUM_BUREAU_NAME": "Stratum Bureau",
    "STRATUM_SECRET_KEY": "",
    "STRATUM_SESSION_IDLE_MINUTES": "480",
    "AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/",
    "STRATUM_MAX_WORKERS": "10",
    "STRATUM_BLOB_DIR": "",  # default: <STRATUM_DATA_DIR>/blobs; gateway and files service must share it
    "STRATUM_MAX_UPLOAD_MB": "512",
    "STRATUM_DOWNLOAD_LINK_SECONDS": "300",  # files.md §0.2: content links are short-lived
    "STRATUM_UPLOAD_LINK_SECONDS": "86400",
    "STRATUM_ANALYSIS_TIMEOUT": "600",
    "STRATUM_ANALYSIS_CONCURRENCY": "2",
    "STRATUM_ANALYSIS_MEMORY_MB": "8192",  # per analysis or render child; ~550 bytes per triangle at the peak
    "STRATUM_ZIPFILE_HOURS": "24",
    "STRATUM_SWEEP_SECONDS": "660",  # background work still waiting this long after it was asked for is re-started
    "STRATUM_SWEEP_INTERVAL": "30",  # how often each service looks for such work
    "STRATUM_CALLBACKS_ALLOW_PRIVATE": "",  # 1: model callbacks may call internal addresses (on-premise, tests)
}


def build_config(overrides=None, environ=None):
    """Return the nameko config: defaults < environment < overrides."""
    environ = os.environ if environ is None else environ
    config = {key: environ.get(key, default) for key, default in DEFAULTS.items()}
    config.update(overrides or {})
    config["WEB_SERVER_ADDRESS"] = f"{config['STRATUM_HOST']}:{config['STRATUM_PORT']}"
    config["max_workers"] = int(config["STRATUM_MAX_WORKERS"])
    # eventlet and nameko both emit heartbeats; keep nameko's default but make it explicit.
    config.setdefault("HEARTBEAT", 60)
    return config


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
        "POSTGRES_POOL_SIZE": "5",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_PRE_PING": "y",
        "CREATE_TABLE": config.get("STRATUM_CREATE_TABLES", "n"),
    }


def read_store_url(config):
    """SQLAlchemy URL of the gateway's read database (projections)."""
    pg = postgres_params(config.get("STRATUM_POSTGRES_DSN"))
    if pg is None:
        data_dir = config["STRATUM_DATA_DIR"]
        os.makedirs(data_dir, exist_ok=True)
        return "sqlite:///" + os.path.abspath(os.path.join(data_dir, "readside.sqlite"))
    from sqlalchemy.engine import URL

    # psycopg2 (C) made cooperative with psycogreen: the read side's many small statements cost a fraction of the
    # CPU they cost through psycopg 3's pure-Python mode, which eventlet otherwise requires (style.md §7).
    return URL.create(
        "postgresql+psycopg2", username=pg["user"], password=pg["password"] or None,
        host=pg["host"], port=int(pg["port"]), database=pg["dbname"],
    )
