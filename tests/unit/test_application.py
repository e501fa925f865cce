"""The command side on an in-memory SQLite store: domain rules, receipts, tenancy, the public feed."""
import uuid

import pytest

from services.identity.application import Identity
from services.orders.application import Orders
from services.orders.domain import Order
from shared.errors import InvalidPayload, NotFound, Unauthorized

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
SQLITE = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}


@pytest.fixture
def orders():
    app = Orders(env=SQLITE)
    yield app
    app.close()


def ctx(**extra):
    return {"user": "/users/1/", "bureau": BUREAU, "command_id": str(uuid.uuid4()), **extra}


def test_order_defaults_from_the_domain(orders):
    result = orders.create("order", {"name": "n"}, ctx())
    order = orders.load("order", result["uri"].split("/")[2], ctx())
    assert order.fields["customer_id"] == str(order.id)[:8]
    assert order.fields["user"] == "/users/1/" and order.bureau == BUREAU
    assert order.fields["is_template"] is False


def test_update_that_changes_nothing_records_no_event(orders):
    result = orders.create("order", {"name": "n"}, ctx())
    order_id = result["uri"].split("/")[2]
    orders.update("order", order_id, {"name": "n"}, ctx())
    assert [e["kind"] for e in orders.feed(1, 100)["events"]] == ["created"]
    assert orders.load("order", order_id, ctx()).version == 1


def test_receipt_answers_a_repeated_command(orders):
    command = ctx()
    first = orders.create("order", {"name": "n"}, command)
    again = orders.create("order", {"name": "n"}, command)
    assert first["uri"] == again["uri"]
    assert len(orders.feed(1, 100)["events"]) == 1


def test_deleted_and_foreign_orders_are_not_found(orders):
    order_id = orders.create("order", {"name": "n"}, ctx())["uri"].split("/")[2]
    with pytest.raises(NotFound):
        orders.load("order", order_id, ctx(bureau="/bureau/2/"))
    orders.delete("order", order_id, ctx())
    with pytest.raises(NotFound):
        orders.update("order", order_id, {"name": "x"}, ctx())
    with pytest.raises(NotFound):
        orders.load("order", str(uuid.uuid4()), ctx())
    with pytest.raises(NotFound):
        orders.load("order", "garbage", ctx())


def test_bureau_defaults_to_the_callers_and_cannot_be_another(orders):
    result = orders.create("order", {"name": "n"}, ctx())
    assert orders.feed(1, 10)["events"][0]["fields"]["bureau"] == BUREAU
    with pytest.raises(InvalidPayload):
        orders.update("order", result["uri"].split("/")[2], {"bureau": "/bureau/22222222-2222-2222-2222-222222222222/"},
                      ctx())


def test_identity_bootstrap_login_and_private_fields():
    identity = Identity(env=SQLITE)
    try:
        generated = identity.bootstrap("boss@example.com", None, "Acme")
        assert generated and identity.bootstrap("boss@example.com", None, "Acme") is None  # once only
        session = identity.login("BOSS@example.com", generated)
        assert session["session_key"].startswith(session["uri"].split("/")[2] + ".")
        with pytest.raises(Unauthorized):
            identity.login("boss@example.com", "wrong")
        with pytest.raises(Unauthorized):
            identity.login("nobody@example.com", generated)
        events = identity.feed(1, 100)["events"]
        user_event = next(e for e in events if e["resource"] == "users")
        assert "password_hash" not in user_event["fields"]
        assert generated not in repr(events)
    finally:
        identity.close()


def test_each_named_change_is_its_own_event_class_named_in_the_feed(orders):
    order_id = orders.create("order", {"name": "n"}, ctx())["uri"].split("/")[2]
    owner = "/users/22222222-2222-2222-2222-222222222222/"
    orders.update("order", order_id, {"order_owner": owner, "priority": 5}, ctx())
    orders.update("order", order_id, {"status": "confirmed"}, ctx())
    orders.update("order", order_id, {"customer_name": "Ada"}, ctx())
    events = orders.feed(1, 100)["events"]
    names = [e["names"] for e in events]
    assert names == [["OrderCreated"],
                     ["OrderUpdated", "OrderOwnerChanged"], ["OrderUpdated", "OrderPriorityChanged"],
                     ["OrderUpdated", "OrderStatusChanged", "OrderConfirmed"],
                     ["OrderUpdated"]]
    assert [e["event"] for e in events] == ["orders/order/Created", "orders/order/OwnerChanged",
                                            "orders/order/PriorityChanged", "orders/order/Confirmed",
                                            "orders/order/Updated"]
    # the names are a pure function of the stored events: a second read of the feed names them the same
    assert [e["names"] for e in orders.feed(1, 100)["events"]] == names


def test_a_plain_update_stored_by_an_older_release_is_named_as_it_was_then():
    """Release 0.1 stored every order change as one `Updated` and named its facts from the changed fields."""
    assert Order.event_names(Order.Updated, {"order_owner": "/users/2/", "priority": 5}) == [
        "OrderUpdated", "OrderOwnerChanged", "OrderPriorityChanged"]
    assert Order.event_names(Order.Updated, {"status": "confirmed"}) == [
        "OrderUpdated", "OrderStatusChanged", "OrderConfirmed"]
    assert Order.event_names(Order.Updated, {"status": "printing"}) == ["OrderUpdated", "OrderStatusChanged"]


def test_the_feed_decodes_only_public_events_and_names_each_event_afresh(orders):
    """The feed reads a notification's class from its topic: receipts (and other non-public records) are skipped
    undecoded. Names of a class are kept per class, yet each event gets its own list, and a plain Updated (as older
    releases stored every change) is still named from its changes."""
    order_id = orders.create("order", {"name": "n"}, ctx())["uri"].split("/")[2]
    orders.update("order", order_id, {"status": "confirmed"}, ctx())
    order = orders.load("order", order_id, ctx())
    order.trigger_event(Order.Updated, changes={"priority": 5}, actor="/users/1/")  # as release 0.1 stored it
    order.trigger_event(Order.Updated, changes={"customer_name": "Ada"}, actor="/users/1/")  # no named field
    orders.save(order)
    decoded = []
    plain_state = orders._plain_state  # every public event is read there first (the mapper's way when it says None)
    orders._plain_state = lambda stored, *args: decoded.append(stored.topic) or plain_state(stored, *args)
    events = orders.feed(1, 100)["events"]
    assert [e["names"] for e in events] == [["OrderCreated"], ["OrderUpdated", "OrderStatusChanged", "OrderConfirmed"],
                                            ["OrderUpdated", "OrderPriorityChanged"], ["OrderUpdated"]]
    assert decoded == [e["event"] for e in events]  # the two receipts were never decoded
    assert [e["kind"] for e in events] == ["created", "updated", "updated", "updated"]
    events[1]["names"].append("Mutated")
    assert orders.feed(events[1]["position"], 1)["events"][0]["names"] == ["OrderUpdated", "OrderStatusChanged", "OrderConfirmed"]


def test_the_feed_reads_stored_json_as_the_mapper_decodes_it(orders):
    """The feed reads a stored event's JSON as it is when the timestamp is its only transcoded value, and through
    eventsourcing's mapper otherwise (a UUID or datetime a change holds, a cipher, an upcast): either way each event
    is exactly what the mapper's decoding gives."""
    from datetime import datetime, timezone

    order_id = orders.create("order", {"name": "n \"_type_\"", "notes": '{"_type_": "uuid_hex"}'}, ctx())["uri"]
    order_id = order_id.split("/")[2]
    orders.update("order", order_id, {"status": "confirmed", "priority": 5}, ctx())
    order = orders.load("order", order_id, ctx())
    stamp = datetime(2026, 11, 30, 1, 2, 3, tzinfo=timezone.utc)
    order.trigger_event(Order.Updated, changes={"due_date": stamp, "owner": uuid.UUID(int=7)}, actor="/users/1/")
    order.trigger_event(Order.Updated, changes={"customer_name": {"_type_": "x", "_data_": "y", "z": 1}}, actor=None)
    order.trigger_event(Order.Deleted, actor="/users/1/")
    orders.save(order)
    notifications = orders.recorder.select_notifications(start=1, limit=100)
    served = orders.feed(1, 100)["events"]

    def by_the_mapper(notification):  # a state that is not `bytes` is always decoded by the mapper
        from dataclasses import replace
        return orders._public(replace(notification, state=bytearray(notification.state)))

    expected = [e for e in map(by_the_mapper, notifications) if e is not None]
    assert served == expected
    assert [e["kind"] for e in served] == ["created", "updated", "updated", "updated", "updated", "deleted"]
    assert served[3]["fields"] == {"due_date": stamp, "owner": uuid.UUID(int=7)}  # transcoded values decoded
    assert served[4]["fields"] == {"customer_name": {"_type_": "x", "_data_": "y", "z": 1}} and served[4]["user"] is None
    plain = [orders._plain_state(n, type(orders.mapper.to_domain_event(n)), e["kind"])
             for n, e in zip([n for n in notifications if orders._public(n) is not None], served)]
    assert [p is not None for p in plain] == [True, True, True, False, False, True]
