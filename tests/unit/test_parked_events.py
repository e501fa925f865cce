"""An event the read side cannot apply is parked with its reason, with the later events of its resource behind it;
the rest of the feed is applied, and the parked events are applied again once they can be."""
import pytest
from sqlalchemy import select

from gateway.readstore import ReadStore
from gateway.tables import documents, tracking

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
A, B, C = ("aaaaaaaa-0000-0000-0000-00000000000a", "bbbbbbbb-0000-0000-0000-00000000000b",
           "cccccccc-0000-0000-0000-00000000000c")


def event(position, uuid, kind, fields):
    return {"position": position, "application": "orders", "resource": "order", "uuid": uuid, "version": 1,
            "event": "orders/order/Created", "user": None, "timestamp": f"2026-11-30T00:00:0{position}+00:00",
            "kind": kind, "bureau": BUREAU, "fields": fields, "names": ["OrderCreated"]}


@pytest.fixture
def store(tmp_path):
    read_store = ReadStore("sqlite:///" + str(tmp_path / "read.sqlite"))
    read_store.create_tables()
    yield read_store
    read_store.dispose()


def docs(store):
    with store.engine.connect() as conn:
        rows = conn.execute(select(documents.c.path, documents.c.doc).where(documents.c.resource == "order"))
        return {row.path: row.doc for row in rows}


def test_a_bad_event_is_parked_and_the_rest_of_the_feed_flows(store):
    broken = event(2, B, "created", None)  # no fields: the projection cannot read it
    feed = [event(1, A, "created", {"name": "a"}), broken, event(3, B, "updated", {"name": "b2"}),
            event(4, C, "created", {"name": "c"})]
    assert store.apply_feed("orders", feed, 4) == 4
    assert set(docs(store)) == {f"/order/{A}/", f"/order/{C}/"}
    parked = store.parked("orders")
    assert [(row.position, row.uuid) for row in parked] == [(2, B), (3, B)]
    assert "TypeError" in parked[0].error and "held behind" in parked[1].error
    # a later batch still holds B's events back, and moves the position on
    assert store.apply_feed("orders", [event(5, B, "updated", {"name": "b3"})], 5) == 5
    assert [row.position for row in store.parked("orders")] == [2, 3, 5]
    with store.engine.connect() as conn:
        assert conn.execute(select(tracking.c.position)).scalar() == 5

    # after the fix (here: the feed serves the event readable again), the parked events apply in order
    fixed = {2: event(2, B, "created", {"name": "b"}), 3: feed[2], 5: event(5, B, "updated", {"name": "b3"})}
    assert store.retry_parked("orders", lambda start, limit: {"events": [fixed[start]]}) == set()
    assert store.parked("orders") == []
    assert docs(store)[f"/order/{B}/"]["name"] == "b3"


def test_a_retry_that_still_fails_keeps_the_resource_held(store):
    store.apply_feed("orders", [event(1, B, "created", None), event(2, B, "updated", {"name": "x"})], 2)
    still = store.retry_parked("orders", lambda start, limit: {"events": [event(start, B, "created", None)]})
    assert still == {B}
    assert [row.position for row in store.parked("orders")] == [1, 2]
