"""runtime.rebuild reads each feed ahead, in a thread, in batches of several service pages: what it hands the
follower must be exactly the service's feed, page after page, whatever position the follower asks for next."""
import pytest

from runtime.rebuild import ReadAhead, read_pages
from services.orders.application import Orders
from shared.application import MAX_FEED_BATCH
from tests.kit.apps import IN_MEMORY, command_ctx


@pytest.fixture(scope="module")
def orders():
    app = Orders(env=IN_MEMORY)
    for number in range(MAX_FEED_BATCH + 100):  # a command records its order and its receipt: three pages and more
        app.create("order", {"name": f"order-{number}"}, command_ctx())
    yield app
    app.close()


def whole_feed(app):
    events, start = [], 1
    while True:
        page = app.feed(start, MAX_FEED_BATCH)
        events += page["events"]
        if page["complete"]:
            return events, page["last"]
        start = page["last"] + 1


def test_pages_are_merged_up_to_the_limit_and_nothing_is_lost(orders):
    events, last = whole_feed(orders)
    assert last > 2 * MAX_FEED_BATCH
    merged = read_pages(orders, 1, 2 * MAX_FEED_BATCH)
    assert merged["last"] == 2 * MAX_FEED_BATCH and not merged["complete"]
    assert merged["events"] == [e for e in events if e["position"] <= 2 * MAX_FEED_BATCH]
    rest = read_pages(orders, merged["last"] + 1, 10 * MAX_FEED_BATCH)
    assert rest["complete"] and rest["last"] == last
    assert merged["events"] + rest["events"] == events


def test_reading_ahead_gives_the_feed_in_order_and_follows_a_jump(orders):
    events, last = whole_feed(orders)
    reader = ReadAhead(lambda start, limit: read_pages(orders, start, limit))
    try:
        read, start = [], 1
        while True:  # as gateway.follower asks
            batch = reader(start, 300)
            if batch["last"] is None:
                break
            read += batch["events"]
            start = batch["last"] + 1
            if batch["complete"]:
                break
        assert read == events and start == last + 1
        first = reader(1, 300)  # the position moved by someone else: not the batch read ahead
        assert first["events"] == [e for e in events if e["position"] <= 300]
        jumped = reader(700, 300)  # nor this one
        assert jumped["events"] == [e for e in events if 700 <= e["position"] < 1000]
    finally:
        reader.close()
