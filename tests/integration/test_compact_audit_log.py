"""The audit log names each row's bureau by its number in `tenants` (gateway.tables.audit_log.tenant), on either
database: /event/ still shows, filters, sorts and scopes by the bureau's path; and a read side whose audit log has
the layout of the release before (the bureau's path in a `bureau` column and in four indexes) is converted in place
by the migrate step, every /event/ answer as before."""
import pytest
from sqlalchemy import inspect

from gateway import indexes, listing
from gateway.tables import READ_SCHEMA
from shared import catalogue
from tests.integration.test_list_indexes import BUREAU, OTHER, order_event
from tests.kit.readside import empty_read_store

pytestmark = pytest.mark.integration

SPEC = catalogue.resource("event")
QUERIES = ["", "filter[bureau]=" + OTHER, "filter[bureau]=" + BUREAU + "," + OTHER, "sort=-bureau,created",
           "sort=bureau&page[limit]=7&page[offset]=3", "filter[key]=status&sort=-key,bureau"]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    read_store = empty_read_store(request, tmp_path)
    feed = [order_event(n + 1, n) for n in range(30)]
    feed[4]["bureau"] = None  # platform data: no bureau, no number
    feed.append(order_event(31, 3, "updated", {"name": "renamed", "priority": 99}))
    read_store.apply_feed("orders", feed, 31)
    yield read_store
    if not read_store.is_sqlite:  # the session's database is shared
        with read_store.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{READ_SCHEMA}" CASCADE')
    read_store.dispose()


def _answers(store):
    """What /event/ answers: every item, the LISTs of QUERIES as each scope sees them, and GET of each item."""
    items = store.audit_items()
    lists = {}
    for scope in (None, BUREAU, OTHER):
        for query in QUERIES:
            page = store.audit(SPEC, scope, listing.parse(SPEC, query))
            lists[scope, query] = ([item.__dict__ for item in page.rows], page.total)
    gets = {(item["uuid"], scope): getattr(store.audit_row(item["uuid"], scope), "__dict__", None)
            for item in items for scope in (None, BUREAU, OTHER)}
    stream = {scope: [item.__dict__ for item in store.audit_after(scope, 0, 100)[0]] for scope in (None, OTHER)}
    return items, lists, gets, stream


def _audit_layout(store):
    schema = None if store.is_sqlite else READ_SCHEMA
    found = inspect(store.engine)
    return ({column["name"] for column in found.get_columns("audit_log", schema=schema)},
            {index["name"] for index in found.get_indexes("audit_log", schema=schema)})


def _to_old_layout(store):
    """The audit log as the release before kept it: the bureau's path in the row and its indexes, no number."""
    q = "" if store.is_sqlite else f'"{READ_SCHEMA}".'
    _, present = _audit_layout(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {q}audit_log ADD COLUMN bureau VARCHAR(200)")
        conn.exec_driver_sql(f"UPDATE {q}audit_log SET bureau = (SELECT t.bureau FROM {q}tenants t "
                             f"WHERE t.id = {q}audit_log.tenant)")
        for name in present & ({"ix_audit_log_tenant"} | {name for name, _ in indexes.AUDIT_INDEXES}):
            conn.exec_driver_sql(f"DROP INDEX {q}{name}")
        conn.exec_driver_sql(f"ALTER TABLE {q}audit_log DROP COLUMN tenant")
        conn.exec_driver_sql(f"DELETE FROM {q}tenants")  # the old release numbered only the list keys' bureaus
        conn.exec_driver_sql(f"CREATE INDEX ix_audit_log_bureau ON {q}audit_log (bureau, id)")
        for name, columns in (("ix_audit_log_bureau_created", "bureau, created, id"),
                              ("ix_audit_log_bureau_user", 'bureau, "user", id'),
                              ("ix_audit_log_bureau_reference", "bureau, reference, id")):
            conn.exec_driver_sql(f"CREATE INDEX {name} ON {q}audit_log ({columns})")


def test_the_audit_log_keeps_the_bureaus_number_and_shows_its_path(store):
    items, lists, gets, stream = _answers(store)
    assert {item["bureau"] for item in items} == {BUREAU, OTHER, None}
    other = [item for item in items if item["bureau"] == OTHER]
    assert lists[None, QUERIES[1]][1] == len(other) > 0 and lists[OTHER, ""][1] == len(other)
    assert {item["bureau"] for item in lists[OTHER, ""][0]} == {OTHER}
    assert lists[None, QUERIES[2]][1] == len(items) - sum(1 for item in items if item["bureau"] is None)
    bureaus = [item["bureau"] for item in lists[None, QUERIES[3]][0]]
    assert [b for b in bureaus if b is not None] == sorted((b for b in bureaus if b is not None), reverse=True)
    assert all(gets[item["uuid"], OTHER] is None for item in items if item["bureau"] != OTHER)
    assert [item["bureau"] for item in stream[OTHER]] == [OTHER] * len(other)
    columns, names = _audit_layout(store)
    assert "tenant" in columns and "bureau" not in columns
    assert {"ix_audit_log_tenant", *(name for name, _ in indexes.AUDIT_INDEXES)} <= names


def test_an_audit_log_of_the_release_before_is_converted_by_the_migrate_step(store):
    before = _answers(store)
    _to_old_layout(store)
    columns, names = _audit_layout(store)
    assert "bureau" in columns and "tenant" not in columns and "ix_audit_log_bureau" in names
    store.create_tables()  # runtime.migrate
    columns, names = _audit_layout(store)
    assert "tenant" in columns and "bureau" not in columns
    assert not any(name.startswith("ix_audit_log_bureau") for name in names)
    assert {"ix_audit_log_tenant", *(name for name, _ in indexes.AUDIT_INDEXES)} <= names
    assert _answers(store) == before
    store.create_tables()  # a second migrate step finds nothing to convert
    assert _answers(store) == before
