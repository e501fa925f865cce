"""The rebuild's bulk load (runtime.rebuild), on SQLite and PostgreSQL: documents, audit log and audit keys equal,
row for row, what the live path writes batch by batch; the audit log's list indexes, dropped for the load, are back
at its end, and after a load that died half-way, once the migrate step ran. On PostgreSQL the end fills and indexes
on several connections at once, and a load whose end died between them is finished by the migrate step."""
import threading

import pytest
from sqlalchemy import event, inspect, select

from gateway import indexes
from gateway.readstore import ReadStore
from gateway.tables import READ_SCHEMA, audit_keys, audit_log, documents
from tests.integration.test_list_indexes import order_event
from tests.kit.readside import empty_read_store

ORDERS = 300


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    read_store = empty_read_store(request, tmp_path)
    yield read_store
    read_store.dispose()


def feed():
    events = [order_event(n + 1, n) for n in range(ORDERS)]
    events += [order_event(ORDERS + 1 + i, n, "updated", {"name": f"renamed-{n}", "priority": n % 7})
               for i, n in enumerate(range(0, ORDERS, 3))]
    events.append(order_event(len(events) + 1, 4, "deleted", {}))
    return events


def rows(store):
    with store.engine.connect() as conn:
        return {table.name: sorted(tuple(row) for row in conn.execute(select(table)))
                for table in (documents, audit_log, audit_keys)}


def audit_indexes(store):
    schema = None if store.is_sqlite else READ_SCHEMA
    with store.engine.connect() as conn:
        present = {index["name"] for index in inspect(conn).get_indexes("audit_log", schema=schema)}
    return {name for name, _ in indexes.AUDIT_INDEXES} & present


def test_a_bulk_load_writes_what_the_live_path_writes(store):
    events = feed()
    for start in range(0, len(events), 7):  # live: small batches, list keys and audit indexes kept
        store.apply_feed("orders", events[start:start + 7], events[min(start + 7, len(events)) - 1]["position"])
    live = rows(store)
    assert len(live["documents"]) > ORDERS and len(live["audit_keys"]) > len(live["audit_log"]) > ORDERS

    store.reset()
    store.begin_bulk_load()
    assert not audit_indexes(store)  # built once at the end instead of row by row
    store.apply_feed("orders", events, len(events))
    store.end_bulk_load()
    assert rows(store) == live
    assert audit_indexes(store) == {name for name, _ in indexes.AUDIT_INDEXES}

    store.reset()
    store.begin_bulk_load()
    store.apply_feed("orders", events, len(events))
    store.create_tables()  # the migrate step after a load that died half-way
    assert not store.bulk_loading()
    assert rows(store) == live
    assert audit_indexes(store) == {name for name, _ in indexes.AUDIT_INDEXES}


def list_keys_and_indexes(store):
    """Every list-key row of the read side, and the names of its indexes (PostgreSQL)."""
    with store.engine.connect() as conn:
        keys = {table.name: sorted(tuple(row) for row in conn.execute(select(table))) for table in indexes.all_tables()}
        names = set(conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE schemaname = %(schema)s",
                                         {"schema": READ_SCHEMA}).scalars())
    return keys, names


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_the_end_of_a_load_fills_and_indexes_on_several_connections(store):
    events = feed()
    store.reset()  # the PostgreSQL database is the session's: another test's position would skip these events
    store.apply_feed("orders", events, len(events))  # live: list keys kept by the trigger
    live = list_keys_and_indexes(store)

    store.reset()
    store.begin_bulk_load()
    store.apply_feed("orders", events, len(events))
    building = set()

    @event.listens_for(store.engine, "before_cursor_execute")
    def remember(conn, cursor, statement, *args):
        if statement.startswith(("CREATE INDEX", "CREATE UNIQUE INDEX", "INSERT INTO")):
            building.add(id(conn.connection.dbapi_connection))

    store.end_bulk_load()
    event.remove(store.engine, "before_cursor_execute", remember)
    assert len(building) > indexes.BULK_LOAD_CONNECTIONS > 1  # the jobs' and the one holding documents
    assert list_keys_and_indexes(store) == live
    assert not store.bulk_loading()


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_load_whose_end_dies_between_its_connections_stays_suspended_until_migrate(store, monkeypatch):
    events = feed()
    store.reset()  # the PostgreSQL database is the session's: another test's position would skip these events
    store.apply_feed("orders", events, len(events))
    live = list_keys_and_indexes(store)

    store.reset()
    store.begin_bulk_load()
    store.apply_feed("orders", events, len(events))
    run, jobs, lock = indexes._in_transaction, [], threading.Lock()

    def dies_on_the_third(engine, statements):
        with lock:
            jobs.append(statements)
            if len(jobs) == 3:
                raise RuntimeError("the rebuild died")
        run(engine, statements)

    monkeypatch.setattr(indexes, "_in_transaction", dies_on_the_third)
    with pytest.raises(RuntimeError):
        store.end_bulk_load()
    monkeypatch.undo()
    assert store.bulk_loading()  # the jobs that committed did not end the load: the upkeep is still off
    store.create_tables()  # the migrate step
    assert not store.bulk_loading()
    assert list_keys_and_indexes(store) == live


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_the_bulk_writes_store_what_json_writes_and_refuse_what_it_cannot(store):
    """The rows go to PostgreSQL as JSON text written by orjson where it writes as json.dumps does: values where
    the two differ (non-ASCII, DEL, exponents, integers past 64 bits) read back as they were, and a NaN is still
    refused (parked), not stored as orjson's null."""
    odd = {"name": "ünï\x7fcode", "notes": "\U0001F600 \u2028", "priority": 2 ** 70, "quote_required": True,
           "weight": 1e16, "small": 1e-7, "ratio": -0.5}
    store.reset()
    store.apply_feed("orders", [order_event(1, 1, fields=odd), order_event(2, 2, fields={"weight": float("nan")})], 2)
    with store.engine.connect() as conn:
        docs = dict(conn.execute(select(documents.c.path, documents.c.doc)).all())
    assert {key: docs[f"/order/{1:08d}-0000-4000-8000-000000000000/"][key] for key in odd} == odd
    assert [row.position for row in store.parked("orders")] == [2]


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_store_with_a_pool_of_one_connection_ends_its_load_on_that_connection(store):
    events = feed()
    store.reset()  # the PostgreSQL database is the session's: another test's position would skip these events
    store.apply_feed("orders", events, len(events))
    live = list_keys_and_indexes(store)
    single = ReadStore(store.engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    try:
        single.reset()
        single.begin_bulk_load()
        single.apply_feed("orders", events, len(events))
        single.end_bulk_load()  # no connection to spare: nothing waits for one
        assert not single.bulk_loading()
    finally:
        single.dispose()
    assert list_keys_and_indexes(store) == live
