"""The read database: current documents, the audit log, session credentials, and each feed's position."""
from sqlalchemy import (JSON, BigInteger, Boolean, Column, Index, Integer, MetaData, SmallInteger, String, Table, Text,
                        Uuid)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

metadata = MetaData()
READ_SCHEMA = "gateway"  # PostgreSQL schema of the read side (SQLite has none)


def dialect_insert(conn):
    """The dialect's INSERT, which has ON CONFLICT (SQLite's and PostgreSQL's spell it alike)."""
    return sqlite_insert if conn.dialect.name == "sqlite" else pg_insert

_json = JSON().with_variant(JSONB(), "postgresql")
_id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY

tracking = Table(
    "tracking", metadata,
    Column("application", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

documents = Table(
    "documents", metadata,
    Column("path", String(200), primary_key=True),  # /order/<uuid>/
    Column("resource", String(64), nullable=False),
    Column("bureau", String(200)),
    Column("doc", _json, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Index("ix_documents_resource_bureau", "resource", "bureau"),
)

# The audit log: one row per change of one resource by one event (its API fields' changes together, as
# [[key, previous, current], …] in `changes`), expanded on read into the per-field items of /event/ (see
# gateway.readstore.ReadStore.audit). `id` is given by the applier (it holds the write lock), in feed order.
# `tenant` is the bureau's number in gateway.indexes.tenants (NULL: no bureau), as the list keys hold it: a 4-byte
# key in the row and its four bureau-first indexes instead of the bureau's ~47-byte path (releases before stored the
# path in a `bureau` column: ReadStore.create_tables converts such a table in place).
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("application", String(64), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("tenant", Integer),
    Column("reference", String(200), nullable=False),
    Column("user", String(200)),
    Column("created", String(40), nullable=False),
    Column("changes", JSON, nullable=False),  # JSON text, not JSONB: read whole, never queried inside (and smaller)
    Index("ix_audit_log_reference", "reference"),
    Index("ix_audit_log_tenant", "tenant", "id"),
)

# The per-field key index of the audit log: each /event/ item's stable uuid (uuid5 of application, position, [about,]
# key: gateway.projection._audit) and its place in its row's `changes` (whose entry names the field). What lets
# /event/ filter and sort by uri and key, count per field, and GET one item by uuid, without storing any value (or
# even the field's name) twice. The index on log_id alone is small: PostgreSQL's B-tree deduplicates its repeats.
audit_keys = Table(
    "audit_keys", metadata,
    Column("uuid", Uuid(as_uuid=False), primary_key=True),
    Column("log_id", BigInteger, nullable=False),
    Column("ordinal", SmallInteger, nullable=False),
    Index("ix_audit_keys_log", "log_id"),
)

# The audit table of releases up to 0.1.x (one row per changed field, values included). Not created any more:
# ReadStore.create_tables converts one it finds into audit_log/audit_keys (same uuids) and drops it.
legacy_metadata = MetaData()
legacy_audit_events = Table(
    "audit_events", legacy_metadata,
    Column("id", _id, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("application", String(64), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("bureau", String(200)),
    Column("reference", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("previous_value", _json),
    Column("current_value", _json),
    Column("user", String(200)),
    Column("created", String(40), nullable=False),
)

# Sessions and API tokens: what the gateway checks a request's credentials against (hashes only).
credentials = Table(
    "credentials", metadata,
    Column("uuid", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # session | token
    Column("secret_hash", Text, nullable=False),
    Column("user", String(200), nullable=False),
    Column("bureau", String(200)),
    Column("platform_admin", Boolean, nullable=False, default=False),
    Column("expires", String(40)),
    Column("ended", Boolean, nullable=False, default=False),
)

# Last activity per session: operational state for inactivity expiry, not an event (it changes on every request).
session_activity = Table(
    "session_activity", metadata,
    Column("uuid", String(36), primary_key=True),
    Column("last_seen", String(40), nullable=False),
)

# Idempotency keys: which request each caller's key was first used for. Kept apart from the projections (a rebuild
# of the read side does not forget them), so a key reused with another body, path or method is recognised.
idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("owner", String(200), primary_key=True),  # the caller's user path
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # sha256 of method, path and body
    Column("created", String(40), nullable=False),
)

# Events the read side could not apply (an event an older release stored that this read database refuses, e.g. a NUL
# in a string on PostgreSQL), with the reason; later events of the same resource wait here behind it. Everything else
# keeps flowing; the projector retries them (gateway.readstore.ReadStore.retry_parked), and /health/ready counts them.
parked_events = Table(
    "parked_events", metadata,
    Column("application", String(64), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("resource", String(64), nullable=False),
    Column("error", Text, nullable=False),
    Column("parked_at", String(40), nullable=False),
    Index("ix_parked_events_resource", "application", "uuid"),
)
