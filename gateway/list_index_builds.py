"""The list keys' indexes built on a field's first use (gateway.indexes: only the always-indexed fields have one from
the start). A LIST that filters or sorts on a field without an index hands it to this process's builder and is
answered at once, from a scan of the bureau's rows of the list keys; the builder records the field in
`list_key_indexes` (so the migrate step and a rebuild's end build it too) and builds its index in the background,
which the database's planner uses from the moment it exists (the LIST's statement is the same with or without it).

PostgreSQL: CREATE INDEX CONCURRENTLY on a connection of its own, outside a transaction, so writes to the list keys
(the projector's) go on while it runs. Builders of one index, in this process or another gateway's, take turns by a
session advisory lock (gateway.indexes.build_lock_key), tried, never waited on inside a statement: a waiting
`SELECT pg_advisory_lock` is a transaction that a concurrent build waits for in turn, and each would wait on the
other. The one holding the lock finds the index valid (built meanwhile: done), missing (built now) or invalid: left
by a build a crash cut short (a build in progress holds the lock), so dropped and built again. While a rebuild's
bulk load runs, a build waits for its end, which builds every recorded index itself.

SQLite: CREATE INDEX on the one writer (ReadStore._write), which holds the other writers for the build's length
(measured in bench/README.md, round 7); there is no invalid index to find, the build is a transaction."""
import logging
import queue
import threading
import time

from sqlalchemy import text

from gateway import indexes
from gateway.tables import READ_SCHEMA, dialect_insert

log = logging.getLogger(__name__)

TURN_WAIT = 0.5  # seconds between tries of a build lock another builder holds
LOAD_WAIT = 2.0  # seconds between looks at a bulk load that runs (gateway.indexes.suspend)
_pause = time.sleep  # the wait for a bulk load's end (a test ends the load there)


class ListIndexBuilds:
    """The background builder of one read store (`write`: its writer's transaction context, SQLite's one writer)."""

    def __init__(self, engine, write):
        self._engine = engine
        self._write = write
        self._asked = set()  # (resource, field) handed to the builder by this process: each once
        self._jobs = queue.Queue()
        self._worker = None
        self._starting = threading.Lock()

    def use(self, resource, fields):
        """A LIST of `resource` filters or sorts on `fields`: those not indexed yet are built in the background."""
        new = [field for field in fields if (resource, field) not in self._asked]
        if not new:
            return
        self._asked.update((resource, field) for field in new)
        for field in indexes.lazily_indexed(resource, new):
            self._jobs.put((resource, field))
            self._start()

    def settle(self):
        """Wait until every build asked for so far has ended (tests, benches)."""
        self._jobs.join()

    def _start(self):
        with self._starting:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="list-index-builds", daemon=True)
                self._worker.start()

    def _run(self):
        while True:
            resource, field = self._jobs.get()
            try:
                self.build(resource, field)
            except Exception:  # logged; asked again by the next LIST that uses it (this process forgets it)
                log.exception("list keys: building the index of %s.%s failed", resource, field)
                self._asked.discard((resource, field))
            finally:
                self._jobs.task_done()

    def build(self, resource, field):
        """Record `field` of `resource` as used and build its index, once it is this builder's turn."""
        if self._engine.dialect.name == "postgresql":
            self._build_postgresql(resource, field)
        else:
            self._build_sqlite(resource, field)

    def _build_sqlite(self, resource, field):
        with self._write() as conn:
            _record(conn, resource, field)
            conn.exec_driver_sql(indexes.index_statement(resource, field, "sqlite"))
            indexes.analyze_new_sqlite_index(conn, resource, field)
            _mark_built(conn, resource, field)

    def _build_postgresql(self, resource, field):
        key = indexes.build_lock_key(resource, field)
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            _record(conn, resource, field)
            while indexes.suspended(conn):  # a bulk load: its end builds the recorded indexes (a concurrent build
                _pause(LOAD_WAIT)          # would wait for the end's transaction, which would wait for the build)
            while not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                time.sleep(TURN_WAIT)  # another builder has it: its build ends, then this one finds it valid
            try:
                name = indexes.index_name(resource, field)
                if name in indexes.invalid_list_indexes(conn):  # a build a crash cut short (ours hold the lock)
                    log.warning("list keys: index %s was left invalid (a build cut short): building it again", name)
                    conn.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{READ_SCHEMA}"."{name}"')
                conn.exec_driver_sql(indexes.index_statement(resource, field, "postgresql", concurrently=True))
                if name in indexes.invalid_list_indexes(conn):
                    raise RuntimeError(f"list keys: index {name} is invalid after its build")
                _mark_built(conn, resource, field)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def _record(conn, resource, field):
    used = indexes.used_indexes
    conn.execute(dialect_insert(conn)(used).on_conflict_do_nothing(index_elements=["resource", "field"]),
                 {"resource": resource, "field": field, "state": "requested"})


def _mark_built(conn, resource, field):
    used = indexes.used_indexes
    conn.execute(used.update().where(used.c.resource == resource, used.c.field == field).values(state="built"))
