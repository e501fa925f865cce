"""The read database behind every GET and LIST: SQLite under STRATUM_DATA_DIR by default, PostgreSQL (schema
`gateway`) when a DSN is configured. Writes happen only through `apply_feed`, one transaction per batch."""
import functools
import gc
import json
import logging
import os
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from datetime import datetime, timezone

import orjson
from sqlalchemy import (Column, Integer, Text, and_, bindparam, cast, create_engine, delete, event, exists, func,
                        inspect, literal, literal_column, or_, select, text, type_coerce, union_all, update)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.exc import DBAPIError, OperationalError

from gateway import audit_changes, cursors, indexes, list_index_builds, production_views, run_pool_views, shapes, totals
from gateway.batch import Batch, FromZero, reference_sql
from gateway.projection import apply_event, prefetch, writes_at_once
from gateway.tables import (READ_SCHEMA, audit_keys, audit_log, credentials, dialect_insert, documents,
                            idempotency_keys, legacy_audit_events, metadata, parked_events, session_activity, tracking)
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


_insert = dialect_insert


def _park(conn, item, reason):
    conn.execute(_insert(conn)(parked_events).values(
        application=item["application"], position=item["position"], uuid=item["uuid"], resource=item["resource"],
        error=reason[:2000], parked_at=datetime.now(timezone.utc).isoformat()).on_conflict_do_nothing())


def _reason(error):
    return f"{type(error).__name__}: {getattr(error, 'orig', None) or error}"[:2000]


@contextmanager
def _collector_paused():
    """A batch allocates a great many short-lived objects (documents, rows, JSON) and next to no cycles; Python's
    cycle collector would walk every live object of the process over and over meanwhile (about a tenth of a
    rebuild's time, measured). It runs again when the batch is written."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _move_position(conn, application, current, position):
    if position != current:
        conn.execute(update(tracking).where(tracking.c.application == application).values(position=position))


class _Superseded(Exception):
    """A pipelined batch found, when written, that another applier wrote since the reset."""


@dataclass
class _InFlight:
    """A pipelined batch being written (ReadStore._apply_pipelined): its feed slice, to apply again if it is not."""
    application: str
    events: list
    last: int
    prepared: object  # gateway.batch.Prepared
    future: object  # of ReadStore._write_pipelined


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
        self._writer = self.engine
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # The writers' own connection, in autocommit mode from its start (each write says BEGIN IMMEDIATE). Not
            # the readers' pool with a per-checkout isolation_level="AUTOCOMMIT": SQLAlchemy resets that at every
            # return with `PRAGMA read_uncommitted`, and a flag pragma expires every statement the connection has
            # prepared. Then each batch prepared its upsert into `documents` again, with the ~650 list-key triggers
            # compiled into it: ~28 ms of CPU per write whatever its size (measured), most of the projector's cost.
            self._writer = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=2,
                                         **_engine_options(url, pool_size, max_overflow))
            event.listen(self._writer, "connect", _sqlite_pragmas)
        # SQLite allows one writer; under green threads a writer waiting on another green thread's lock would block
        # the hub, so writers of this process take turns here first.
        self._sqlite_writer = threading.Lock()
        self._tracked = set()  # applications whose tracking row is known to exist (saves a statement per write)
        self._from_zero = None  # a FromZero while this process loads what it emptied (reset) and nobody else wrote
        self._bulk = False  # this process runs a bulk load (begin_bulk_load … end_bulk_load)
        # A bulk load from zero writes each batch on a thread of its own while the next is projected
        # (_apply_pipelined): on PostgreSQL the server's work on a batch then overlaps the projection of the next, on
        # the other core. Measured on a quiet machine (bench/README.md, Round 7): 1,914 / 1,867 → 2,289 / 2,170
        # events/s, the same CPU. SQLite writes in this process, under the same GIL: no gain there (1,369 / 1,533 →
        # 1,425 / 1,371), so it keeps the plain path. `bench.rebuild --plain` measures the plain path again.
        self.pipelined = not self.is_sqlite
        self._in_flight = None  # _InFlight: the batch being written meanwhile
        self._writer_thread = None  # its ThreadPoolExecutor, while a pipelined load runs
        self._shapes = shapes.Shapes()  # the LIST statements, per shape
        # a list (_list_identity) → its _Plan (by offset) or _KeysetPlans (after a cursor), for the list asked again
        self._plans = shapes.Shapes()
        self._estimates = totals.Estimates()  # totals past the count's bound, per list, for a few seconds
        self._drivers = {}  # statement → shapes.Driver (`_run`)
        self._schema_map = None if self.is_sqlite else {None: READ_SCHEMA}
        self.list_index_builds = list_index_builds.ListIndexBuilds(self.engine, self._write)

    def create_tables(self):
        """Create what is missing (the migrate step runs this on every deployment): the tables, the indexes the
        projector's reference look-ups use, and the audit log converted from an earlier release's audit table.
        A bulk load this store began (and died in: the tests' crash) is over once this has run (indexes.create ends
        it), so its writes go the live way from here: each committed before apply_feed returns."""
        self._stop_writer()
        self._bulk = False
        if not self.is_sqlite:
            with self.engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{READ_SCHEMA}"'))
        metadata.create_all(self.engine)
        with self._write() as conn:
            self._take_turn(conn)
            for statement in reference_indexes(conn.dialect.name, None if self.is_sqlite else READ_SCHEMA):
                conn.exec_driver_sql(statement)
            schema = None if self.is_sqlite else READ_SCHEMA
            indexes.tenants.create(conn, checkfirst=True)  # the audit log's rows name their bureau by its number
            if inspect(conn).has_table(legacy_audit_events.name, schema=schema):
                converted = _convert_legacy_audit(conn)
                log.warning("read side: converted %d rows of the per-field audit table of an earlier release into "
                            "the audit log (same /event/ uuids) and dropped it", converted)
            if "bureau" in {c["name"] for c in inspect(conn).get_columns(audit_log.name, schema=schema)}:
                converted = _convert_audit_bureaus(conn)
                log.warning("read side: the audit log's %d rows name their bureau by its number now", converted)
            indexes.create(conn)  # every resource's list keys and the audit log's indexes (gateway.indexes)

    def dispose(self):
        self._stop_writer()
        self.engine.dispose()
        if self._writer is not self.engine:
            self._writer.dispose()

    @contextmanager
    def _write(self):
        if not self.is_sqlite:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._sqlite_writer, self._writer.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock before reading the position
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    @contextmanager
    def _reading(self):
        """A connection for reads. On PostgreSQL its statements run in autocommit: under READ COMMITTED each
        statement of a transaction reads its own snapshot anyway, so a read answers the same, but a transaction
        cost two round trips more (green psycopg2 sends its BEGIN on its own, and the ROLLBACK when the connection
        returns to the pool), and every request ran two of them (the credential, then the document or the page):
        strace counted 7.6 sends a request to 3.6. The connection leaves autocommit before it returns to the pool
        (psycopg2 sets the flag on the client only), so a writer's `engine.begin()` still gets a transaction."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                yield conn
                return
            dbapi_connection = conn.connection.dbapi_connection
            dbapi_connection.autocommit = True
            try:
                yield conn
            finally:
                if not dbapi_connection.closed:  # an invalidated connection is closed and discarded anyway
                    dbapi_connection.autocommit = False

    @contextmanager
    def _cursor(self):
        """A driver cursor on a pooled connection for reads (`_reading`'s autocommit on PostgreSQL), for statements
        run without SQLAlchemy's execution layer (gateway.shapes.Driver). A driver error leaves as SQLAlchemy's
        would (a DBAPIError, `connection_invalidated` when the database ended the connection, which is then
        discarded with the rest of the pool), so `reconnecting` retries it and a database that stays away is a 503."""
        dialect = self.engine.dialect
        try:
            fairy = self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as error:  # no connection to be had (the database is down)
            raise DBAPIError.instance(None, None, error, dialect.loaded_dbapi.Error, dialect=dialect,
                                      connection_invalidated=dialect.is_disconnect(error, None, None)) from error
        try:
            if not self.is_sqlite:
                fairy.dbapi_connection.autocommit = True
            cursor = fairy.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        except dialect.loaded_dbapi.Error as error:
            gone = dialect.is_disconnect(error, fairy.dbapi_connection, None)
            if gone:
                self.engine.pool._invalidate(fairy, error)  # as SQLAlchemy's Connection does on a disconnect
            raise DBAPIError.instance(None, None, error, dialect.loaded_dbapi.Error, connection_invalidated=gone,
                                      dialect=dialect) from error
        finally:
            connection = fairy.dbapi_connection
            if not self.is_sqlite and connection is not None and not connection.closed:
                try:
                    connection.autocommit = False
                except dialect.loaded_dbapi.Error:
                    fairy.invalidate()
            fairy.close()

    def _run(self, statement, params):
        """The rows of one of the statements every request runs (the credential, a document by path), compiled
        once per store and run on a driver cursor."""
        driver = self._drivers.get(statement)
        if driver is None:
            driver = self._drivers[statement] = shapes.Driver(self.engine.dialect, statement, self._schema_map)
        with self._cursor() as cursor:
            return driver.run(cursor, params)

    # -- the follower's side ------------------------------------------------------------------------------------

    @reconnecting
    def position(self, application):
        self._settle()  # a pipelined batch in flight is committed (or applied again) before anything is read
        with self._reading() as conn:  # no transaction: one round trip (followers ask it for every ring they hear)
            value = conn.execute(select(tracking.c.position).where(tracking.c.application == application)).scalar()
        return value or 0

    @reconnecting
    def positions(self):
        self._settle()
        with self._reading() as conn:
            return dict(conn.execute(select(tracking.c.application, tracking.c.position)).all())

    @reconnecting
    def apply_feed(self, application, events, last, after=None):
        """Apply the events above our position and move the position to `last`, atomically. Returns the position.

        `after`: the position the events continue (for a writer's slices past a gap). Should the store not hold that
        far once this applier has its turn, nothing is applied and the store's position is returned: the gap is
        another applier's to fill, or the caller's to pull.

        An event this read database cannot take (written by an older release, say, with a value it refuses) must not
        stop the world: the batch is applied again one event at a time, and what fails is parked with its reason
        (parked_events, logged as an error), as is every later event of the same resource, whose document stays as
        it was before the failure rather than go on from a change it never saw. Everything else is applied."""
        if self._pipelining() and not any(writes_at_once(item) for item in events):
            return self._apply_pipelined(application, events, last)
        self._settle()
        try:
            return self._apply_feed(application, events, last, after, one_by_one=False)
        except DBAPIError as error:
            if error.connection_invalidated or (not self.is_sqlite and isinstance(error, OperationalError)):
                raise  # an outage, not a bad event: `reconnecting` tries again
            failure = error
        except (KeyError, TypeError, ValueError, AttributeError) as error:  # a projection that cannot read the event
            failure = error
        log.error("applying %s's feed up to %s failed (%s); applying it event by event", application, last,
                  _reason(failure))
        self._from_zero = None  # the event-by-event writes are not counted in it: the rest of the load reads as usual
        return self._apply_feed(application, events, last, after, one_by_one=True)

    def _turn_at(self, conn, application):
        """Take this applier's turn in `conn`'s transaction; the feed's position, locked (its tracking row made on
        first sight of the feed, or after another process reset the read side)."""
        self._take_turn(conn)
        if self._bulk and not self.is_sqlite:
            # a bulk load's commit need not wait for its WAL flush: a crash loses its last batches, whole (the
            # position with them), and the load resumes from the position that was flushed
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        current = None if application not in self._tracked else self._locked_position(conn, application)
        if current is None:
            conn.execute(_insert(conn)(tracking).values(application=application, position=0).on_conflict_do_nothing())
            current = self._locked_position(conn, application)
        return current

    def _apply_feed(self, application, events, last, after, one_by_one):
        with _collector_paused(), self._write() as conn:
            current = self._turn_at(conn, application)
            if after is not None and current < after:
                return current  # a gap before these events, still open
            held = set(conn.execute(select(parked_events.c.uuid)
                                    .where(parked_events.c.application == application)).scalars())
            fresh = [item for item in events if item["position"] > current]
            from_zero = None if one_by_one else self._still_from_zero(conn)
            if not one_by_one:
                # the whole batch in memory: its documents read in a few statements, written back in a few
                batch = Batch(conn, from_zero)
                prefetch(batch, [item for item in fresh if item["uuid"] not in held])
                for item in fresh:
                    if item["uuid"] in held:
                        _park(conn, item, "held behind an earlier event of this resource that could not be applied")
                    else:
                        apply_event(batch, item)
                batch.flush()
            for item in fresh if one_by_one else ():
                if item["uuid"] in held:
                    _park(conn, item, "held behind an earlier event of this resource that could not be applied")
                    continue
                try:
                    with conn.begin_nested():
                        batch = Batch(conn)
                        apply_event(batch, item)
                        batch.flush()  # inside the savepoint: a refusal by the database parks this event only
                except (DBAPIError, KeyError, TypeError, ValueError, AttributeError) as error:
                    log.error("parked %s event %s (%s %s): %s", application, item["position"], item["resource"],
                              item["uuid"], _reason(error))
                    _park(conn, item, _reason(error))
                    held.add(item["uuid"])
            new_position = max(current, last)
            _move_position(conn, application, current, new_position)
        self._tracked.add(application)
        if from_zero is not None:
            from_zero.positions[application] = new_position  # committed: this load's own position
        return new_position

    # -- a load from zero, pipelined --------------------------------------------------------------------------------

    def _pipelining(self):
        return self.pipelined and self._bulk and self._from_zero is not None

    def _apply_pipelined(self, application, events, last):
        """Project this batch while the previous one is written on another connection, in a thread of its own, then
        hand this one's write to that thread and return: the server writes batch N while Python projects batch N+1
        (the GIL is released while the writer waits for the server), where the plain path leaves the server idle
        during the projection and Python idle during the write.

        Only while the load is from zero (gateway.batch.FromZero): the read side then holds only what this load
        wrote, so the projection reads the documents of batches already committed from the database and takes those
        of the batch in flight from memory (Batch `carried`), and knows which documents exist without asking. Each
        batch is still one transaction with its position, committed in feed order, so a load that dies half-way
        leaves a consistent read side. The write checks, holding the appliers' turn, that nobody else applied
        anything since the reset (the live projector may run beside a rebuild); if somebody did, or the write fails,
        that batch and the one projected meanwhile are applied again by the plain path, which reads what the
        database holds, and the rest of the load takes the plain path."""
        expected = self._from_zero.positions.get(application, 0)
        in_flight = self._in_flight
        if in_flight is not None and in_flight.application == application:
            expected = max(expected, in_flight.last)  # the position it records when committed
        fresh = [item for item in events if item["position"] > expected]  # parked events: none (the reset)
        try:
            with _collector_paused(), self._reading() as conn:
                carried = in_flight.prepared if in_flight is not None else None
                batch = Batch(conn, self._from_zero, carried)
                prefetch(batch, fresh)
                for item in fresh:
                    apply_event(batch, item)
                prepared = batch.prepare()
        except Exception as error:  # noqa: BLE001 — the plain path applies it again (and parks what it cannot take)
            log.warning("read side: projecting a batch of %s up to %s beside the write failed (%s); the load goes on "
                        "as any write does", application, last, _reason(error))
            self._settle()
            self._from_zero = None
            return self.apply_feed(application, events, last)
        if not self._settle():  # the batch in flight was not written: this one was projected from it
            return self.apply_feed(application, events, last)
        if self._writer_thread is None:
            self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-side-writer")
        new_position = max(expected, last)
        future = self._writer_thread.submit(self._write_pipelined, application, expected, new_position, prepared)
        self._in_flight = _InFlight(application, events, new_position, prepared, future)
        return new_position

    def _write_pipelined(self, application, expected, position, prepared):
        """The writer thread's job: one batch and its position, in one transaction, if the load is still from zero
        and the position still where this load left it (_Superseded otherwise, nothing written)."""
        with self._write() as conn:
            current = self._turn_at(conn, application)
            positions = dict(conn.execute(select(tracking.c.application, tracking.c.position)).all())
            if current != expected or not self._from_zero.unchanged_since(positions):
                raise _Superseded()
            Batch.write(conn, prepared)
            _move_position(conn, application, current, position)
        self._tracked.add(application)
        self._from_zero.positions[application] = position

    def _settle(self):
        """Wait for the batch in flight, if any. Whether it was written: if not (another applier wrote since the
        reset, or the write failed), the load from zero ends, and its events are applied again by the plain path
        (reading what the database holds, parking what it cannot take, retrying an outage)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return True
        error = in_flight.future.exception()
        if error is None:
            return True
        if isinstance(error, _Superseded):
            log.info("read side: another applier wrote during the load from zero; reading documents as usual")
        else:
            log.warning("read side: a pipelined batch of %s up to %s failed (%s); applying it again",
                        in_flight.application, in_flight.last, _reason(error))
        self._from_zero = None
        self.apply_feed(in_flight.application, in_flight.events, in_flight.last)
        return False

    def _stop_writer(self):
        self._settle()
        if self._writer_thread is not None:
            self._writer_thread.shutdown()
            self._writer_thread = None

    def _still_from_zero(self, conn):
        """The load from zero this process runs, if nobody else applied anything since its reset (every tracking row
        is where this load left it: the live projector may run beside a rebuild); otherwise the load goes on as any
        write does, reading every document it touches, for good."""
        if self._from_zero is not None:
            if not self._from_zero.unchanged_since(dict(conn.execute(select(tracking.c.application,
                                                                            tracking.c.position)).all())):
                log.info("read side: another applier wrote during the load from zero; reading documents as usual")
                self._from_zero = None
        return self._from_zero

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
                self._take_turn(conn)
                try:
                    with conn.begin_nested():
                        if event is not None:
                            batch = Batch(conn)
                            apply_event(batch, event)
                            batch.flush()
                        conn.execute(delete(parked_events).where(parked_events.c.application == application,
                                                                 parked_events.c.position == row.position))
                except (DBAPIError, KeyError, TypeError, ValueError, AttributeError) as error:
                    failing.add(row.uuid)
                    conn.execute(update(parked_events).where(parked_events.c.application == application,
                                                             parked_events.c.position == row.position)
                                 .values(error=_reason(error)))
        return failing

    def _take_turn(self, conn):
        """Views join documents of several feeds (a flat line item reads its order, model and materials). Two feeds
        applied at once under READ COMMITTED would each miss the other's uncommitted change and leave such a view
        stale, and the audit log's ids are given by the applier, so appliers take turns, as SQLite's single writer
        does anyway."""
        if not self.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPLY_LOCK})

    @staticmethod
    def _locked_position(conn, application):
        return conn.execute(
            select(tracking.c.position).where(tracking.c.application == application).with_for_update()).scalar()

    @reconnecting
    def reset(self):
        """Forget everything (a rebuild from zero follows). Until another applier writes, this store's batches know
        the read side holds only what they wrote (gateway.batch.FromZero): they read no document they did not write
        and insert the new ones without an upsert."""
        self._stop_writer()
        self._from_zero = None
        with self._write() as conn:
            self._take_turn(conn)
            for table in (audit_log, audit_keys, credentials, session_activity, documents, tracking, parked_events):
                conn.execute(delete(table))
        self._tracked.clear()
        self._from_zero = FromZero()

    # -- bulk loads (gateway.indexes: list keys filled once at the end instead of by a trigger per write) -----------

    @reconnecting
    def begin_bulk_load(self):
        """Empty the list keys and stop keeping them until end_bulk_load, which fills them once (runtime.rebuild).
        The audit log's list indexes (gateway.indexes.AUDIT_INDEXES) go too, built once over the loaded rows at the
        end: kept row by row they cost more server time than the audit rows themselves."""
        with self._write() as conn:
            self._take_turn(conn)
            if not indexes.suspended(conn):
                indexes.suspend(conn)
            indexes.drop_bulk_indexes(conn)
        self._bulk = True

    @reconnecting
    def end_bulk_load(self):
        """Fill the list keys and build the indexes begin_bulk_load dropped: what the migrate step does after a bulk
        load that died half-way (gateway.indexes.create), so both ends finish a load the same way."""
        self._stop_writer()  # the last batch committed first
        self._bulk = False
        with self._write() as conn:
            self._take_turn(conn)
            indexes.create(conn, finish_load=self.is_sqlite)  # SQLite: one writer, so all in this transaction
        if not self.is_sqlite:
            indexes.finish_bulk_load(self.engine, self._take_turn)  # on several connections at once

    @reconnecting
    def bulk_loading(self):
        with self.engine.connect() as conn:
            return indexes.suspended(conn)

    # -- queries --------------------------------------------------------------------------------------------------

    @reconnecting
    def document(self, path, bureau):
        """The current document at `path`, or None if it does not exist, was deleted, or belongs to another bureau."""
        statement, params = _document_statement(bureau)
        rows = self._run(statement, dict(params, path=path))
        return rows[0].doc if rows else None

    @reconnecting
    def documents(self, spec, bureau, query):
        """The Page of `spec`'s documents visible to `bureau` under the LIST `query`: filtered and ordered on the
        resource's list keys (gateway.indexes), whose indexes serve every filter and sort: a field's is built on its
        first use (gateway.list_index_builds), the LIST answered meanwhile from a scan of the bureau's list keys."""
        identity = _list_identity(spec.name, bureau, query)
        kept = self._plans.get(identity)
        if kept is not None and query.after is None:  # this very list was asked for lately: all is known
            return self._run_page(kept, query, None, identity)
        if kept is not None:  # and after a cursor: known unless its NULLs are where no page of it had them yet
            values, carried = self._cursor_values(query.after, kept.signature, kept.types)
            plan = kept.plans.get(_nulls(values))
            if plan is not None:
                return self._run_page(plan.after(values), query, carried, None)
        keys = indexes.keys_table(spec.name)
        if keys is None:  # not a listable catalogue resource (a special one): its documents, unindexed
            return self._documents_unindexed(spec, bureau, query, identity)
        # a field's first use builds its index in the background (this LIST is answered meanwhile, without it)
        self.list_index_builds.use(spec.name, [flt.field for flt in query.filters
                                               if (spec.name, flt.field) not in DERIVED_FILTERS]
                                   + [name for name, _ in query.sort])
        source = keys.join(documents, documents.c.path == keys.c.path)
        conditions, needs_document = [_keys_visible(keys, bureau, spec.name)], False
        for flt in query.filters:
            derived = DERIVED_FILTERS.get((spec.name, flt.field))
            if derived is not None:  # a filter on other documents than the listed ones
                conditions.append(derived(keys, flt, bureau, self.engine.dialect.name))
                continue
            column = _key_column(keys, flt.field)
            if column is None:  # an array or object: the document's value
                needs_document = True
                conditions.append(self._doc_filter(spec, flt))
            elif not self.is_sqlite and _beyond_text_key(column, flt):  # the key holds the value's start only
                needs_document = True
                conditions.append(_long_text_filter(column, documents.c.doc[flt.field].as_string(), flt))
            else:
                conditions.append(_column_filter(column, flt))
        order = []
        for name, descending in query.sort:
            column = _key_column(keys, name)
            if column is None:
                needs_document = True
            order.append((column if column is not None else documents.c.doc[name].as_string(), descending))
        if "created" not in {name for name, _ in query.sort}:
            order.append((keys.c[indexes.column_name("created")], False))
        order.append((keys.c.id, order[-1][1] if query.sort else False))  # the uuid: ties in path order (indexes)
        # "id": a cursor of the releases whose last key was the path is refused (400), not misread
        return self._page((documents, documents.c.path, keys.c.path), source if needs_document else keys,
                          source if needs_document else keys, conditions, order, query,
                          (spec.name, tuple(query.sort), "id"), identity)

    def _documents_unindexed(self, spec, bureau, query, identity):
        conditions = [documents.c.resource == spec.name, documents.c.deleted.is_(False),
                      _documents_visible(bureau, spec.name)]
        conditions += [self._doc_filter(spec, f) for f in query.filters]
        order = [(self._doc_order(spec, name), desc) for name, desc in query.sort]
        order += [(documents.c.doc["created"].as_string(), False), (documents.c.path, False)]
        return self._page((documents, documents.c.path, documents.c.path), documents, documents, conditions, order,
                          query, (spec.name, tuple(query.sort)), identity)

    @reconnecting
    def audit(self, spec, bureau, query):
        """The Page of /event/ items: the audit log expanded into one item per changed field (audit_keys),
        filtered and sorted on either table's columns, in feed order (and field order within a change) otherwise."""
        dialect = self.engine.dialect.name
        source = audit_keys.join(audit_log, audit_keys.c.log_id == audit_log.c.id)
        conditions = [_audit_visible(bureau)]
        conditions += [_audit_filter(f, dialect) for f in query.filters]
        order = [(_audit_column(name, dialect), desc) for name, desc in query.sort]
        ties = order[-1][1] if order else False
        order += [(audit_keys.c.log_id, ties), (audit_keys.c.ordinal, ties)]
        named = source.join(indexes.tenants, indexes.tenants.c.id == audit_log.c.tenant, isouter=True)  # its bureau
        page = self._page((named, audit_keys.c.uuid, audit_keys.c.uuid), source, source, conditions, order, query,
                          ("event", tuple(query.sort)))
        page.rows = [_audit_item(row) for row in page.rows]
        return page

    @reconnecting
    def audit_row(self, uuid, bureau):
        with self._reading() as conn:
            row = conn.execute(select(*_AUDIT_ITEM).where(
                audit_keys.c.uuid == _uuid_or_none(uuid), audit_keys.c.log_id == audit_log.c.id,
                _audit_visible(bureau))).first()
        return None if row is None else _audit_item(row)

    def audit_items(self):
        """Every /event/ item as a dict of the columns the per-field audit table of earlier releases held (for
        comparing read sides: a rebuild with the live one, this release's with an earlier one's)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_AUDIT_ITEM).where(audit_keys.c.log_id == audit_log.c.id)
                                .order_by(audit_keys.c.log_id, audit_keys.c.ordinal)).all()
        return [_audit_item(row).__dict__ for row in rows]

    @reconnecting
    def audit_after(self, scope, after, limit):
        """The /event/ items `scope` may read of the changes (audit_log rows) with an id above `after`, oldest first,
        at most `limit` changes, and the id reached (the live event stream, gateway.stream). Each item carries its
        change's id as `id` and whether it is the change's last item (`closes`); `after=None`: none, only the last
        id (where a new stream starts)."""
        with self.engine.connect() as conn:
            if after is None:
                last = conn.execute(select(func.max(audit_log.c.id))).scalar()
                return [], last or 0
            changes = (select(audit_log.c.id).where(audit_log.c.id > after, _audit_visible(scope))
                       .order_by(audit_log.c.id).limit(limit))
            rows = conn.execute(select(*_AUDIT_ITEM, audit_keys.c.log_id)
                                .where(audit_keys.c.log_id == audit_log.c.id, audit_log.c.id.in_(changes))
                                .order_by(audit_keys.c.log_id, audit_keys.c.ordinal)).all()
        items = []
        for index, row in enumerate(rows):
            item = _audit_item(row)
            item.id = row.log_id
            item.closes = index + 1 == len(rows) or rows[index + 1].log_id != row.log_id
            items.append(item)
        return items, rows[-1].log_id if rows else after

    @reconnecting
    def credential(self, uuid, with_roles=False):
        """The credential `uuid` (None when there is none) and its session's last activity; `with_roles`: also, as
        `roles`, the roles its user holds in its bureau, read in the same statement (the role documents joined, a row
        each). Every write needs them, and a statement of their own cost a round trip and ~0.7 ms of CPU; a read
        mostly does not, and PostgreSQL plans the join in ~0.3 ms more."""
        rows = self._run(_CREDENTIAL_AND_ROLES if with_roles else _CREDENTIAL, {"uuid": uuid})
        if not rows or not with_roles:
            return rows[0] if rows else None
        first = rows[0]
        if first.bureau is None:  # the join matches bureaus by equality, roles_of a missing one as well
            roles = tuple(self.roles_of(first.user, None))
        else:
            roles = tuple(row.role for row in rows if row.role is not None)
        return shapes.row_class(first._fields[:-1] + ("roles",))(first[:-1] + (roles,))  # `role` → `roles`

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
        """The roles `user` holds in `bureau`, from the role documents (a write's come with its credential)."""
        with self._reading() as conn:
            rows = conn.execute(select(documents.c.doc).where(
                documents.c.resource == "role", documents.c.bureau == bureau, documents.c.deleted.is_(False),
                documents.c.doc["user"].as_string() == user)).all()
        return [row.doc.get("role") for row in rows]

    def _page(self, fetch, source, count_source, conditions, order, query, signature, identity=None):
        """One page (by offset, or after a keyset cursor) and its total count.

        `fetch` is (table, its key, the key in `source`): the page is chosen in `source` (the list keys) first and
        only its rows are read from the table, so rows skipped by an offset never have their documents read.

        `order` is [(expression, descending)], ending in a unique key. The count never rides on the page query (a
        window count makes the database read and sort every matching row): it comes from the page itself when
        the page is the last one, else from a count over the list keys capped at COUNT_BOUND + 1 rows; past the
        bound the total is an estimate (PostgreSQL: the planner's; SQLite: the bound + 1, a floor) and the page
        says so (`total_count_is_estimate`). A page's cursor carries that estimate, and a page after the cursor
        answers it again without counting: reading the bound's 10,001 index entries and planning the estimate was
        most of a deep keyset page's time (the list is no less past the bound a page later; an exact count under
        the bound is never carried, each page counts it anew).

        The statements are built once per shape of LIST (gateway.shapes) and run with this LIST's values; a page
        of a kept shape keeps its plan under `identity` (_list_identity), so the same list asked again skips
        building its expressions and their cache key. A page after a cursor keeps it per NULL pattern of the
        cursor's values (which parts _after makes), with the places of those values among the plan's, so the next
        cursor's values run in them (_Plan.after)."""
        where = and_(*conditions)
        after, carried, from_cursor = [], None, None  # after a cursor: the parts of the rows after it, in order
        types = [expression.type for expression, _ in order]
        if query.after is not None:
            values, carried = self._cursor_values(query.after, signature, types)
            from_cursor = _CursorBinds(values)
            after = _after(order, from_cursor, nulls_high=not self.is_sqlite)
        shape = shapes.shape_of(where, *after, source, count_source, *fetch, *(expression for expression, _ in order))
        key = None if shape is None else (shape[0], tuple(descending for _, descending in order), len(after))
        binds = [] if shape is None else shape[1]
        statements = None if key is None else self._shapes.get(key)
        if statements is None:
            statements = _PageStatements(self.engine.dialect, fetch, source, count_source, where, after, order, binds)
            if key is not None and statements.complete:
                self._shapes.keep(key, statements)
        plan = _Plan(statements, key if statements.complete else None, [bind.effective_value for bind in binds],
                     len(order), signature)
        if from_cursor is not None:
            plan.cursor = from_cursor.places(binds)
        if plan.key is None or (from_cursor is not None and plan.cursor is None):
            identity = None  # a shape not kept (or a cursor value not found among its values): neither is the plan
        if identity is not None and query.after is None:
            self._plans.keep(identity, plan)
        elif identity is not None:
            keyset = self._plans.get(identity) or self._plans.keep(identity, _KeysetPlans(signature, types, {}))
            keyset.plans[_nulls(values)] = plan
        # a page after a cursor neither keeps nor reads its list's estimate: its cursor carries one (or counts)
        return self._run_page(plan, query, carried, identity if query.after is None else None)

    def _cursor_values(self, cursor, signature, types):
        """(the key values of a `page[after]` cursor, the estimate it carries or None), checked against the list
        (`signature`) and its order keys' `types`: a cursor made for another list, or a hand-made one, is a 400."""
        values, carried = cursors.decode(cursor, signature, len(types), with_estimate=True)
        if carried is not None and carried <= COUNT_BOUND:
            carried = None  # not past the bound (a hand-made cursor): counted, exactly
        if not self.is_sqlite:  # SQLite compares any two values; PostgreSQL refuses a string for a number
            cursors.check_types(values, types)
        return values, carried

    def _run_page(self, plan, query, carried, identity):
        """The page of `plan` for `query` (ReadStore._page); `carried`: the estimate a cursor carries, or None;
        `identity`: the list's (_list_identity) when its plan is kept, its estimate's key too (gateway.totals)."""
        statements = plan.statements
        values = plan.conditions + [query.limit, query.offset, COUNT_BOUND + 1]
        listed = None if carried is not None or identity is None else (identity, COUNT_BOUND)  # tests move the bound
        if listed is not None:
            carried = self._estimates.get(listed)
        with self._cursor() as cursor:
            rows = (statements.page if carried is None else statements.alone).run(cursor, values)
            full = len(rows) == query.limit
            if rows and not full and query.after is None:
                total, counted, carried = query.offset + len(rows), False, None  # the last page knows the total
            elif carried is not None:  # past the bound lately (a cursor, or this list's kept estimate)
                total, counted = carried, False
            elif rows:
                total, counted = rows[0]._total, True
            elif query.offset or query.after is not None:
                total, counted = statements.count.run(cursor, values)[0][0], True
            else:
                total, counted = 0, False
            estimate = carried is not None or (counted and total > COUNT_BOUND)
            if estimate and carried is None:
                total = self._estimate(cursor, statements, values)
                if listed is not None:
                    self._estimates.keep(listed, total)
        following = None
        if full:
            last = rows[-1]
            following = cursors.encode(plan.signature, [_plain(getattr(last, f"_key{i}")) for i in range(plan.keys)],
                                       total if estimate else None)
        return Page(rows, total, estimate, following)

    def _estimate(self, cursor, statements, values):
        """The number of rows matching the LIST's conditions past COUNT_BOUND: the planner's estimate on PostgreSQL
        (never below the bound + 1), the bound + 1 (a floor) on SQLite, which has no estimator."""
        if self.is_sqlite:
            return COUNT_BOUND + 1
        plan = statements.explain.run(cursor, values)[0][0]
        planned = plan[0]["Plan"]["Plan Rows"] if isinstance(plan, list) else COUNT_BOUND + 1
        return max(int(planned), COUNT_BOUND + 1)

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

    def _doc_order(self, spec, name):
        return self._doc_value(spec, name) if spec.fields[name].type != "array" else documents.c.doc[name].as_string()

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


# The audit log's filterable and sortable fields: its row's columns, the item's field (`key`) and `uri`
# (/event/<uuid>/) as the item's uuid. The values before and after a change are JSON of any shape: no filter or
# order is defined on them.
# The row's bureau is its number (audit_log.tenant): the item shows, filters and sorts on the bureau's path.
_AUDIT_BUREAU = (select(indexes.tenants.c.bureau).where(indexes.tenants.c.id == audit_log.c.tenant)
                 .scalar_subquery())
_AUDIT_COLUMNS = {"bureau": _AUDIT_BUREAU, "created": audit_log.c.created, "reference": audit_log.c.reference,
                  "user": audit_log.c.user, "uri": audit_keys.c.uuid}
# the item's field: the first entry of its change, changes[ordinal][0]
_AUDIT_KEY = {"sqlite": literal_column("json_extract(audit_log.changes, '$[' || audit_keys.ordinal || '][0]')"),
              "postgresql": literal_column("(audit_log.changes -> audit_keys.ordinal ->> 0)")}
_AUDIT_ITEM = (audit_keys.c.uuid, audit_keys.c.ordinal, audit_log.c.application,
               audit_log.c.position, _AUDIT_BUREAU.label("bureau"), audit_log.c.reference, audit_log.c.user,
               audit_log.c.created, audit_log.c.changes)
_NO_UUID = "00000000-0000-0000-0000-000000000000"  # what a uri filter that names no uuid looks for: nothing


def _audit_column(name, dialect):
    if name == "key":
        return _AUDIT_KEY[dialect]
    if name not in _AUDIT_COLUMNS:
        raise InvalidPayload(f"Events cannot be filtered or sorted by '{name}'; use one of: "
                             f"{', '.join(sorted([*_AUDIT_COLUMNS, 'key']))}.", field=name)
    return _AUDIT_COLUMNS[name]


def _audit_filter(flt, dialect):
    """An equality filter on the bureau matches the numbers of the bureaus named (the tenant-first indexes serve it);
    any other filter compares the column as it is shown."""
    if flt.field == "bureau" and flt.op not in ("<", ">"):
        return _column_filter(audit_log.c.tenant, flt, any_of=_audit_tenants_of)
    return _column_filter(_audit_column(flt.field, dialect), _audit_values(flt))


def _audit_tenants_of(bureaus):
    return audit_log.c.tenant.in_(select(indexes.tenants.c.id).where(indexes.tenants.c.bureau.in_(bureaus)))


def _uuid_or_none(value):
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError:
        return _NO_UUID


def _audit_values(flt):
    if flt.field != "uri":
        return flt
    return type(flt)(flt.field, flt.op, [
        v if v is None or flt.op in ("<", ">") else
        _uuid_or_none(uris.uuid_of(v) if isinstance(v, str) and v.startswith("/") else v) for v in flt.values])


@dataclass
class AuditItem:
    """One /event/ item: one field's change, out of its audit_log row."""
    uuid: str
    application: str
    position: int
    bureau: str
    reference: str
    key: str
    previous_value: object
    current_value: object
    user: str
    created: str


def _audit_item(row):
    key, previous, current = audit_changes.values(row.changes[row.ordinal])
    return AuditItem(uuid=str(row.uuid), application=row.application, position=row.position, bureau=row.bureau,
                     reference=row.reference, key=key, previous_value=previous, current_value=current,
                     user=row.user, created=row.created)


class _Explain(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) of a statement, executed like the statement (binds, schema translation)."""
    inherit_cache = False  # compiled at each use: SQLAlchemy cannot map a cached one's result onto another instance

    def __init__(self, statement):
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element, compiler, **kw):
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


COUNT_BOUND = 10_000  # rows a LIST counts exactly; past it total_count is an estimate, flagged as one


@dataclass
class _Plan:
    """What a page of one list needs once its expressions are built: its statements, its shape's key (None when
    the shape is not kept), the values of its conditions, its number of order keys and its cursor's signature.
    `cursor`, after a cursor: [(place in `conditions`, index of the cursor's key whose value it is)]."""
    statements: object
    key: object
    conditions: list
    keys: int
    signature: tuple
    cursor: list | None = None

    def after(self, values):
        """This plan with another cursor's key `values` in place of its own (a cursor of the same NULL pattern)."""
        conditions = list(self.conditions)
        for place, index in self.cursor:
            conditions[place] = values[index]
        return replace(self, conditions=conditions)


@dataclass
class _KeysetPlans:
    """The plans of a list's pages after a cursor, per NULL pattern of the cursor's values (_nulls: which parts
    _after makes, hence which statements), with what checking a cursor needs: the list's signature and the types
    of its order keys."""
    signature: tuple
    types: list
    plans: dict  # _nulls(values) → _Plan


def _nulls(values):
    return tuple(value is None for value in values)


def _list_identity(resource, scope, query):
    """What makes a LIST the same list as another: its resource, scope, filters (their values with their types: 1
    and True hash alike), sort, and whether it pages by offset or after a cursor (whose values change every page:
    they are not part of it)."""
    return (resource, scope, tuple((flt.field, flt.op, tuple((type(value), value) for value in flt.values))
                                   for flt in query.filters), tuple(query.sort), query.after is not None)


@dataclass
class Page:
    """One LIST page: its rows, the total count (exact unless `estimate`), and the cursor of the next page (the
    `page[after]` value; None on the last page)."""
    rows: list
    total: int
    estimate: bool = False
    next: str | None = None

    def __iter__(self):  # rows, total = page
        return iter((self.rows, self.total))


def _capped_count(source, where):
    """count(*) of the rows matching `where`, reading at most COUNT_BOUND + 1 of them (`_COUNT_CAP`)."""
    capped = select(literal_column("1").label("one")).select_from(source).where(where).limit(_COUNT_CAP).subquery()
    return select(func.count()).select_from(capped)


_COUNT_CAP = bindparam("count_cap", type_=Integer)  # a parameter: a statement kept per shape reads the bound anew


class _PageStatements:
    """The statements of one shape of LIST (ReadStore._page), built from the expressions of the first LIST of that
    shape: the page with its capped count, the count alone, and on PostgreSQL the planner's estimate. `binds` are
    the shape's bound parameters (gateway.shapes.shape_of), whose values each LIST brings with its page size, offset
    and count bound; `complete` says whether those are every parameter of the statements (else they are not kept:
    a parameter left out would keep the first LIST's value). `after`: none, or after a cursor the parts of the rows
    after it (_after): a page is chosen in each (on its index range), then the first rows of all."""

    def __init__(self, dialect, fetch, source, count_source, where, after, order, binds):
        table, table_key, source_key = fetch
        limit, offset = shapes.page_bounds()
        ordering = [expression.desc() if descending else expression for expression, descending in order]
        keys = [expression.label(f"_key{i}") for i, (expression, _) in enumerate(order)]
        chosen = [select(source_key.label("_id"), *keys).select_from(source).where(part).order_by(*ordering)
                  .limit(limit) for part in ([and_(where, part) for part in after] or [where])]
        if len(chosen) == 1:
            chosen = chosen[0].offset(offset).subquery()
        else:  # a keyset page (never with an offset: gateway.listing): the first rows of each part, then of all
            parts = union_all(*(select(part.subquery()) for part in chosen)).subquery()
            chosen = (select(parts).order_by(*(parts.c[f"_key{i}"].desc() if descending else parts.c[f"_key{i}"]
                                               for i, (_, descending) in enumerate(order)))
                      .limit(limit).subquery())
        outer = [chosen.c[f"_key{i}"].desc() if descending else chosen.c[f"_key{i}"]
                 for i, (_, descending) in enumerate(order)]
        shown = [_shown_key(chosen.c[f"_key{i}"], dialect) for i in range(len(order))]
        capped = _capped_count(count_source, where).scalar_subquery().label("_total")  # evaluated once (InitPlan)
        page = (select(table, *shown, capped)
                .join(chosen, table_key == chosen.c._id).order_by(*outer))
        brought = [*binds, limit, offset, _COUNT_CAP]  # the order of ReadStore._page's values
        schema = {None: READ_SCHEMA} if dialect.name == "postgresql" else None
        self.page = shapes.Prepared(dialect, page, brought, schema_map=schema)
        prepared = [self.page]
        # the page without its count, for a total already known past the bound (a cursor's, a kept estimate)
        alone = select(table, *shown).join(chosen, table_key == chosen.c._id).order_by(*outer)
        self.alone = shapes.Prepared(dialect, alone, brought, schema_map=schema)
        prepared.append(self.alone)
        self.count = shapes.Prepared(dialect, _capped_count(count_source, where), brought, schema_map=schema)
        prepared += [self.count]
        if dialect.name == "postgresql":  # the only estimator (_Explain compiles there only)
            explained = select(literal_column("1")).select_from(count_source).where(where)
            self.explain = shapes.Prepared(dialect, _Explain(explained), brought, holding=explained, schema_map=schema)
            prepared.append(self.explain)
        self.complete = all(statement.complete for statement in prepared)


def _shown_key(key, dialect):
    """A page's order key as the page returns it: the uuid tie-breaker as text on PostgreSQL, as the cursor carries
    it (psycopg2 made a uuid.UUID of each row's, turned back into text: a fifth of a page's CPU in the store, for
    the one key of the last row a cursor needs)."""
    if dialect.name == "postgresql" and isinstance(key.type, indexes.DocumentId):
        return cast(key, Text).label(key.name)
    return key


def _key_column(keys, field):
    return keys.c.get(indexes.column_name(field))


def _keys_visible(keys, scope, resource):
    """The list keys `scope` may read: as _documents_visible, on the list keys' own columns (the bureau by its
    number in indexes.tenants: a bureau never numbered has no list keys, and `= NULL` matches none)."""
    clause = _bureau_clause(keys.c.bureau, scope, _tenant_number)
    if scope is not None and resource in PLATFORM_RESOURCES:  # platform reference data: every bureau's to read
        clause = or_(clause, keys.c.bureau.is_(None))
    if isinstance(scope, Scope) and resource in OWNED_BY_USER:
        clause = and_(clause, keys.c[indexes.column_name(OWNED_BY_USER[resource])] == uris.uuid_of(scope.user))
    return clause


class _CursorBinds:
    """The bound values of a cursor's keys in the conditions of a page after it (_after), each made here and known
    by the index of its key, so that a kept plan knows where among its values the next cursor's go (`places`)."""

    def __init__(self, values):
        self.values = values
        self._index = {}  # bound value → index of its key in the cursor

    def __call__(self, index, kind):
        bind = literal(self.values[index], kind)  # a bound value (a Python bool cannot be compared to directly)
        self._index[bind] = index
        return bind

    def places(self, binds):
        """[(place in `binds`, key index)] of the bound values made here, or None unless each is found once among
        `binds` (shapes.shape_of's order: then one would keep this cursor's value in the next page's statement)."""
        found = [(place, self._index[bind]) for place, bind in enumerate(binds) if bind in self._index]
        return found if len(found) == len(self._index) else None


def _after(order, from_cursor, nulls_high):
    """Rows after the one whose order keys are `from_cursor.values` (_CursorBinds, which makes their bound values),
    in `order` ([(expression, descending)]), as a list of one or two conditions, each a range of the first key's
    index, whose rows follow one another in this order (ReadStore._page chooses a page in each and keeps the first
    rows of both). NULL sorts above every value on PostgreSQL (last ascending, first descending), below every value
    on SQLite.

    A single condition `key < :bound OR key IS NULL OR (key = :bound AND ...)` (the NULLs of the first key after
    the cursor) is served by no index range: the database walked the list from its start to the cursor. So the
    NULLs are a part of their own: past a value, the values beyond it (a range) then the NULLs (`IS NULL`, an
    equality on the index) when they come after; past a NULL, the NULLs beyond it then the values when they come
    after (`IS NOT NULL`, a range). Which values are NULL changes the parts; the values themselves do not."""
    expression, descending = order[0]
    nulls_last = nulls_high != descending  # NULLs come after every value in this direction
    value = from_cursor.values[0]
    rest = _beyond(order, from_cursor, nulls_high, first=1) if len(order) > 1 else None
    null = expression.is_(None)
    if not nulls_high:
        # SQLite, without statistics, takes `key IS NULL` for twice as many rows as `key = ?`: the NULLs' part was
        # planned on a filter's index (a status), walking every row of it for the few without the key. Said to be
        # rare (likelihood 1/16), the NULLs are sought on the key's index; their order is the index's order too.
        null = func.unlikely(null)
    if value is None:
        nulls = null if rest is None else and_(null, rest)
        return [nulls] if nulls_last else [nulls, expression.is_not(None)]
    bound = from_cursor(0, expression.type)
    beyond = expression < bound if descending else expression > bound
    if rest is not None:  # the range on the key, for the index; the rest decides among the rows equal to the bound
        beyond = and_(expression <= bound if descending else expression >= bound,
                      or_(beyond, and_(expression == from_cursor(0, expression.type), rest)))
    if nulls_last and not _never_null(expression):
        return [beyond, null]
    return [beyond]


def _never_null(expression):
    """A column that holds no NULL (the audit log's own keys): no part of a keyset page for its NULLs."""
    return isinstance(expression, Column) and not expression.nullable


def _beyond(order, from_cursor, nulls_high, first):
    """Rows after the one whose order keys are `from_cursor.values` in `order`, on the keys from index `first` on,
    as one condition (the keys after the first of a keyset page's order: ReadStore._page's index range is on the
    first)."""
    values = from_cursor.values
    alternatives = []
    for i in range(first, len(order)):
        expression, descending = order[i]
        equal_before = [order[j][0].is_(None) if values[j] is None else order[j][0] == from_cursor(j, order[j][0].type)
                        for j in range(first, i)]
        nulls_last = nulls_high != descending  # NULLs come after every value in this direction
        if values[i] is None:
            beyond = literal(False) if nulls_last else expression.is_not(None)
        else:
            bound = from_cursor(i, expression.type)
            beyond = expression < bound if descending else expression > bound
            if nulls_last:
                beyond = or_(beyond, expression.is_(None))
        alternatives.append(and_(*equal_before, beyond))
    return or_(*alternatives)


def _plain(value):
    return float(value) if isinstance(value, Decimal) else value


def _bureau_clause(column, bureau, keyed=lambda bureau: bureau):
    """bureau=None means unrestricted (internal callers and platform administrators). `keyed(bureau)`: what
    `column` holds for the bureau (its path, or for the list keys its number)."""
    if isinstance(bureau, Scope):
        bureau = bureau.bureau
    return literal(True) if bureau is None else column == keyed(bureau)


def _tenant_number(bureau):
    """The bureau's number in indexes.tenants, as the list keys hold it (a bureau never numbered: NULL, matching
    none)."""
    return select(indexes.tenants.c.id).where(indexes.tenants.c.bureau == bureau).scalar_subquery()


# Statements every request runs, built once: building a select and its cache key each time cost more than running it.
_CREDENTIAL = (select(credentials, session_activity.c.last_seen)
               .join(session_activity, session_activity.c.uuid == credentials.c.uuid, isouter=True)
               .where(credentials.c.uuid == bindparam("uuid")))
_ROLES = documents.alias("roles")
_CREDENTIAL_AND_ROLES = (_CREDENTIAL.add_columns(_ROLES.c.doc["role"].as_string().label("role"))
                         .join(_ROLES, and_(_ROLES.c.resource == "role", _ROLES.c.bureau == credentials.c.bureau,
                                            _ROLES.c.deleted.is_(False),
                                            _ROLES.c.doc["user"].as_string() == credentials.c.user), isouter=True))
_DOCUMENT = {}  # the kind of scope → the document-by-path statement for it, with the scope's values as parameters


def _document_statement(scope):
    """(statement, parameters) reading the document at :path that `scope` may see: the statement of
    `_documents_visible(scope)`, with the scope's bureau and user as bound parameters so one statement serves every
    caller of that kind (None: everything; a bureau path; a Scope)."""
    kind = "scope" if isinstance(scope, Scope) else "all" if scope is None else "bureau"
    if kind not in _DOCUMENT:
        shape = (Scope(bindparam("bureau"), bindparam("owner")) if kind == "scope"
                 else None if kind == "all" else bindparam("bureau"))
        _DOCUMENT[kind] = select(documents.c.doc).where(
            documents.c.path == bindparam("path"), documents.c.deleted.is_(False), _documents_visible(shape))
    if kind == "scope":
        return _DOCUMENT[kind], {"bureau": scope.bureau, "owner": uris.uuid_of(scope.user)}
    return _DOCUMENT[kind], ({} if kind == "all" else {"bureau": scope})


def _owned(resource, field, scope):
    """The documents of `resource` that are the scope's user's own."""
    owner = scope.user if isinstance(scope.user, ClauseElement) else uris.uuid_of(scope.user)  # a bound parameter
    return and_(documents.c.resource == resource, documents.c.doc[field].as_string() == owner)


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
    clause = _bureau_clause(audit_log.c.tenant, scope, _tenant_number)
    if not isinstance(scope, Scope):
        return clause
    for owned, field in OWNED_BY_USER.items():
        mine = exists(select(literal(1)).where(documents.c.path == audit_log.c.reference,
                                               _owned(owned, field, scope)))
        clause = and_(clause, or_(~audit_log.c.reference.startswith(f"/{owned}/", autoescape=True), mine))
    return clause


def _order_run_status(keys, flt, scope, dialect):
    """orders.md: the orders where at least one run has one of the statuses. Served by the hidden per-(order, status)
    documents gateway.production_views keeps, found through their status index (REFERENCES); the list keys of the
    orders are then matched by path."""
    held = documents.alias("run_statuses")  # never correlated with the documents an outer query may join
    status = literal_column(reference_sql(dialect, "status"))
    order = literal_column(reference_sql(dialect, "order"))
    orders = (select(order).select_from(held)
              .where(literal_column("resource") == literal_column(f"'{production_views.ORDER_RUN_STATUS}'"),
                     held.c.deleted.is_(False), _bureau_clause(held.c.bureau, scope), _column_filter(status, flt)))
    return keys.c.path.in_(orders)


# Filters answered from documents other than the listed resource's own (filter-only fields the map derives).
DERIVED_FILTERS = {("order", "run_status"): _order_run_status}


def _beyond_text_key(column, flt):
    """A text filter value as long as the list keys' stored start of a text (indexes.TEXT_KEY_LENGTH) or longer."""
    return isinstance(column.type, Text) and any(isinstance(v, str) and len(v) >= indexes.TEXT_KEY_LENGTH
                                                 for v in flt.values)


def _long_text_filter(column, whole, flt):
    """On PostgreSQL the key holds a text's first TEXT_KEY_LENGTH characters: the index narrows on that start, the
    document's whole value decides."""
    n = indexes.TEXT_KEY_LENGTH
    if flt.op == ">":
        return and_(column >= flt.values[0][:n], whole > flt.values[0])
    if flt.op == "<":
        return and_(column <= flt.values[0][:n], whole < flt.values[0])
    alternatives = []
    for value in flt.values:
        if isinstance(value, str) and len(value) >= n:
            alternatives.append(and_(column == value[:n], whole == value))
        else:
            alternatives.append(_column_filter(column, replace(flt, values=[value])))
    return or_(*alternatives)


def _column_filter(column, flt, any_of=None):
    """`column` compared as `flt` says; `any_of(values)`: the clause for "one of these non-null values" when it is
    not `column IN (values)` (the audit log's bureau: the numbers of the bureaus named)."""
    if flt.op == ">":
        return column > flt.values[0]
    if flt.op == "<":
        return column < flt.values[0]
    present = [v for v in flt.values if v is not None]
    clauses = [(any_of or column.in_)(present)] if present else []
    if len(present) < len(flt.values):
        clauses.append(column.is_(None))
    return or_(*clauses)


def _convert_audit_bureaus(conn):
    """Releases up to the compact audit log named each audit_log row's bureau by its path (a `bureau` column, in the
    row and in four indexes); this one by its number in indexes.tenants (`tenant`). Converted in place: the bureaus
    numbered, each row given its number, the old indexes and column dropped (indexes.create builds the new ones).
    PostgreSQL reuses the freed space for later rows (a VACUUM FULL, outside the migrate step, gives it back)."""
    pg = conn.dialect.name == "postgresql"
    schema = f'"{READ_SCHEMA}".' if pg else ""
    table = f"{schema}audit_log"
    bureaus = [row[0] for row in conn.exec_driver_sql(f"SELECT DISTINCT bureau FROM {table} WHERE bureau IS NOT NULL")]
    indexes.tenant_numbers(conn, bureaus)
    for name in indexes.LEGACY_AUDIT_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {schema}{name}")
    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN tenant INTEGER")
    converted = conn.exec_driver_sql(
        f"UPDATE {table} SET tenant = (SELECT t.id FROM {schema}tenants t WHERE t.bureau = {table}.bureau)").rowcount
    conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN bureau")
    for index in audit_log.indexes:
        index.create(conn, checkfirst=True)
    return converted


def _convert_legacy_audit(conn, page=20_000):
    """Earlier releases stored one audit_events row per changed field (uuid, values and all). Rows that one event
    wrote about one resource are consecutive there; each run becomes one audit_log row, its fields audit_keys rows
    with the uuids they had, so links to /event/<uuid>/ stay valid. The old table is then dropped."""
    old = legacy_audit_events
    next_id = (conn.execute(select(func.max(audit_log.c.id))).scalar() or 0) + 1
    converted, after, group, logs, keys, bureaus = 0, 0, None, [], [], []

    def write():
        if logs:
            tenant = indexes.tenant_numbers(conn, bureaus)
            for row, bureau in zip(logs, bureaus):
                row["tenant"] = tenant.get(bureau)
            conn.execute(audit_log.insert(), logs)
            conn.execute(audit_keys.insert(), keys)
        logs.clear()
        keys.clear()
        bureaus.clear()

    while True:
        rows = conn.execute(select(old).where(old.c.id > after).order_by(old.c.id).limit(page)).all()
        if not rows:
            break
        for row in rows:
            identity = (row.application, row.position, row.reference, row.bureau, row.user, row.created)
            if group is None or group[0] != identity:
                group = (identity, {"id": next_id, "application": row.application, "position": row.position,
                                    "reference": row.reference, "user": row.user, "created": row.created,
                                    "changes": []})
                logs.append(group[1])
                bureaus.append(row.bureau)
                next_id += 1
            changes = group[1]["changes"]
            keys.append({"uuid": row.uuid, "log_id": group[1]["id"], "ordinal": len(changes)})
            changes.append([row.key, row.previous_value, row.current_value])
        converted += len(rows)
        after = rows[-1].id
        if len(logs) > 1000:
            write()
    write()
    old.drop(conn)
    return converted


# The look-ups of the read-side views (gateway.viewstore.pointing_at: the line items of an order, of a model, …),
# one partial index each, over the documents of one resource only. gateway.batch asks them with the same expression.
REFERENCES = (("line-item", "order"), ("line-item", "model"), ("line-item", "materials.base"),
              ("line-item", "materials.support"), ("line-item", "workflow"), ("order", "order_owner"),
              ("order", "user"), ("prep-workflow-record", "line_item"),
              ("prep-task-record", "prep_workflow_record"), ("comment", "related_uuid"),
              *production_views.REFERENCES, *run_pool_views.REFERENCES)


def reference_indexes(dialect, schema):
    table = f'"{schema}".documents' if schema else "documents"
    for resource, field in REFERENCES:
        name = "ix_ref_" + f"{resource}_{field}".replace("-", "_").replace(".", "_")
        yield (f"CREATE INDEX IF NOT EXISTS {name} ON {table} (({reference_sql(dialect, field)})) "
               f"WHERE resource = '{resource}'")


_APPLY_LOCK = 0x57A7_0001  # the read side's advisory lock key ("STratum" 1)


def read_store(config):
    """The read store a process's config names, with the read-side pool its settings allow."""
    pool_size, max_overflow = read_side_pool(config)
    return ReadStore(read_store_url(config), pool_size=pool_size, max_overflow=max_overflow)


def json_loads(text):
    """The documents' JSON decoder: orjson (a page of 50 documents decodes about 3× faster than with json.loads; it
    gives the same Python values for what it accepts), and json.loads for the rest — NaN and Infinity, lone
    surrogates — so every stored document reads exactly as before. orjson reads an integer past 64 bits as a float,
    so a text with 19 digits in a row (in a number, or needlessly in a string) goes to json.loads as well."""
    if isinstance(text, str):
        raw = text.encode("utf-8", "surrogatepass")
    elif isinstance(text, (bytes, bytearray)):
        raw = text
    else:  # a number SQLite stored as one: json.loads's TypeError is what SQLAlchemy's SQLite JSON type expects
        return json.loads(text)
    if _DIGIT_RUN not in raw.translate(_DIGITS_ONLY):  # ~1 µs a document, a twentieth of a regular expression's
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))  # every digit → 0, the rest → space
_DIGIT_RUN = b"0" * 19  # the shortest integer past 64 bits has 19 digits (2**63); UTF-8 never puts one in a multibyte


def _engine_options(url, pool_size, max_overflow):
    if str(url).startswith("postgresql+psycopg2"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()  # psycopg2 waits through the eventlet hub instead of blocking it (idempotent)
    if str(url).startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}, "json_deserializer": json_loads}
    # No pre-ping: it doubled the round trips of every LIST (a SELECT 1 per checkout). A connection the database
    # ended is found by the statement that uses it, and `reconnecting` runs the operation again on a fresh one.
    return {"pool_size": pool_size, "max_overflow": max_overflow, "json_deserializer": json_loads,
            "execution_options": {"schema_translate_map": {None: READ_SCHEMA}}}


# Pages the WAL may hold before a commit copies them into the database (SQLite's default: 1,000). A write of one
# order dirties ~120 pages, nearly all list-key index leaves (gateway.indexes), and a checkpoint copies each page
# once however often it changed since the last one: at 1,000 the committer checkpointed every ~8 writes and copied
# the same hot pages again and again (a write's COMMIT 0.79-0.84 ms of CPU an order against 0.58-0.65 at 5,000,
# measured on a copy of the bench's read side, 3 orders a transaction); the WAL file grows to ~20 MB, not ~4.
WAL_AUTOCHECKPOINT_PAGES = 5000


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.close()
