"""SQLite: the read side's writes keep their prepared statements from one write to the next.

An upsert into `documents` compiles every list-key trigger into its program (~700 on SQLite, gateway.indexes), which
costs ~30 ms of CPU to prepare; a write must find it prepared. A flag pragma run on the writers' connection (as
SQLAlchemy's per-checkout isolation level does when it resets it: `PRAGMA read_uncommitted`) expires every prepared
statement of that connection, so no pragma may run between two writes."""
from uuid import uuid4

import pytest
from sqlalchemy import event, select
from sqlalchemy.pool import Pool

from gateway import indexes
from gateway.batch import Batch, Entry
from gateway.readstore import ReadStore
from gateway.tables import documents

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"


def _created(position, name):
    return {"position": position, "application": "orders", "resource": "order", "uuid": str(uuid4()), "version": 1,
            "event": "orders/order/X", "user": None, "kind": "created", "bureau": BUREAU,
            "timestamp": f"2026-11-30T00:00:{position:02d}+00:00", "fields": {"name": name, "status": "new"},
            "names": []}


@pytest.fixture
def traced(tmp_path):
    """The store, and every statement its connections run (sqlite3's trace callback, which sees what SQLAlchemy's
    events do not: the dialect's own cursors)."""
    executed = []

    def trace(dbapi_connection, _record, _proxy):
        dbapi_connection.set_trace_callback(executed.append)

    event.listen(Pool, "checkout", trace)
    store = ReadStore("sqlite:///" + str(tmp_path / "read.sqlite"))
    try:
        store.create_tables()
        yield store, executed
    finally:
        event.remove(Pool, "checkout", trace)
        store.dispose()


def test_no_pragma_runs_between_two_writes(traced):
    store, executed = traced
    store.apply_feed("orders", [_created(1, "first")], 1)
    executed.clear()
    store.apply_feed("orders", [_created(2, "second")], 2)
    store.apply_feed("orders", [_created(3, "third")], 3)
    assert any(sql.startswith("INSERT INTO documents") for sql in executed)  # the trace sees the writes
    assert [sql for sql in executed if sql.lstrip().upper().startswith("PRAGMA")] == []
    assert store.position("orders") == 3


def test_a_rewrite_that_changes_nothing_is_not_written(traced):
    """A derived view refreshed to what it already was (common: flat orders, flat line items) writes no documents
    row, so its list keys are not deleted and inserted again; any difference (doc, bureau, deleted) is written."""
    store, executed = traced
    path, doc = f"/order/{uuid4()}/", {"name": "n", "status": "new", "created": "2026-11-30T00:00:00+00:00"}

    def write(change):
        with store._write() as conn:
            batch = Batch(conn)
            change(batch)
            executed.clear()
            batch.flush()
        return [sql for sql in executed if sql.startswith("INSERT INTO documents")]  # (trigger runs repeat it)

    assert write(lambda b: b.put(path, Entry("order", BUREAU, dict(doc), False)))
    assert write(lambda b: b.put(path, Entry("order", BUREAU, dict(b.entry(path).doc), False))) == []
    assert write(lambda b: b.put(path, Entry("order", BUREAU, dict(doc, status="done"), False)))  # the doc
    assert write(lambda b: b.put(path, Entry("order", BUREAU, dict(doc, status="done"), True)))  # deleted
    assert write(lambda b: b.put(path, Entry("order", BUREAU, dict(doc, status="done"), False)))  # revived

    def twice(b):  # in one batch, the second flush compares with what the first one wrote
        b.put(path, Entry("order", BUREAU, dict(doc, status="again"), False))
        b.flush()
        b.put(path, Entry("order", BUREAU, dict(doc, status="again"), False))
    assert write(twice) == []
    keys = indexes.keys_table("order")
    with store.engine.connect() as conn:
        assert conn.execute(select(keys.c.f_status).where(keys.c.path == path)).scalar() == "again"
        assert conn.execute(select(documents.c.doc).where(documents.c.path == path)).scalar()["status"] == "again"


def test_writes_leave_their_pages_in_the_wal_past_sqlites_default_checkpoint(tmp_path):
    """A checkpoint copies each page once however often it changed since the last one, and an order's write dirties
    ~120 list-key index pages: the committer checkpoints at WAL_AUTOCHECKPOINT_PAGES, not SQLite's 1,000 (each
    write then copied the same hot pages into the database again every ~8 writes)."""
    import hashlib
    import sqlite3
    from contextlib import closing

    from gateway.readstore import WAL_AUTOCHECKPOINT_PAGES

    path = tmp_path / "read.sqlite"
    store = ReadStore("sqlite:///" + str(path))
    try:
        store.create_tables()
        with closing(sqlite3.connect(path)) as raw:  # start from an empty WAL
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        database = hashlib.sha256(path.read_bytes()).hexdigest()
        untouched = path.stat().st_mtime_ns
        frames, position = 0, 0
        while frames <= 1500 and path.stat().st_mtime_ns == untouched:  # past SQLite's default of 1,000
            position += 1
            store.apply_feed("orders", [dict(_created(position % 60, f"order {position}"), position=position)],
                             position)
            frames = ((tmp_path / "read.sqlite-wal").stat().st_size - 32) // (24 + 4096)  # header, frame header + page
        assert hashlib.sha256(path.read_bytes()).hexdigest() == database  # nothing was checkpointed yet
        assert 1000 < frames < WAL_AUTOCHECKPOINT_PAGES
    finally:
        store.dispose()
