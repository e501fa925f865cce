"""The orders service through nameko RPC on the real broker (no gateway): commands, idempotency, tenancy, feed."""
import uuid

import pytest

from services.orders.service import OrdersService
from shared.errors import InvalidPayload, NotFound

pytestmark = pytest.mark.integration

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
OTHER_BUREAU = "/bureau/22222222-2222-2222-2222-222222222222/"
USER = "/users/33333333-3333-3333-3333-333333333333/"


@pytest.fixture(scope="module")
def orders_rpc(config):
    from nameko.runners import ServiceRunner
    from nameko.standalone.rpc import ClusterRpcProxy

    runner = ServiceRunner(config)
    runner.add_service(OrdersService)
    runner.start()
    with ClusterRpcProxy(config, timeout=20) as rpc:
        yield rpc.orders
    runner.kill()


def ctx(bureau=BUREAU, command_id=None):
    return {"user": USER, "bureau": bureau, "command_id": command_id or str(uuid.uuid4())}


def feed_for(orders_rpc, uuid_):
    return [e for e in orders_rpc.get_notifications(1, 500)["events"] if e["uuid"] == uuid_]


def test_create_update_delete_are_recorded_as_events(orders_rpc):
    created = orders_rpc.create("order", {"name": "bracket"}, ctx())
    order_uuid = created["uri"].split("/")[2]
    updated = orders_rpc.update("order", order_uuid, {"priority": 10}, ctx())
    deleted = orders_rpc.delete("order", order_uuid, ctx())
    assert created["position"] < updated["position"] < deleted["position"]

    events = feed_for(orders_rpc, order_uuid)
    assert [e["kind"] for e in events] == ["created", "updated", "deleted"]
    assert events[0]["fields"]["customer_id"] == order_uuid[:8]
    assert events[0]["fields"]["priority"] == 65 and events[0]["bureau"] == BUREAU
    assert events[1]["fields"] == {"priority": 10} and events[1]["user"] == USER


def test_a_retried_command_has_no_second_effect(orders_rpc):
    command = ctx()
    first = orders_rpc.create("order", {"name": "retried"}, command)
    second = orders_rpc.create("order", {"name": "retried"}, command)
    assert first["uri"] == second["uri"]
    assert second["position"] >= first["position"]
    order_uuid = first["uri"].split("/")[2]
    update = ctx()
    orders_rpc.update("order", order_uuid, {"priority": 1}, update)
    orders_rpc.update("order", order_uuid, {"priority": 2}, ctx())
    orders_rpc.update("order", order_uuid, {"priority": 1}, update)  # replayed late: must not undo priority 2
    kinds = [(e["kind"], e["fields"].get("priority")) for e in feed_for(orders_rpc, order_uuid)]
    assert kinds == [("created", 65), ("updated", 1), ("updated", 2)]


def test_other_bureaus_resources_do_not_exist(orders_rpc):
    created = orders_rpc.create("order", {"name": "mine"}, ctx())
    order_uuid = created["uri"].split("/")[2]
    with pytest.raises(NotFound):
        orders_rpc.update("order", order_uuid, {"name": "theirs"}, ctx(bureau=OTHER_BUREAU))
    with pytest.raises(NotFound):
        orders_rpc.delete("order", order_uuid, ctx(bureau=OTHER_BUREAU))
    with pytest.raises(InvalidPayload) as error:
        orders_rpc.create("order", {"name": "smuggled", "bureau": OTHER_BUREAU}, ctx())
    assert error.value.field == "bureau"
    assert [e["kind"] for e in feed_for(orders_rpc, order_uuid)] == ["created"]


def test_invalid_values_never_reach_the_store(orders_rpc):
    before = orders_rpc.max_position()
    with pytest.raises(InvalidPayload) as error:
        orders_rpc.create("order", {"name": "x", "shipping_grouping": "by_truck"}, ctx())
    assert error.value.field == "shipping_grouping"
    assert orders_rpc.max_position() == before


def test_concurrent_updates_of_one_order_all_land(orders_rpc, config):
    """Optimistic concurrency: writers that collide are retried on a fresh copy; no update is lost."""
    import eventlet
    from nameko.standalone.rpc import ClusterRpcProxy

    created = orders_rpc.create("order", {"name": "hot", "custom_field_values": []}, ctx())
    order_uuid = created["uri"].split("/")[2]

    def write(i):
        with ClusterRpcProxy(config, timeout=20) as rpc:
            rpc.orders.update("order", order_uuid, {"external_id": f"v{i}"}, ctx())

    pool = eventlet.GreenPool(8)
    list(pool.imap(write, range(8)))
    updates = [e for e in feed_for(orders_rpc, order_uuid) if e["kind"] == "updated"]
    assert sorted(e["fields"]["external_id"] for e in updates) == sorted(f"v{i}" for i in range(8))
    assert [e["version"] for e in feed_for(orders_rpc, order_uuid)] == list(range(1, 10))


def test_feed_pages_and_reports_its_last_notification(orders_rpc):
    for i in range(3):
        orders_rpc.create("order", {"name": f"page-{i}"}, ctx())
    page = orders_rpc.get_notifications(1, 2)
    assert page["last"] is not None and page["complete"] is False
    rest = orders_rpc.get_notifications(page["last"] + 1, 500)
    assert rest["complete"] is True
    assert all(e["position"] > page["last"] for e in rest["events"])


def test_commands_in_one_message_each_answer_as_if_sent_alone(orders_rpc):
    from nameko.exceptions import deserialize

    from shared.application import CALLER_CATCHES_UP

    target = orders_rpc.create("order", {"name": "target"}, ctx())["uri"].split("/")[2]
    repeated = ctx()
    first = orders_rpc.create("order", {"name": "repeated"}, repeated)
    answers = orders_rpc.commands([
        {"method": "create", "args": ["order", {"name": f"batched-{i}"}, dict(ctx(), **{CALLER_CATCHES_UP: True})]}
        for i in range(4)
    ] + [
        {"method": "update", "args": ["order", target, {"priority": 3}, ctx()]},
        {"method": "update", "args": ["order", str(uuid.uuid4()), {"priority": 3}, ctx()]},
        {"method": "create", "args": ["order", {"name": "repeated"}, repeated]},
        {"method": "get", "args": ["order", target, ctx()]},
    ])
    created = [a["result"] for a in answers[:4]]
    assert len({c["uri"] for c in created}) == 4 and len({c["position"] for c in created}) == 4
    assert all(c["news"]["last"] == c["position"] for c in created)
    assert answers[4]["result"]["uri"] == f"/order/{target}/"
    assert isinstance(deserialize(answers[5]["error"]), NotFound)
    assert answers[6]["result"]["uri"] == first["uri"]  # idempotent inside a message too
    assert "error" in answers[7]  # reads are not commands
    assert [e["fields"]["priority"] for e in feed_for(orders_rpc, target) if e["kind"] == "updated"] == [3]
