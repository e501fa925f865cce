"""Group commit: commands ready to save at the same time share one transaction, and each still gets exactly what it
would have got alone (its own position and events, its receipt, a conflict only when it is its own)."""
import uuid

import eventlet
import pytest

from services.orders.application import Orders
from shared.application import CALLER_CATCHES_UP

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"


def ctx(**extra):
    return {"user": "/users/1/", "bureau": BUREAU, "command_id": str(uuid.uuid4()), **extra}


@pytest.fixture
def orders(tmp_path):
    app = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "o.sqlite")})
    transactions = []
    save = app.save

    def slow_save(*objs):  # a transaction that takes a while, as on a busy database: others queue meanwhile
        transactions.append(len(objs))
        eventlet.sleep(0.02)
        return save(*objs)

    app.save = slow_save
    app.transactions = transactions
    yield app
    app.close()


def _together(*calls):
    threads = [eventlet.spawn(call) for call in calls]
    return [thread.wait() for thread in threads]


def test_concurrent_commands_share_transactions_and_each_gets_its_own_position_and_events(orders):
    results = _together(*[lambda i=i: orders.create("order", {"name": f"o{i}"}, ctx(**{CALLER_CATCHES_UP: True}))
                          for i in range(8)])
    assert len(orders.transactions) < 8  # grouped
    positions = [r["position"] for r in results]
    assert len(set(positions)) == 8
    feed = orders.feed(1, 100)
    for result in results:
        news = result["news"]
        assert news["last"] == result["position"]
        # the news is exactly the feed between first and last: the command's own events, nobody else's
        assert news["events"] == [e for e in feed["events"] if news["first"] <= e["position"] <= news["last"]]
        assert [e["uuid"] for e in news["events"]] == [result["uri"].split("/")[2]]


def test_a_repeated_command_in_a_group_returns_its_first_result_and_costs_the_others_nothing(orders):
    repeated = ctx()
    first = orders.create("order", {"name": "once"}, repeated)
    again, other = _together(lambda: orders.create("order", {"name": "once"}, dict(repeated)),
                             lambda: orders.create("order", {"name": "other"}, ctx()))
    assert again["uri"] == first["uri"]
    assert other["uri"] != first["uri"]
    names = sorted(e["fields"]["name"] for e in orders.feed(1, 100)["events"])
    assert names == ["once", "other"]


def test_two_commands_on_one_aggregate_are_never_in_one_group_and_both_apply(orders):
    order = orders.create("order", {"name": "n"}, ctx())["uri"].split("/")[2]
    _together(lambda: orders.update("order", order, {"priority": 1}, ctx()),
              lambda: orders.update("order", order, {"name": "renamed"}, ctx()))
    loaded = orders.load("order", order, ctx())
    assert (loaded.fields["priority"], loaded.fields["name"]) == (1, "renamed")
    assert loaded.version == 3


def test_without_the_flag_a_result_carries_no_news(orders):
    assert "news" not in orders.create("order", {"name": "n"}, ctx())
