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
