"""One place that turns the process environment into the nameko config dict every Stratum process uses.

Service code reads settings only from `container.config` (never `os.environ`), so tests can hand a container
a config built by `build_config(overrides)` without touching the environment. What the plumbing derives from the
config (event-store environment, blob directory, secret key) is in shared.settings.
"""
import os

DEFAULTS = {
    "STRATUM_DATA_DIR": "./var",
    "STRATUM_POSTGRES_DSN": "",
    "STRATUM_HOST": "127.0.0.1",
    "STRATUM_PORT": "8000",
    "STRATUM_BASE_URL": "",
    "STRATUM_RPC_TIMEOUT": "30",
    "STRATUM_DELIVERY_LIMIT": "5",  # deliveries that end without an ack before a message is set aside (dead_letter)
    "STRATUM_ADMIN_EMAIL": "admin@stratum.local",
    "STRATUM_ADMIN_PASSWORD": "",
    "STRATUM_BUREAU_NAME": "Stratum Bureau",
    "STRATUM_SECRET_KEY": "",
    "STRATUM_SESSION_IDLE_MINUTES": "480",
    "AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/",
    "STRATUM_MQTT_PORT": "1884",  # RabbitMQ's MQTT plugin, where machines report (runtime.mqtt; 1883 is often taken)
    "STRATUM_MAX_WORKERS": "10",
    # "all": every list-key field indexed from the start, as releases before 0.2 did; otherwise a field's index is built
    # on its first LIST (README "List indexes on first use"). gateway.indexes reads it from the environment it runs in
    "STRATUM_LIST_INDEXES": "",
    # gateway processes `make run` starts on STRATUM_PORT (SO_REUSEPORT; shared.settings.gateway_processes); behind
    # compose or Kubernetes: the number of gateway replicas (the per-address login limit is split between them)
    "STRATUM_GATEWAY_PROCESSES": "1",
    # PostgreSQL connections (runtime.budget adds them up per process; README "Connection budget"):
    "STRATUM_PG_POOL_SIZE": "2",  # each service's event store: kept open from start…
    "STRATUM_PG_MAX_OVERFLOW": "3",  # …and at most this many more while busy
    "STRATUM_READ_POOL_SIZE": "3",  # the read side (gateway, projector): kept once used…
    "STRATUM_READ_MAX_OVERFLOW": "5",  # …and at most this many more while busy
    "STRATUM_BLOB_DIR": "",  # default: <STRATUM_DATA_DIR>/blobs; gateway and files service must share it
    "STRATUM_MAX_UPLOAD_MB": "512",
    "STRATUM_MAX_BODY_KB": "1024",  # a JSON or form request body (file bytes go to the upload links instead)
    "STRATUM_STRICT_FIELDS": "",  # 1: unknown fields are a 400 for every client (else: Prefer: handling=strict)
    "STRATUM_CORS_ORIGINS": "",  # browser applications on other origins allowed to call the API, comma-separated
    "STRATUM_DOWNLOAD_LINK_SECONDS": "300",  # files.md §0.2: content links are short-lived
    "STRATUM_UPLOAD_LINK_SECONDS": "86400",
    "STRATUM_ANALYSIS_TIMEOUT": "600",
    "STRATUM_ANALYSIS_CONCURRENCY": "2",
    "STRATUM_ANALYSIS_MEMORY_MB": "8192",  # per analysis or render child; ~550 bytes per triangle at the peak
    "STRATUM_ZIPFILE_HOURS": "24",
    "STRATUM_SWEEP_SECONDS": "660",  # background work still waiting this long after it was asked for is re-started
    "STRATUM_SWEEP_INTERVAL": "30",  # how often each service looks for such work
    # model callbacks and order webhooks may call internal addresses: 1 = all (on-premise), or a list of networks
    "STRATUM_CALLBACKS_ALLOW_PRIVATE": "",
    # notifications (README "Notifications"): mail through this SMTP server (smtp://[user:pass@]host:port[?starttls=1]
    # or smtps://…); empty: mails are written to <STRATUM_DATA_DIR>/outbox
    "STRATUM_SMTP_URL": "",
    "STRATUM_MAIL_FROM": "notifications@stratum.local",
    "STRATUM_DELIVERY_MAX_ATTEMPTS": "5",  # a mail or webhook is given up (status failed) after this many tries…
    "STRATUM_DELIVERY_BACKOFF_SECONDS": "30",  # …waiting this × 2^(n-1) seconds after the n-th failed one
    "STRATUM_DELIVERY_LEASE_SECONDS": "120",  # an attempt interrupted by a crash is made again after this long
    "STRATUM_WEBHOOK_SECRET": "",  # HMAC key of X-Stratum-Signature (default: derived from the secret key)
    "STRATUM_SUPPORT_EMAIL": "",  # where /contact-us/ requests are mailed (default: STRATUM_ADMIN_EMAIL)
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
