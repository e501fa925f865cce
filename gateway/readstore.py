"""The read database behind every GET and LIST: SQLite under STRATUM_DATA_DIR by default, PostgreSQL (schema
`gateway`) when a DSN is configured. Writes happen only through `apply_feed`, one transaction per batch."""
import functools
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, create_engine, delete, event, exists, func, literal, or_, select, text, type_coerce, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.projection import apply_event
from gateway.tables import (READ_SCHEMA, audit_events, credentials, documents, idempotency_keys, metadata, parked_events,
                            session_activity, tracking)
from shared import uris
from shared.access import OWNED_BY_USER, PLATFORM_RESOURCES
from shared.errors import InvalidPayload, ServiceUnavailable
from shared.settings import postgres_params, read_side_pool

log = logging.getLogger(__name__)
RECONNECT_ATTEMPTS = 3


def read_store_url(config):
    """SQLAlchemy URL of the gateway's read database (projections)."""
    pg = postgres_params(config.get("STRATUM_POSTGRES_DSN"))
    if pg is None:
        data_dir = config["STRATUM_DATA_DIR"]
        os.makedirs(data_dir, exist_ok=True)
        return "sqlite:///" + os.path.abspath(os.path.join(data_dir, "readside.sqlite"))
    # psycopg2 (C) made cooperative with psycogreen: the read side's many small statements cost a fraction of the
    # CPU they cost through psycopg 3's pure-Python mode, which eventlet otherwise requires (style.md §7).
    return URL.create(
        "postgresql+psycopg2", username=pg["user"], password=pg["password"] or None,
        host=pg["host"], port=int(pg["port"]), database=pg["dbname"],
    )


def reconnecting(method):
    """Run a read-side operation again on a fresh connection when the database ended the one it used (a restart, a
    failover, pg_terminate_backend: SQLAlchemy then recycles the whole pool). Each operation is a read or a single
    transaction, so running it again is safe. A database that stays away is a 503, not a 500."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        for attempt in range(1, RECONNECT_ATTEMPTS + 1):
            try:
                return method(self, *args, **kwargs)
            except DBAPIError as error:
                outage = error.connection_invalidated or (not self.is_sqlite and isinstance(error, OperationalError))
                if not outage:
                    raise
                if attempt == RECONNECT_ATTEMPTS:
                    log.warning("read database unreachable in %s: %s", method.__name__, error.orig)
                    raise ServiceUnavailable("The read database cannot be reached.") from None
                log.info("read database connection lost in %s (%s); retrying", method.__name__, error.orig)
                time.sleep(0.2 * attempt)
    return run


def _insert(conn):
    """The dialect's INSERT, which has ON CONFLICT (SQLite's and PostgreSQL's spell it alike)."""
    return sqlite_insert if conn.dialect.name == "sqlite" else pg_insert


def _park(conn, item, reason):
    conn.execute(_insert(conn)(parked_events).values(
        application=item["application"], position=item["position"], uuid=item["uuid"], resource=item["resource"],
        error=reason[:2000], parked_at=datetime.now(timezone.utc).isoformat()).on_conflict_do_nothing())


def _reason(error):
    return f"{type(error).__name__}: {getattr(error, 'orig', None) or error}"[:2000]


@dataclass(frozen=True)
class Scope:
    """What one caller may read: its bureau's documents, less those that belong to another user
    (shared.access.OWNED_BY_USER). Queries also take a bare bureau path (bureau-wide), or None (everything)."""
    bureau: str
    user: str


class ReadStore:
    def __init__(self, url, pool_size=3, max_overflow=5):
        self.engine = create_engine(url, **_engine_options(url, pool_size, max_overflow))
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # SQLite allows one writer; under green threads a writer waiting on another green thread's lock would block
        # the hub, so writers of this process take turns here first.
        self._sqlite_writer = threading.Lock()
        self._tracked = set()  # applications whose tracking row is known to exist (saves a statement per write)

    def create_tables(self):
        if not self.is_sqlite:
            with self.engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{READ_SCHEMA}"'))
        metadata.create_all(self.engine)

    def dispose(self):
        self.engine.dispose()

    @contextmanager
    def _write(self):
        if not self.is_sqlite:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._sqlite_writer, self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock before reading the position
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    # -- the follower's side ------------------------------------------------------------------------------------

    @reconnecting
    def position(self, application):
        with self.engine.connect() as conn:
            value = conn.execute(select(tracking.c.position).where(tracking.c.application == application)).scalar()
        return value or 0

    @reconnecting
    def positions(self):
        with self.engine.connect() as conn:
            return dict(conn.execute(select(tracking.c.application, tracking.c.position)).all())

    @reconnecting
    def apply_feed(self, application, events, last):
        """Apply the events above our position and move the position to `last`, atomically. Returns the position.

        An event this read database cannot take (written by an older release, say, with a value it refuses) must not
        stop the world: the batch is applied again one event at a time, and what fails is parked with its reason
        (parked_events, logged as an error), as is every later event of the same resource, whose document stays as
        it was before the failure rather than go on from a change it never saw. Everything else is applied."""
        try:
            return self._apply_feed(application, events, last, one_by_one=False)
        except DBAPIError as error:
            if error.connection_invalidated or (not self.is_sqlite and isinstance(error, OperationalError)):
                raise  # an outage, not a bad event: `reconnecting` tries again
            failure = error
        except (KeyError, TypeError, ValueError, AttributeError) as error:  # a projection that cannot read the event
            failure = error
        log.error("applying %s's feed up to %s failed (%s); applying it event by event", application, last,
                  _reason(failure))
        return self._apply_feed(application, events, last, one_by_one=True)

    def _apply_feed(self, application, events, last, one_by_one):
        with self._write() as conn:
            if not self.is_sqlite:
                # Views join documents of several feeds (a flat line item reads its order, model and materials).
                # Two feeds applied at once under READ COMMITTED would each miss the other's uncommitted change
                # and leave such a view stale, so appliers take turns, as SQLite's single writer does anyway.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPLY_LOCK})
            current = None if application not in self._tracked else self._locked_position(conn, application)
            if current is None:  # first sight of this feed (or the read side was reset by another process)
                conn.execute(_insert(conn)(tracking).values(application=application, position=0)
                             .on_conflict_do_nothing())
                current = self._locked_position(conn, application)
            held = set(conn.execute(select(parked_events.c.uuid)
                                    .where(parked_events.c.application == application)).scalars())
            for item in events:
                if item["position"] <= current:
                    continue
                if item["uuid"] in held:
                    _park(conn, item, "held behind an earlier event of this resource that could not be applied")
                elif not one_by_one:
                    apply_event(conn, item)
                else:
                    try:
                        with conn.begin_nested():
                            apply_event(conn, item)
                    except (DBAPIError, KeyError, TypeError, ValueError, AttributeError) as error:
                        log.error("parked %s event %s (%s %s): %s", application, item["position"], item["resource"],
                                  item["uuid"], _reason(error))
                        _park(conn, item, _reason(error))
                        held.add(item["uuid"])
            new_position = max(current, last)
            if new_position != current:
                conn.execute(update(tracking).where(tracking.c.application == application)
                             .values(position=new_position))
        self._tracked.add(application)
        return new_position

    @reconnecting
    def parked(self, application=None):
        """The parked events (application, position, resource, uuid, error), oldest first."""
        query = select(parked_events).order_by(parked_events.c.application, parked_events.c.position)
        if application:
            query = query.where(parked_events.c.application == application)
        with self.engine.connect() as conn:
            return conn.execute(query).all()

    def retry_parked(self, application, fetch):
        """Apply parked events again, in order (after a fix: a new projection, a repaired database). What applies
        now leaves the park; a resource whose event still fails keeps its later events parked behind it."""
        failing = set()
        for row in self.parked(application):
            if row.uuid in failing:
                continue
            batch = fetch(row.position, 1)
            event = next((e for e in batch["events"] if e["position"] == row.position), None)
            with self._write() as conn:
                try:
                    with conn.begin_nested():
                        if event is not None:
                            apply_event(conn, event)
                        conn.execute(delete(parked_events).where(parked_events.c.application == application,
                                                                 parked_events.c.position == row.position))
                except (DBAPIError, KeyError, TypeError, ValueError, AttributeError) as error:
                    failing.add(row.uuid)
                    conn.execute(update(parked_events).where(parked_events.c.application == application,
                                                             parked_events.c.position == row.position)
                                 .values(error=_reason(error)))
        return failing

    @staticmethod
    def _locked_position(conn, application):
        return conn.execute(
            select(tracking.c.position).where(tracking.c.application == application).with_for_update()).scalar()

    @reconnecting
    def reset(self):
        """Forget everything (a rebuild from zero follows)."""
        with self._write() as conn:
            for table in (audit_events, credentials, session_activity, documents, tracking, parked_events):
                conn.execute(delete(table))
        self._tracked.clear()

    # -- queries --------------------------------------------------------------------------------------------------

    @reconnecting
    def document(self, path, bureau):
        """The current document at `path`, or None if it does not exist, was deleted, or belongs to another bureau."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(documents.c.doc).where(documents.c.path == path, documents.c.deleted.is_(False),
                                              _documents_visible(bureau))
            ).first()
        return None if row is None else row.doc

    @reconnecting
    def documents(self, spec, bureau, query):
        """(documents, total_count) of `spec` visible to `bureau` under the LIST `query`."""
        conditions = [documents.c.resource == spec.name, documents.c.deleted.is_(False),
                      _documents_visible(bureau, spec.name)]
        conditions += [self._doc_filter(spec, f) for f in query.filters]
        order = [self._doc_order(spec, name, desc) for name, desc in query.sort]
        order += [documents.c.doc["created"].as_string(), documents.c.path]
        return self._page([documents.c.path, documents.c.doc], documents, conditions, order, query)

    @reconnecting
    def audit(self, spec, bureau, query):
        conditions = [_audit_visible(bureau)]
        conditions += [_column_filter(_audit_column(f.field), _audit_values(f)) for f in query.filters]
        order = [_audit_column(name).desc() if desc else _audit_column(name) for name, desc in query.sort]
        order += [audit_events.c.id]
        return self._page([audit_events], audit_events, conditions, order, query)

    @reconnecting
    def audit_row(self, uuid, bureau):
        with self.engine.connect() as conn:
            return conn.execute(select(audit_events).where(
                audit_events.c.uuid == uuid, _audit_visible(bureau))).first()

    @reconnecting
    def credential(self, uuid):
        with self.engine.connect() as conn:
            return conn.execute(
                select(credentials, session_activity.c.last_seen)
                .join(session_activity, session_activity.c.uuid == credentials.c.uuid, isouter=True)
                .where(credentials.c.uuid == uuid)).first()

    @reconnecting
    def touch_session(self, uuid, now):
        """Record activity (callers throttle this: it is a write)."""
        with self._write() as conn:
            conn.execute(_insert(conn)(session_activity).values(uuid=uuid, last_seen=now)
                         .on_conflict_do_update(index_elements=["uuid"], set_={"last_seen": now}))

    @reconnecting
    def claim_idempotency_key(self, owner, key, fingerprint, now):
        """The fingerprint of the request `owner` first sent with `key` (this one's, when this is the first)."""
        with self._write() as conn:
            conn.execute(_insert(conn)(idempotency_keys).values(owner=owner, key=key, fingerprint=fingerprint, created=now)
                         .on_conflict_do_nothing())
            return conn.execute(select(idempotency_keys.c.fingerprint).where(
                idempotency_keys.c.owner == owner, idempotency_keys.c.key == key)).scalar()

    @reconnecting
    def roles_of(self, user, bureau):
        """The roles `user` holds in `bureau`, from the role documents."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(documents.c.doc).where(
                documents.c.resource == "role", documents.c.bureau == bureau, documents.c.deleted.is_(False),
                documents.c.doc["user"].as_string() == user)).all()
        return [row.doc.get("role") for row in rows]

    def _page(self, columns, table, conditions, order, query):
        """One page and the total count, in one statement (the count rides along as a window over the filter);
        only a page past the end needs a second statement to learn the total."""
        where = and_(*conditions)
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns, func.count().over().label("_total")).where(where).order_by(*order)
                                .limit(query.limit).offset(query.offset)).all()
            if rows:
                return rows, rows[0]._total
            total = conn.execute(select(func.count()).select_from(table).where(where)).scalar() if query.offset else 0
        return rows, total

    def _doc_value(self, spec, name):
        field = spec.fields[name]
        element = documents.c.doc[name]
        kind = field.type
        if kind == "integer":
            return element.as_integer()
        if kind == "number":
            return element.as_float()
        if kind == "boolean":
            return element.as_boolean()
        return element.as_string()

    def _doc_order(self, spec, name, descending):
        value = self._doc_value(spec, name) if spec.fields[name].type != "array" else documents.c.doc[name].as_string()
        return value.desc() if descending else value

    def _doc_filter(self, spec, flt):
        if spec.fields[flt.field].type == "array":
            return self._array_contains_any(flt.field, flt.values)
        return _column_filter(self._doc_value(spec, flt.field), flt)

    def _array_contains_any(self, name, values):
        if self.is_sqlite:
            items = func.json_each(documents.c.doc, f'$."{name}"').table_valued("value")
            return exists(select(literal(1)).select_from(items).where(items.c.value.in_(values)))
        # the column is JSON in general and JSONB on PostgreSQL: coerce it so the JSONB `?|` operator is available
        return type_coerce(documents.c.doc, JSONB)[name].has_any(postgresql.array([str(v) for v in values]))


# The audit log's filterable and sortable fields: its columns, and `uri` (/event/<uuid>/) as the row's uuid. The
# values before and after a change are JSON of any shape: no filter or order is defined on them.
_AUDIT_COLUMNS = {"bureau": "bureau", "created": "created", "key": "key", "reference": "reference", "user": "user",
                  "uri": "uuid"}


def _audit_column(name):
    if name not in _AUDIT_COLUMNS:
        raise InvalidPayload(f"Events cannot be filtered or sorted by '{name}'; use one of: "
                             f"{', '.join(sorted(_AUDIT_COLUMNS))}.", field=name)
    return audit_events.c[_AUDIT_COLUMNS[name]]


def _audit_values(flt):
    if flt.field != "uri":
        return flt
    return type(flt)(flt.field, flt.op, [uris.uuid_of(v) if isinstance(v, str) and v.startswith("/") else v
                                         for v in flt.values])


def _bureau_clause(column, bureau):
    """bureau=None means unrestricted (internal callers and platform administrators)."""
    if isinstance(bureau, Scope):
        bureau = bureau.bureau
    return literal(True) if bureau is None else column == bureau


def _owned(resource, field, scope):
    """The documents of `resource` that are the scope's user's own."""
    return and_(documents.c.resource == resource, documents.c.doc[field].as_string() == uris.uuid_of(scope.user))


def _documents_visible(scope, resource=None):
    """The documents `scope` may read: its bureau's, less other users' own (for one resource, when it is known)."""
    clause = _bureau_clause(documents.c.bureau, scope)
    if scope is not None:  # platform reference data (shared.access.PLATFORM_RESOURCES) is every bureau's to read
        clause = or_(clause, and_(documents.c.bureau.is_(None), documents.c.resource.in_(sorted(PLATFORM_RESOURCES))))
    if not isinstance(scope, Scope):
        return clause
    for owned, field in OWNED_BY_USER.items():
        if resource in (None, owned):
            clause = and_(clause, or_(documents.c.resource != owned, _owned(owned, field, scope)))
    return clause


def _audit_visible(scope):
    """The audit rows `scope` may read: its bureau's, less those about another user's own resources."""
    clause = _bureau_clause(audit_events.c.bureau, scope)
    if not isinstance(scope, Scope):
        return clause
    for owned, field in OWNED_BY_USER.items():
        mine = exists(select(literal(1)).where(documents.c.path == audit_events.c.reference,
                                               _owned(owned, field, scope)))
        clause = and_(clause, or_(~audit_events.c.reference.startswith(f"/{owned}/", autoescape=True), mine))
    return clause


def _column_filter(column, flt):
    if flt.op == ">":
        return column > flt.values[0]
    if flt.op == "<":
        return column < flt.values[0]
    present = [v for v in flt.values if v is not None]
    clauses = [column.in_(present)] if present else []
    if len(present) < len(flt.values):
        clauses.append(column.is_(None))
    return or_(*clauses)


_APPLY_LOCK = 0x57A7_0001  # the read side's advisory lock key ("STratum" 1)


def read_store(config):
    """The read store a process's config names, with the read-side pool its settings allow."""
    pool_size, max_overflow = read_side_pool(config)
    return ReadStore(read_store_url(config), pool_size=pool_size, max_overflow=max_overflow)


def _engine_options(url, pool_size, max_overflow):
    if str(url).startswith("postgresql+psycopg2"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()  # psycopg2 waits through the eventlet hub instead of blocking it (idempotent)
    if str(url).startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_size": pool_size, "max_overflow": max_overflow, "pool_pre_ping": True,
            "execution_options": {"schema_translate_map": {None: READ_SCHEMA}}}


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
