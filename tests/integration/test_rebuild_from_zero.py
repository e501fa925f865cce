"""A load from zero (runtime.rebuild after ReadStore.reset), on SQLite and PostgreSQL: it reads no document it did not
write itself, yet writes row for row what the live path writes, batch boundaries and all; another applier writing
beside it (the live projector) ends that knowledge for the rest of the load, and the result is the same. The indexes a
bulk load drops (audit_keys' primary key, its log index, documents' resource index) are back at its end, and after a
load that died half-way once the migrate step ran."""
import pytest
from sqlalchemy import event, inspect

from gateway import indexes
from gateway.readstore import ReadStore
from gateway.tables import READ_SCHEMA
from tests.integration.test_list_indexes import order_event
from tests.integration.test_rebuild_bulk_load import ORDERS, feed, rows
from tests.kit.readside import empty_read_store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    read_store = empty_read_store(request, tmp_path)
    yield read_store
    read_store.dispose()


def apply_in_batches(store, events, size):
    for start in range(0, len(events), size):
        store.apply_feed("orders", events[start:start + size], events[min(start + size, len(events)) - 1]["position"])


def document_reads(store):
    """A list that collects the statements `store` sends that read `documents`."""
    seen = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "documents" in statement:
            seen.append(statement)

    for engine in {store.engine, store._writer}:
        event.listen(engine, "before_cursor_execute", remember)
    return seen


def bulk_indexes(store):
    """The names of the bulk-dropped indexes present, and whether audit_keys has its primary key."""
    schema = None if store.is_sqlite else READ_SCHEMA
    with store.engine.connect() as conn:
        present = set(conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index'" if store.is_sqlite else
            f"SELECT indexname FROM pg_indexes WHERE schemaname = '{READ_SCHEMA}'").scalars())
        primary = inspect(conn).get_pk_constraint("audit_keys", schema=schema)["constrained_columns"]
    return {name for _, name, _ in indexes.BULK_INDEXES} & present, primary == ["uuid"]


def test_a_load_from_zero_reads_no_document_it_did_not_write(store):
    events = feed()  # every order created, then a third renamed (other batches), then one deleted
    apply_in_batches(store, events, 7)
    live = rows(store)

    store.reset()
    store.begin_bulk_load()
    reads = document_reads(store)
    apply_in_batches(store, events[:ORDERS], 7)  # creations only: every document is new
    assert reads == []
    apply_in_batches(store, events[ORDERS:], 7)  # renames of documents earlier batches wrote: read back
    assert reads
    store.end_bulk_load()
    assert rows(store) == live


def test_another_applier_during_a_load_from_zero_changes_nothing_written(store):
    events = feed()
    apply_in_batches(store, events, 7)
    live = rows(store)

    store.reset()
    store.begin_bulk_load()
    apply_in_batches(store, events[:ORDERS // 2], 7)
    beside = ReadStore(store.engine.url.render_as_string(hide_password=False))  # the live projector, say
    try:
        beside.apply_feed("orders", events[:ORDERS], ORDERS)  # the second half of the creations, by another store
    finally:
        beside.dispose()
    apply_in_batches(store, events, 7)  # the load goes on where the position is now: renames of both halves
    assert store._from_zero is None  # it noticed, and read every document as any write does
    store.end_bulk_load()
    assert rows(store) == live


def test_a_write_before_the_load_reads_as_usual(store):
    """A reset by another process (or none): this store's batches assume nothing."""
    events = feed()
    apply_in_batches(store, events[:ORDERS], 7)
    reads = document_reads(store)
    store.apply_feed("orders", [order_event(len(events) + 1, 1, "updated", {"name": "again"})], len(events) + 1)
    assert reads


def test_the_indexes_a_bulk_load_drops_come_back(store):
    events = feed()
    assert bulk_indexes(store) == ({name for _, name, _ in indexes.BULK_INDEXES}, True)

    store.reset()
    store.begin_bulk_load()
    # PostgreSQL drops audit_keys' primary key too (SQLite cannot drop a table's primary key)
    assert bulk_indexes(store) == (set(), store.is_sqlite)
    apply_in_batches(store, events, 50)
    store.end_bulk_load()
    assert bulk_indexes(store) == ({name for _, name, _ in indexes.BULK_INDEXES}, True)
    loaded = rows(store)

    store.reset()
    store.begin_bulk_load()
    apply_in_batches(store, events, 50)
    store.create_tables()  # the migrate step after a load that died half-way
    assert bulk_indexes(store) == ({name for _, name, _ in indexes.BULK_INDEXES}, True)
    assert rows(store) == loaded
