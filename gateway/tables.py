"""The read database: current documents, the audit log, session credentials, and each feed's position."""
from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
READ_SCHEMA = "gateway"  # PostgreSQL schema of the read side (SQLite has none)

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

audit_events = Table(
    "audit_events", metadata,
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
    Index("ix_audit_reference", "reference"),
    Index("ix_audit_bureau", "bureau", "id"),
)

auth_sessions = Table(
    "auth_sessions", metadata,
    Column("uuid", String(36), primary_key=True),
    Column("secret_hash", Text, nullable=False),
    Column("user", String(200), nullable=False),
    Column("bureau", String(200)),
    Column("expires", String(40), nullable=False),
    Column("ended", Boolean, nullable=False, default=False),
)
