"""The follower applies writers' own events without a pull when they continue the read side, and pulls otherwise."""
import time

from gateway.follower import Follower


class Store:
    """gateway.readstore.ReadStore's position and apply_feed, in memory. `on_turn` runs as an applier gets its turn
    (another process's transaction commits just before)."""

    def __init__(self, position=0, on_turn=lambda store: None):
        self.at = position
        self.applied = []  # (events' positions, last) per transaction
        self.gaps_open = []  # (after, the position held) for each apply refused: its gap still open at the turn
        self.on_turn = on_turn

    def position(self, application):
        return self.at

    def apply_feed(self, application, events, last, after=None):
        self.on_turn(self)
        if after is not None and self.at < after:
            self.gaps_open.append((after, self.at))
            return self.at
        fresh = [e["position"] for e in events if e["position"] > self.at]
        self.applied.append((fresh, last))
        self.at = max(self.at, last)
        return self.at


def news(first, last, *positions):
    return {"first": first, "last": last, "events": [{"position": p} for p in positions]}


def feed_from(log):
    pulls = []

    def fetch(start, limit):
        pulls.append(start)
        events = [{"position": p} for p in log if p >= start][:limit]
        return {"events": events, "last": events[-1]["position"] if events else None, "complete": True}

    fetch.pulls = pulls
    return fetch


def test_news_that_continues_the_read_side_is_applied_without_a_pull():
    store, fetch = Store(10), feed_from([])
    assert Follower(store).catch_up("orders", fetch, until=12, news=news(11, 12, 11)) == 12
    assert fetch.pulls == [] and store.applied == [([11], 12)]


def test_news_after_a_gap_is_not_applied_the_gap_is_pulled():
    store, fetch = Store(10), feed_from([11, 12, 14])
    Follower(store).catch_up("orders", fetch, until=14, news=news(13, 14, 14))
    assert fetch.pulls == [11] and store.applied == [([11, 12, 14], 14)]
    assert store.gaps_open == [(12, 10)]  # tried once the turn came: the gap was still open


def test_news_after_a_gap_another_process_fills_by_the_turn_is_applied_without_a_pull():
    def another_gateway_applies_11_and_12(store):
        store.at = max(store.at, 12)

    store, fetch = Store(10, on_turn=another_gateway_applies_11_and_12), feed_from([11, 12, 14])
    assert Follower(store).catch_up("orders", fetch, until=14, news=news(13, 14, 14)) == 14
    assert fetch.pulls == [] and store.applied == [([14], 14)] and store.gaps_open == []


def test_news_waiting_on_the_board_is_applied_in_one_transaction_by_whoever_gets_the_turn():
    store, fetch = Store(10), feed_from([])
    follower = Follower(store)
    follower._boards["orders"] = {13: news(13, 14, 14)}  # handed over by a writer still waiting for the turn
    assert follower.catch_up("orders", fetch, until=12, news=news(11, 12, 11)) == 14
    assert store.applied == [([11, 14], 14)] and fetch.pulls == []
    assert follower._boards["orders"] == {}  # applied news leaves the board


def test_news_already_applied_changes_nothing():
    store, fetch = Store(20), feed_from([])
    assert Follower(store).catch_up("orders", fetch, until=12, news=news(11, 12, 11)) == 20
    assert store.applied == [] and fetch.pulls == []


class CountingStore(Store):
    def __init__(self, position=0):
        super().__init__(position)
        self.reads = 0

    def position(self, application):
        self.reads += 1
        return super().position(application)


def test_a_writer_whose_news_another_applied_returns_without_a_statement():
    """Under load one writer applies the slices of those waiting behind it; they then find their position reached
    in the follower's memory instead of reading it from the store once each."""
    store, fetch = CountingStore(10), feed_from([])
    follower = Follower(store)
    follower._boards["orders"] = {12: news(12, 12, 12), 13: news(13, 13, 13)}  # two writers waiting for the turn
    assert follower.catch_up("orders", fetch, until=11, news=news(11, 11, 11)) == 13
    assert store.reads == 1 and store.applied == [([11, 12, 13], 13)]
    assert follower.catch_up("orders", fetch, until=12, news=news(12, 12, 12)) == 13
    assert follower.catch_up("orders", fetch, until=13, news=news(13, 13, 13)) == 13
    assert store.reads == 1 and store.applied == [([11, 12, 13], 13)] and fetch.pulls == []
    assert follower._boards["orders"] == {}


def test_a_position_past_what_the_follower_saw_is_read_from_the_store():
    """Another process (the projector, another gateway) may have moved the store: the memory only ever answers
    for positions it saw reached, anything further is read."""
    store, fetch = CountingStore(10), feed_from([])
    follower = Follower(store)
    follower.catch_up("orders", fetch, until=11, news=news(11, 11, 11))
    store.at = 20  # moved by another process
    assert follower.catch_up("orders", fetch, until=15) == 20
    assert store.reads == 2 and fetch.pulls == []
    assert follower.catch_up("orders", fetch) == 20 and store.reads == 3  # no `until`: always read (and pulled)


def test_a_writer_that_cannot_get_the_feed_in_time_leaves_its_news_for_the_next():
    """While another catch-up holds the feed (a pull waiting on an absent service), a writer waits only `wait`
    seconds; its news stays on the board and whoever gets the feed next applies it."""
    store, fetch = Store(10), feed_from([])
    follower = Follower(store)
    holding = follower._lock("orders")
    holding.acquire()
    started = time.monotonic()
    assert follower.catch_up("orders", fetch, until=12, news=news(11, 12, 11), wait=0.2) is None
    assert 0.2 <= time.monotonic() - started < 1 and store.applied == []
    holding.release()
    assert follower.catch_up("orders", fetch, until=13, news=news(13, 13, 13)) == 13
    assert store.applied == [([11, 13], 13)] and fetch.pulls == []


def test_writers_answered_together_apply_their_slices_in_one_transaction_whatever_order_they_wake_in():
    """The commands of one message are answered at once and their writers wake in any order: the first to run
    must not apply its slice alone, nor pull the feed for the gap before it that a sibling is about to hand over."""
    import eventlet

    store, fetch = Store(10), feed_from([11, 12, 13])
    follower = Follower(store)
    writers = [eventlet.spawn(follower.catch_up, "orders", fetch, until=p, news=news(p, p, p)) for p in (13, 11, 12)]
    assert [writer.wait() for writer in writers] == [13, 13, 13]
    assert fetch.pulls == [] and store.applied == [([11, 12, 13], 13)]
