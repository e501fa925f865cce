"""shared.follower: a feed batch that changes nothing in the follower's store writes nothing (no transaction, no
tracking record, no ring); its position is held in memory until a batch that changes something records it, or
until it runs UNRECORDED_LIMIT past the last recorded one. A restart forgets it and re-applies, never skips."""
import pytest

from services.orders.application import Orders
from services.production.application import Production
from shared import follower
from tests.kit.apps import IN_MEMORY, command_ctx
from tests.unit.test_production_planning import confirm, line_item, made, two_step_workflow


def production_on(path):
    return Production(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)})


@pytest.fixture
def orders():
    app = Orders(env=IN_MEMORY)
    yield app
    app.close()


def follow(orders, production):
    """One pull of the whole orders feed from production's position, as shared.follower.pull makes it."""
    position = production.position("orders")
    return production.apply_feed("orders", orders.feed(position + 1, 500), lambda path: "bracket.stl")


def test_a_batch_that_changes_nothing_is_held_in_memory_and_a_restart_reapplies_it(orders, tmp_path):
    production = production_on(tmp_path / "production.db")
    flow = two_step_workflow(production)
    before = production.recorder.max_notification_id()
    orders.create("order", {"name": "o"}, command_ctx())  # a bare order means nothing to production
    last = orders.recorder.max_notification_id()

    assert follow(orders, production) == last
    assert production.position("orders") == last
    assert production.recorder.max_tracking_id("orders") is None  # no transaction for it
    assert production.recorded_since_asked("orders") is None  # and nothing for production's own followers
    assert production.recorder.max_notification_id() == before
    production.close()

    restarted = production_on(tmp_path / "production.db")
    assert restarted.position("orders") == 0  # forgotten: read again, and again it changes nothing
    assert follow(orders, restarted) == last
    assert restarted.recorder.max_notification_id() == before

    item = line_item(orders, 2, flow)  # now the batch plans a line item and its pieces: recorded, and rung
    confirm(orders, item)
    last = orders.recorder.max_notification_id()
    assert follow(orders, restarted) == last
    assert restarted.recorder.max_tracking_id("orders") == last
    assert len(made(restarted, "piece", item)) == 2
    assert restarted.recorded_since_asked("orders") == restarted.recorder.max_notification_id()
    assert restarted.recorded_since_asked("orders") is None  # told once
    restarted.close()


def test_the_position_held_in_memory_is_recorded_once_it_runs_the_limit_past_the_recorded_one(orders, tmp_path,
                                                                                             monkeypatch):
    monkeypatch.setattr(follower, "UNRECORDED_LIMIT", 5)
    production = production_on(tmp_path / "production.db")
    orders.create("order", {"name": "a"}, command_ctx())
    first = orders.recorder.max_notification_id()
    assert first < 5
    follow(orders, production)
    assert production.recorder.max_tracking_id("orders") is None
    while orders.recorder.max_notification_id() < 5:
        orders.create("order", {"name": "b"}, command_ctx())
    last = orders.recorder.max_notification_id()
    follow(orders, production)
    assert production.recorder.max_tracking_id("orders") == last  # a restart re-reads at most the limit
    assert production.recorded_since_asked("orders") is None  # a bare position is no news to ring
    production.close()


class Direct:
    """The RPC transport replaced by direct calls to the followed application (the feed is what it answers)."""

    def __init__(self, apps):
        self.apps = apps

    def call(self, service, method, *args):
        assert method == "get_notifications"
        return self.apps[service].feed(*args)


def test_only_a_pull_that_recorded_something_rings_the_followers_own_doorbell(orders):
    production = Production(env=IN_MEMORY)
    flow = two_step_workflow(production)
    rings = []

    def pull():
        follower.pull(production, Direct({"orders": orders}), "orders",
                      lambda feed: production.apply_feed("orders", feed, lambda path: "bracket.stl"), rings.append)

    orders.create("order", {"name": "o"}, command_ctx())
    pull()
    assert production.position("orders") == orders.recorder.max_notification_id() and rings == []
    item = line_item(orders, 1, flow)
    confirm(orders, item)
    pull()
    assert production.position("orders") == orders.recorder.max_notification_id()
    assert rings == [{"application": "production", "position": production.recorder.max_notification_id()}]
    production.close()


def test_the_recorded_position_is_read_once_and_a_replicas_batch_is_never_applied_twice(orders, tmp_path):
    """The tracking record's position is kept in memory once read (a doorbell costs no query); a replica that
    recorded meanwhile leaves it too low, and the store is read afresh before a batch that changes something is
    recorded: what the replica applied is not applied again."""
    mine = production_on(tmp_path / "production.db")
    flow = two_step_workflow(mine)
    replica = production_on(tmp_path / "production.db")
    asked = []
    read = mine.recorder.max_tracking_id
    mine.recorder.max_tracking_id = lambda name: asked.append(name) or read(name)
    orders.create("order", {"name": "o"}, command_ctx())
    follow(orders, mine)
    orders.create("order", {"name": "p"}, command_ctx())
    follow(orders, mine)
    assert asked == ["orders"]  # batches that changed nothing: read once, then kept

    item = line_item(orders, 2, flow)
    confirm(orders, item)
    planned = orders.recorder.max_notification_id()
    assert follow(orders, replica) == planned  # the replica plans the line item first
    recorded = mine.recorder.max_notification_id()
    orders.create("order", {"name": "q"}, command_ctx())
    last = orders.recorder.max_notification_id()

    assert follow(orders, mine) <= last  # from its kept position: the replica's batch is in what it reads
    follow(orders, mine)
    assert mine.position("orders") == last
    assert len(made(mine, "piece", item)) == 2
    assert mine.recorder.max_notification_id() == recorded  # nothing planned a second time
    mine.close()
    replica.close()
