"""Flow F1 in production (production.md §12, §3): the orders feed makes a confirmed line item's pieces and prints,
once, whatever the feed's delivery does; a workflow change re-plans unstarted prints; cancelling cancels them."""
import uuid as uuidlib

import pytest

from services.orders.application import Orders
from services.orders.domain import QUANTITY_OUT_OF_RANGE
from services.production.application import Production
from shared.errors import InvalidPayload
from tests.kit.apps import IN_MEMORY, command_ctx
from tests.unit.test_production_workstations import post_processor_type, printer_type, step, uuid, workflow

MODEL = "/model/88888888-8888-8888-8888-888888888888/"


@pytest.fixture
def apps():
    orders, production = Orders(env=IN_MEMORY), Production(env=IN_MEMORY)
    yield orders, production
    orders.close()
    production.close()


def follow(orders, production, limit=500, start=None):
    """One pull of the orders feed from production's position, as the service does it."""
    position = production.position("orders") if start is None else start
    return production.apply_feed("orders", orders.feed(position + 1, limit), lambda path: "bracket.stl")


def follow_all(orders, production, limit=500):
    while True:
        before = production.position("orders")
        follow(orders, production, limit)
        if production.position("orders") == before:
            return


def line_item(orders, quantity=3, workflow_path=None):
    order = orders.create("order", {"name": "o"}, command_ctx())["uri"]
    product = orders.create("product", {"order": order}, command_ctx())["uri"]
    payload = {"product": product, "quantity": quantity, "model": MODEL}
    if workflow_path:
        payload["workflow"] = workflow_path
    return orders.create("line-item", payload, command_ctx())["uri"]


def confirm(orders, item):
    orders.record_estimates(uuid(item), {"quantity": 1}, None, str(uuidlib.uuid4()))  # the system's moves
    assert orders.read("line-item", uuid(item), command_ctx())["status"] == "pending"
    orders.update("line-item", uuid(item), {"status": "confirmed"}, command_ctx())


def made(production, resource, item):
    return [f["fields"] for f in production.referencing(resource, "line_item", item, {"platform_admin": True})]


def two_step_workflow(production, name="Print and sand"):
    return workflow(production, [step(production, printer_type(production, f"{name} printer")),
                                 step(production, post_processor_type(production, f"{name} sanding"))], name=name)


def test_confirmed_line_item_gets_pieces_and_a_print_per_step(apps):
    orders, production = apps
    flow = two_step_workflow(production)
    item = line_item(orders, 3, flow)
    follow_all(orders, production)
    assert made(production, "piece", item) == []  # not confirmed yet
    assert production.read("workflow", uuid(flow), command_ctx())["usage_state"] == "can_be_safely_archived"
    confirm(orders, item)
    follow_all(orders, production)
    pieces = sorted(made(production, "piece", item), key=lambda p: p["copy"])
    assert [(p["copy"], p["name"], p["status"], p["workflow"]) for p in pieces] == [
        (n, f"bracket.stl {n}", "confirmed", flow) for n in (1, 2, 3)]
    prints = made(production, "print", item)
    assert len(prints) == 6 and {p["status"] for p in prints} == {"created"}
    assert sorted((p["copy"], p["process_step_position"]) for p in prints) == [
        (c, s) for c in (1, 2, 3) for s in (0, 1)]
    assert all(p["current_print"] for p in pieces)
    assert {p["line_item_status"] for p in pieces} == {"confirmed"}
    assert production.read("workflow", uuid(flow), command_ctx())["usage_state"] == "active"
    orders.update("line-item", uuid(item), {"status": "printing"}, command_ctx())
    follow_all(orders, production)
    assert {p["line_item_status"] for p in made(production, "piece", item)} == {"printing"}


def test_repeated_and_stale_batches_change_nothing(apps):
    orders, production = apps
    item = line_item(orders, 2, two_step_workflow(production))
    confirm(orders, item)
    first = orders.feed(1, 500)
    production.apply_feed("orders", first, lambda path: "m")
    events = production.recorder.max_notification_id()
    production.apply_feed("orders", first, lambda path: "m")  # a redelivered batch
    follow(orders, production, start=0)  # a stale pull from the start
    assert production.recorder.max_notification_id() == events
    assert len(made(production, "piece", item)) == 2 and len(made(production, "print", item)) == 4


def test_one_event_at_a_time_gives_the_same_pieces(apps):
    orders, production = apps
    item = line_item(orders, 2, two_step_workflow(production))
    confirm(orders, item)
    follow_all(orders, production, limit=1)
    assert len(made(production, "piece", item)) == 2 and len(made(production, "print", item)) == 4


def test_workflow_change_replans_and_cancel_cancels(apps):
    orders, production = apps
    first = two_step_workflow(production)
    second = workflow(production, [step(production, printer_type(production, "Other"))], name="Print only")
    item = line_item(orders, 2, first)
    confirm(orders, item)
    follow_all(orders, production)
    old_prints = {p["name"] for p in made(production, "print", item)}
    orders.update("line-item", uuid(item), {"workflow": second}, command_ctx())
    follow_all(orders, production)
    prints = made(production, "print", item)
    assert len(prints) == 2 and {p["workflow"] for p in prints} == {second}
    assert {p["workflow"] for p in made(production, "piece", item)} == {second}
    assert old_prints  # the first workflow's prints are gone (deleted)
    assert production.read("workflow", uuid(first), command_ctx())["usage_state"] == "inactive"
    orders.update("line-item", uuid(item), {"status": "cancelled"}, command_ctx())
    follow_all(orders, production)
    assert {p["status"] for p in made(production, "piece", item)} == {"cancelled"}
    assert {p["status"] for p in made(production, "print", item)} == {"cancelled"}
    assert production.read("workflow", uuid(second), command_ctx())["usage_state"] == "can_be_safely_archived"


def test_no_workflow_gives_pieces_without_prints(apps):
    orders, production = apps
    item = line_item(orders, 2)
    confirm(orders, item)
    follow_all(orders, production)
    assert len(made(production, "piece", item)) == 2 and made(production, "print", item) == []


def test_feed_names_of_pieces_and_prints(apps):
    orders, production = apps
    item = line_item(orders, 1, two_step_workflow(production))
    confirm(orders, item)
    follow_all(orders, production)
    feed = production.feed(1, 500)["events"]
    names = {tuple(e["names"]) for e in feed if e["resource"] in ("piece", "print")}
    assert ("PieceCreated",) in names and ("PrintCreated",) in names


def test_line_item_moves_by_itself_to_pending(apps):
    orders, _ = apps
    item = line_item(orders, 1)
    assert orders.read("line-item", uuid(item), command_ctx())["status"] == "new"
    orders.estimating(uuid(item), model_pending=True)  # the model is being analysed
    assert orders.read("line-item", uuid(item), command_ctx())["status"] == "calculating_estimates"
    orders.record_estimates(uuid(item), {"quantity": 1}, None, str(uuidlib.uuid4()))
    assert orders.read("line-item", uuid(item), command_ctx())["status"] == "pending"
    broken = line_item(orders, 1)
    orders.record_estimates(uuid(broken), None, "The model does not seem printable", str(uuidlib.uuid4()))
    assert orders.read("line-item", uuid(broken), command_ctx())["status"] == "error"
    names = [e["names"][-1] for e in orders.feed(1, 500)["events"]
             if e["uuid"] == uuid(item) and e["resource"] == "line-item" and "status" in e["fields"]]
    assert names[-2:] == ["LineItemStatusChanged", "LineItemStatusChanged"]


def test_additive_workflow_without_printer_type_cannot_be_confirmed(apps):
    from services.orders.domain import ADDITIVE_NEEDS_PRINTER_TYPE
    from shared.errors import InvalidPayload

    orders, production = apps
    flow = workflow(production, [step(production, post_processor_type(production))], name="Sand only")
    item = line_item(orders, 1, flow)
    orders.record_estimates(uuid(item), {"quantity": 1}, None, str(uuidlib.uuid4()))
    facts = {flow: production.workflow_facts(flow, command_ctx())}
    with pytest.raises(InvalidPayload) as refused:
        orders.update("line-item", uuid(item), {"status": "confirmed"}, command_ctx(workflows=facts))
    assert (refused.value.title, refused.value.field) == (ADDITIVE_NEEDS_PRINTER_TYPE, "workflow")
    production.update("workflow", uuid(flow), {"type": "specimen"}, command_ctx())
    facts = {flow: production.workflow_facts(flow, command_ctx())}
    orders.update("line-item", uuid(item), {"status": "confirmed"}, command_ctx(workflows=facts))


def test_quantity_change_after_confirmation_replans_pieces(apps):
    """orders.md §1.3 LineItemQuantityChanged → production re-plans: more copies, or the highest unstarted ones
    cancelled; a later increase takes new copy numbers."""
    orders, production = apps
    item = line_item(orders, 2, two_step_workflow(production))
    confirm(orders, item)
    follow_all(orders, production)
    orders.update("line-item", uuid(item), {"quantity": 4}, command_ctx())
    follow_all(orders, production)
    pieces = made(production, "piece", item)
    assert sorted((p["copy"], p["name"], p["status"]) for p in pieces) == [
        (n, f"bracket.stl {n}", "confirmed") for n in (1, 2, 3, 4)]
    assert len(made(production, "print", item)) == 8
    orders.update("line-item", uuid(item), {"quantity": 1}, command_ctx())
    follow_all(orders, production)
    by_copy = {p["copy"]: p["status"] for p in made(production, "piece", item)}
    assert by_copy == {1: "confirmed", 2: "cancelled", 3: "cancelled", 4: "cancelled"}
    assert sorted(p["status"] for p in made(production, "print", item)) == ["cancelled"] * 6 + ["created"] * 2
    orders.update("line-item", uuid(item), {"quantity": 2}, command_ctx())
    follow_all(orders, production)
    live = sorted(p["copy"] for p in made(production, "piece", item) if p["status"] != "cancelled")
    assert live == [1, 5]
    follow(orders, production, start=0)  # the whole feed again changes nothing
    assert len(made(production, "piece", item)) == 5


def test_quantity_of_a_line_item_is_refused_out_of_range(apps):
    orders, _ = apps
    item = line_item(orders, 2)
    confirm(orders, item)
    with pytest.raises(InvalidPayload) as refused:
        orders.update("line-item", uuid(item), {"quantity": 0}, command_ctx())
    assert refused.value.args[0] == QUANTITY_OUT_OF_RANGE
    orders.update("line-item", uuid(item), {"status": "cancelled"}, command_ctx())
    with pytest.raises(InvalidPayload):
        orders.update("line-item", uuid(item), {"quantity": 3}, command_ctx())
