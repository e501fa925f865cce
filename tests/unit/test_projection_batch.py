"""The projector applies a feed batch in memory (gateway.batch): the read side it writes equals the one event-by-event
application writes, whatever the batch size, and an audit item keeps the uuid every release derived for it."""
from uuid import NAMESPACE_URL, uuid4, uuid5

import pytest
from sqlalchemy import select

from gateway.projection import audit_uuid
from gateway.readstore import ReadStore
from gateway.tables import documents

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
USER = "/users/22222222-2222-2222-2222-222222222222/"


@pytest.mark.parametrize("name", ["stratum:audit:orders:1:name", "stratum:audit:identity:42:/api_tokens/x/:deleted",
                                  "ünïcode"])
def test_audit_uuids_are_uuid5_of_the_same_name(name):
    assert audit_uuid(name) == str(uuid5(NAMESPACE_URL, name))


def test_audit_uuids_are_uuid5_for_many_names():  # every version/variant bit pattern the digest can start with
    names = [f"stratum:audit:orders:{position}:field{position % 7}" for position in range(5000)] + ["", "\x00"]
    assert [audit_uuid(name) for name in names] == [str(uuid5(NAMESPACE_URL, name)) for name in names]


def _feed():
    """Orders with line items and a user whose rename reaches the flat orders: views across resources."""
    events, position = [], 0

    def add(resource, uuid, kind, fields, bureau=BUREAU):
        nonlocal position
        position += 1
        events.append({"position": position, "application": "orders", "resource": resource, "uuid": uuid,
                       "version": 1, "event": f"orders/{resource}/X", "user": USER, "kind": kind, "bureau": bureau,
                       "timestamp": f"2026-11-30T00:{position // 60:02d}:{position % 60:02d}+00:00", "fields": fields,
                       "names": []})

    user = USER.split("/")[2]
    add("users", user, "created", {"name": "Ada", "email": "ada@x"})
    for number in range(12):
        order, item = str(uuid4()), str(uuid4())
        add("order", order, "created", {"name": f"o{number}", "status": "new", "user": USER, "order_owner": USER})
        add("line-item", item, "created", {"order": f"/order/{order}/", "quantity": number, "status": "new"})
        add("order", order, "updated", {"line_items": [f"/line-item/{item}/"]})
        if number % 3 == 0:
            add("line-item", item, "updated", {"status": "confirmed"})
            add("order", order, "updated", {"status": "confirmed"})
        if number % 4 == 1:
            add("line-item", item, "deleted", {})
    add("users", user, "updated", {"name": "Ada L."})
    return events


def _read_side(store):
    with store.engine.connect() as conn:
        docs = sorted((r.path, r.resource, r.bureau, repr(r.doc), r.deleted) for r in conn.execute(select(documents)))
    return docs, sorted(repr(sorted(item.items())) for item in store.audit_items())


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_a_batch_applied_in_memory_equals_event_by_event(tmp_path, batch_size):
    feed = _feed()
    stores = {}
    for name, size in (("one", 1), ("batched", batch_size)):
        store = stores[name] = ReadStore("sqlite:///" + str(tmp_path / f"{name}.sqlite"))
        store.create_tables()
        for start in range(0, len(feed), size):
            chunk = feed[start:start + size]
            store.apply_feed("orders", chunk, chunk[-1]["position"])
    try:
        assert _read_side(stores["batched"]) == _read_side(stores["one"])
        docs = {row[0]: row for row in _read_side(stores["batched"])[0]}
        assert sum(1 for path in docs if path.startswith("/flat-order/")) == 12
        assert all("Ada L." in row[3] for path, row in docs.items() if path.startswith("/flat-order/"))
    finally:
        for store in stores.values():
            store.dispose()


def _event_list(store, query_string):
    from gateway import listing
    from shared import catalogue

    spec = catalogue.resource("event")
    items, total = store.audit(spec, None, listing.parse(spec, query_string))
    return [(item.reference, item.key, item.current_value) for item in items], total, items


@pytest.fixture
def applied(tmp_path):
    store = ReadStore("sqlite:///" + str(tmp_path / "read.sqlite"))
    store.create_tables()
    feed = _feed()
    store.apply_feed("orders", feed, feed[-1]["position"])
    yield store, feed
    store.dispose()


def test_the_audit_log_is_listed_per_field_with_filters_sorts_and_counts(applied):
    store, feed = applied
    every = store.audit_items()
    changed = sum(len([v for v in e["fields"].values() if v not in (None, [], {})]) if e["kind"] == "created"
                  else len(e["fields"]) if e["kind"] == "updated" else 1 for e in feed)
    assert len(every) == changed == _event_list(store, "")[1]
    order = feed[1]["uuid"]
    rows, total, _ = _event_list(store, f"filter[reference]=/order/{order}/&filter[key]=status,line_items")
    line_items = [f"/line-item/{feed[2]['uuid']}/"]
    assert [(key, value) for _, key, value in rows] == [("status", "new"), ("line_items", line_items),
                                                        ("status", "confirmed")] and total == 3  # in feed order
    rows, total, _ = _event_list(store, "filter[key]=status&sort=-key,created&page[limit]=3&page[offset]=2")
    assert total == sum(1 for item in every if item["key"] == "status") and len(rows) == 3
    keys = [key for _, key, _ in _event_list(store, "sort=key")[0]]
    assert keys == sorted(keys)
    # an item by its uri, or its uuid; and GET
    wanted = every[5]
    rows, total, items = _event_list(store, f"filter[uri]=/event/{wanted['uuid']}/,/event/{every[0]['uuid']}/")
    assert total == 2 and [item.__dict__ for item in items] == [every[0], wanted]
    assert store.audit_row(wanted["uuid"], None).__dict__ == wanted
    assert store.audit_row("not-a-uuid", None) is None
    assert _event_list(store, "filter[uri]=/event/00000000-0000-0000-0000-000000000001/")[1] == 0
    uris = [item.uuid for item in _event_list(store, "sort=-uri")[2]]
    assert uris == sorted(uris, reverse=True)


def test_an_earlier_releases_audit_table_is_converted_with_the_same_uuids(applied, tmp_path):
    """Up to 0.1.x the read side kept one audit_events row per field; migrate converts it (no rebuild needed)."""
    from sqlalchemy import inspect

    from gateway.tables import legacy_audit_events, legacy_metadata

    store, _ = applied
    expected = store.audit_items()
    old = ReadStore("sqlite:///" + str(tmp_path / "old.sqlite"))
    try:
        legacy_metadata.create_all(old.engine)
        with old.engine.begin() as conn:
            conn.execute(legacy_audit_events.insert(), expected)
        old.create_tables()  # what runtime.migrate does
        assert old.audit_items() == expected
        assert not inspect(old.engine).has_table("audit_events")
        old.create_tables()  # and again: nothing left to convert, nothing doubled
        assert old.audit_items() == expected
    finally:
        old.dispose()


def test_a_reference_lookup_of_several_values_uses_the_references_partial_index_on_sqlite(tmp_path):
    """Without statistics SQLite rated `resource = 'line-item'` as selective as the reference and, from two looked-up
    values on, scanned every line item (json_extract each) instead of using ix_ref_line_item_order."""
    from sqlalchemy import event

    from gateway.batch import Batch

    store = ReadStore(f"sqlite:///{tmp_path / 'read.sqlite'}")
    store.create_tables()
    orders = [f"/order/{uuid4()}/" for _ in range(3)]
    with store.engine.begin() as conn:
        conn.execute(documents.insert(), [
            {"path": f"/line-item/{uuid4()}/", "resource": "line-item", "bureau": BUREAU,
             "doc": {"order": order}, "deleted": False} for order in orders + ["/order/other/"]])
    statements = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, params, context, many: statements.append((statement, params)))
    try:
        with store.engine.begin() as conn:
            batch = Batch(conn)
            batch.prefetch_pointing("line-item", "order", orders)
            assert {order: len(batch.pointing_at("line-item", "order", order)) for order in orders} == \
                dict.fromkeys(orders, 1)
            (statement, params), = [s for s in statements if "json_extract" in s[0]]
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
    finally:
        store.dispose()
    assert "ix_ref_line_item_order" in " ".join(row[-1] for row in plan), plan


def test_an_order_update_refreshes_its_flat_line_items_only_when_it_changes_a_field_they_read(tmp_path):
    """A flat line item reads a few of its order's fields (customer, dates, currency, creator…): an order's status
    or line items, which every command changes, leave it as it is and are not recomputed; a change of a field it
    reads (and a material's or workflow's rename) still reaches it."""
    from gateway.batch import Batch
    from gateway.projection import apply_event

    store = ReadStore("sqlite:///" + str(tmp_path / "read.sqlite"))
    store.create_tables()
    order, item, material = str(uuid4()), str(uuid4()), str(uuid4())
    flat = f"/flat-line-item/{item}/"

    def event(position, resource, uuid, kind, fields):
        return {"position": position, "application": "orders", "resource": resource, "uuid": uuid, "version": 1,
                "event": f"orders/{resource}/X", "user": USER, "kind": kind, "bureau": BUREAU,
                "timestamp": f"2026-11-30T00:00:{position:02d}+00:00", "fields": fields, "names": []}

    store.apply_feed("orders", [
        event(1, "material", material, "created", {"name": "PA12"}),
        event(2, "order", order, "created", {"name": "o", "status": "new", "user": USER, "customer_name": "Ada"}),
        event(3, "line-item", item, "created", {"order": f"/order/{order}/", "quantity": 1,
                                                  "materials": {"base": f"/material/{material}/"}})], 3)
    try:
        with store.engine.begin() as conn:
            batch = Batch(conn)
            apply_event(batch, event(4, "order", order, "updated", {"status": "confirmed", "line_items": []}))
            assert f"/flat-order/{order}/" in batch.dirty and flat not in batch.dirty
            apply_event(batch, event(5, "order", order, "updated", {"customer_name": "Grace"}))
            assert batch.dirty[flat].doc["customer_name"] == "Grace"
            apply_event(batch, event(6, "material", material, "updated", {"name": "PA11"}))
            assert batch.dirty[flat].doc["base_material_name"] == "PA11"
    finally:
        store.dispose()
