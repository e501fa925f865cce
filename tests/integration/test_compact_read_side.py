"""The read side stores less on either database without answering differently: documents without their null fields
(gateway.batch.stored) and the audit log's changes as compact entries (gateway.audit_changes). A read side written
by the release before (documents with their nulls, every change as [key, previous, current] with spaces) reads the
same, and the projector keeps applying on top of it."""
import json

import pytest

from gateway import listing
from gateway.rendering import render
from gateway.tables import READ_SCHEMA
from shared import catalogue
from tests.integration.test_compact_audit_log import _answers, store  # noqa: F401 (its fixture: 31 events, 30 orders)
from tests.integration.test_list_indexes import order_event

pytestmark = pytest.mark.integration

ORDER = catalogue.resource("order")
LISTS = ["", "filter[priority]=1,2,3,4", "sort=priority,name", "filter[status]=new&sort=-priority&page[limit]=4"]


def _table(store, name):
    return name if store.is_sqlite else f'"{READ_SCHEMA}".{name}'


def _raw(store, table, column, key):
    """{key: the column's JSON text as stored} of every row of `table`."""
    cast = column if store.is_sqlite else f"{column}::text"
    with store.engine.connect() as conn:
        return dict(conn.exec_driver_sql(f"SELECT {key}, {cast} FROM {_table(store, table)}").all())


def _rewrite(store, table, column, key, rows):
    """Store `rows` ({key: JSON text}) as `table`.`column`, as another release would have written them."""
    cast = "?" if store.is_sqlite else "CAST(%s AS jsonb)" if table == "documents" else "CAST(%s AS json)"
    mark = "?" if store.is_sqlite else "%s"
    with store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {_table(store, table)} SET {column} = {cast} WHERE {key} = {mark}",
                             [(text, row) for row, text in rows.items()])


def _orders(store):
    """What GET and LIST /order/ answer (rendered as the API shows them)."""
    paths = sorted(path for path in _raw(store, "documents", "doc", "path") if path.startswith("/order/"))
    gets = {path: render(ORDER, path, store.document(path, None), "http://x") for path in paths}
    lists = {}
    for query in LISTS:
        page = store.documents(ORDER, None, listing.parse(ORDER, query))
        lists[query] = ([render(ORDER, row.path, row.doc, "http://x") for row in page.rows], page.total)
    return gets, lists


def test_documents_are_stored_without_their_null_fields_and_show_them_as_null(store):
    stored = {path: json.loads(text) for path, text in _raw(store, "documents", "doc", "path").items()}
    assert stored and all(None not in doc.values() for doc in stored.values())
    first = "/order/00000000-0000-4000-8000-000000000000/"
    assert "priority" not in stored[first] and stored[first]["name"] == "order-0000"
    gets, lists = _orders(store)
    assert gets[first]["priority"] is None and gets[first]["customer_name"] is None  # every catalogue field
    rows, total = lists["sort=priority,name"]
    assert total == 30 and sum(1 for row in rows if row["priority"] is None) == 6  # orders 0, 5, …, 25


def test_audit_changes_are_stored_as_compact_entries(store):
    changes = {row: json.loads(text) for row, text in _raw(store, "audit_log", "changes", "id").items()}
    texts = _raw(store, "audit_log", "changes", "id").values()
    assert all(", " not in text and ": " not in text for text in texts)  # no whitespace between entries
    created = changes[min(changes)]
    assert created[0] == ["name", "order-0000"] and all(len(entry) == 2 for entry in created)  # no previous: 2
    assert changes[max(changes)] == [["name", "order-0003", "renamed"], ["priority", 3, 99]]
    items = {(item["reference"], item["key"]): item for item in store.audit_items()}
    renamed = "/order/00000003-0000-4000-8000-000000000000/"
    assert (items[renamed, "name"]["previous_value"], items[renamed, "name"]["current_value"]) == (
        "order-0003", "renamed")


def test_a_read_side_written_by_the_release_before_reads_the_same(store):
    orders, events = _orders(store), _answers(store)
    # the release before: every null field in the document, every change as [key, previous, current], with spaces
    fields = [name for name in ORDER.fields]
    old_docs = {path: json.dumps(dict({name: None for name in fields}, **json.loads(text)))
                for path, text in _raw(store, "documents", "doc", "path").items()}
    _rewrite(store, "documents", "doc", "path", old_docs)
    old_changes = {row: json.dumps([[entry[0], None, entry[1]] if len(entry) == 2 else entry
                                    for entry in json.loads(text)])
                   for row, text in _raw(store, "audit_log", "changes", "id").items()}
    _rewrite(store, "audit_log", "changes", "id", old_changes)
    assert any(" null, " in text for text in _raw(store, "audit_log", "changes", "id").values())
    assert _orders(store) == orders
    assert _answers(store) == events
    # and the projector applies on top of it: an update's audit entry holds the previous value it found
    store.apply_feed("orders", [order_event(32, 5, "updated", {"priority": 7})], 32)
    changed = [item for item in store.audit_items() if item["position"] == 32]
    assert [(item["key"], item["previous_value"], item["current_value"]) for item in changed] == [("priority", None, 7)]
    assert _orders(store)[0]["/order/00000005-0000-4000-8000-000000000000/"]["priority"] == 7
