"""Production over HTTP (production.md §4.1–4.4, §5, §12 F1/F6): a bureau sets up its own workstations and workflows
(nothing is seeded), with the reference's status codes and texts; a confirmed line item becomes exactly `quantity`
pieces and steps × quantity prints at /piece/ and /print/, once, whatever the orders feed's delivery does, even when
production was down while the line item was confirmed."""
import uuid

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from services.orders import domain as orders_domain
from services.production import domain
from shared.eventstore import EventStore
from shared.service import NEWS_EVENT
from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


def unique(prefix):
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def created(api, path, payload):
    response = api.post(path, json=payload)
    assert response.status_code == 201, (path, response.text)
    return response.headers["Location"]


def error(response, status):
    assert response.status_code == status, response.text
    return response.json()["errors"][0]["title"]


class Shop:
    """One bureau's workstations, made through the API as a new bureau's client would."""

    def __init__(self, api):
        self.api = api
        self.manufacturer = created(api, "/manufacturer/", {"name": unique("Stratasys")})
        self.material = created(api, "/material/", {"name": unique("PA12"), "type": "base", "cost": 0.5,
                                                     "manufacturer": self.manufacturer})
        self.location = created(api, "/location/", {"name": unique("Hall"), "address": "1 Loop Rd"})
        self.printer_type = created(api, "/printer-type/", {
            "name": unique("Fuse 1"), "manufacturer": self.manufacturer, "materials": [self.material],
            "build_volume": {"x": 165, "y": 165, "z": 300}, "build_plate_shape": "rectangular"})
        self.printer = created(api, "/printer/", {"name": unique("Fuse #1"), "printer_type": self.printer_type,
                                                  "location": self.location})
        self.post_processor_type = created(api, "/post-processor-type/", {
            "name": unique("Sift"), "duration": 1800, "batching_strategy": "by_number_of_parts",
            "number_of_parts": 40})
        self.post_processor = created(api, "/post-processor/", {
            "name": unique("Sifter"), "post_processor_type": self.post_processor_type, "location": self.location})
        self.shipping = created(api, "/shipping/", {"name": unique("Courier"), "description": "next day",
                                                    "cost": 12.5, "region": "europe"})
        self.steps = [self.step(t) for t in (self.printer_type, self.post_processor_type, self.shipping)]

    def step(self, workstation_type, **inputs):
        payload = {"workstation_type_uri": workstation_type, "notes": "optional", "success": "optional",
                   "tracking_id": "hidden", "upload": "hidden", **inputs}
        return created(self.api, "/process-step/", payload)

    def workflow(self, steps=None, **fields):
        return created(self.api, "/workflow/", {"name": unique("Print, sift, ship"),
                                                "process_steps": self.steps if steps is None else steps, **fields})


@pytest.fixture(scope="module")
def shop(admin):
    return Shop(admin)


def line_item(api, quantity, workflow=None, name=None):
    order = created(api, "/order/", {"name": unique("order")})
    product = created(api, "/product/", {"order": order, "no_model_upload": True})
    payload = {"product": product, "quantity": quantity}
    if workflow:
        payload["workflow"] = workflow
    if name:
        payload["name"] = name
    item = created(api, "/line-item/", payload)
    eventually(lambda: api.get(item).json()["status"] == "pending", timeout=30)  # the system's own moves
    return item


def of_line_item(api, resource, item):
    body = api.get(f"/{resource}/?filter[line_item]={item}&per_page=500").json()
    return body["resources"]


def settled_count(api, resource, item, expected):
    """Wait for `expected` resources, then make sure no more come."""
    eventually(lambda: len(of_line_item(api, resource, item)) == expected, timeout=30)
    return of_line_item(api, resource, item)


def test_a_bureau_starts_with_no_workstations_or_workflows(system, admin):
    tenant = make_tenant(admin, login, "fresh")
    for path in ("/printer-type/", "/printer/", "/post-processor-type/", "/post-processor/", "/workflow/",
                 "/process-step/", "/piece/", "/print/"):
        body = tenant.manager.get(path).json()
        assert body["total_count"] == 0, (path, body)


def test_workstations_and_their_rules(admin, shop):
    body = admin.get(shop.printer_type).json()
    assert (body["build_plate_shape"], body["build_packer_type"], body["min_packing_distance"]) == (
        "rectangular", "pack2d", 5.0)
    assert body["build_volume"] == {"x": 165, "y": 165, "z": 300}
    name = body["name"]
    duplicate = admin.post("/printer-type/", json={
        "name": name, "manufacturer": shop.manufacturer, "materials": [shop.material],
        "build_volume": {"x": 1, "y": 1, "z": 1}, "build_plate_shape": "rectangular"})
    assert error(duplicate, 400) == domain.PRINTER_TYPE_NAME_EXISTS
    circular = admin.post("/printer-type/", json={
        "name": unique("Round"), "manufacturer": shop.manufacturer, "materials": [shop.material],
        "build_volume": {"x": 200, "y": 100, "z": 100}, "build_plate_shape": "circular"})
    assert circular.status_code == 400 and circular.json()["errors"][0]["field"] == "build_volume"
    sifter = admin.get(shop.post_processor_type).json()
    assert (sifter["in_progress_max"], sifter["batching_strategy"], sifter["number_of_parts"]) == (
        10, "by_number_of_parts", 40)
    no_name = admin.post("/post-processor/", json={"post_processor_type": shop.post_processor_type})
    assert no_name.status_code == 400 and no_name.json()["errors"][0]["field"] == "name"
    assert error(admin.delete(shop.printer_type), 400) == domain.PRINTER_TYPE_HAS_PRINTERS
    assert error(admin.delete(shop.post_processor_type), 400) == domain.POST_PROCESSOR_TYPE_HAS_POST_PROCESSORS
    assert admin.get(shop.printer_type).status_code == 200


def test_workflows_steps_and_delete_guards(admin, shop):
    flow = shop.workflow()
    body = admin.get(flow).json()
    assert (body["process_steps"], body["usage_state"], body["type"]) == (
        shop.steps, "inactive", "additive_manufacturing")
    step = admin.get(shop.steps[1]).json()
    assert flow in step["workflows"] and step["step_positions"][step["workflows"].index(flow)] == 1
    assert (step["notes"], step["success"], step["tracking_id"], step["upload"]) == (
        "optional", "optional", "hidden", "hidden")
    assert error(admin.delete(shop.steps[1]), 400) == domain.STEP_IN_WORKFLOW
    assert error(admin.post("/workflow/", json={"name": body["name"]}), 400) == domain.WORKFLOW_NAME_EXISTS
    refused = admin.put(flow, json={"usage_state": "active"})
    assert error(refused, 400) == domain.ONLY_ARCHIVE
    lonely = shop.step(shop.post_processor_type)
    assert admin.delete(lonely).status_code == 204


def test_another_bureaus_workflow_is_not_found(admin, shop):
    flow = shop.workflow()
    tenant = make_tenant(admin, login, "other")
    assert tenant.manager.get(flow).status_code == 404
    replace = tenant.manager.post(flow + "replace/", json={"name": "mine", "description": "d",
                                                            "process_steps": shop.steps})
    assert replace.status_code == 404
    assert tenant.manager.put(flow, json={"description": "mine"}).status_code == 404


def test_confirm_makes_pieces_and_prints(admin, shop):
    flow = shop.workflow()
    item = line_item(admin, 3, flow, name="bracket")
    assert of_line_item(admin, "piece", item) == []  # pending: nothing planned yet
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    pieces = sorted(settled_count(admin, "piece", item, 3), key=lambda p: p["copy"])
    assert [(p["copy"], p["name"], p["status"], p["workflow"], p["line_item"]) for p in pieces] == [
        (n, f"bracket {n}", "confirmed", flow, item) for n in (1, 2, 3)]
    prints = settled_count(admin, "print", item, 9)
    assert {p["status"] for p in prints} == {"created"} and all(p["run"] is None for p in prints)
    by_piece = {}
    for each in prints:
        by_piece.setdefault(each["piece"], []).append((each["process_step_position"], each["process_step"]))
    assert sorted(by_piece) == sorted(p["uri"] for p in pieces)
    assert all(sorted(v) == list(enumerate(shop.steps)) for v in by_piece.values())
    assert all(p["current_print"] in [x["uri"] for x in prints] for p in pieces)
    eventually(lambda: admin.get(flow).json()["usage_state"] == "active")

    # in use: its steps do not change, it is not archived (409), it is replaced instead
    assert error(admin.put(flow, json={"process_steps": shop.steps[:1]}), 409) == domain.WORKFLOW_PROCESSING
    assert error(admin.put(flow, json={"usage_state": "archived"}), 409) == domain.WORKFLOW_PROCESSING
    assert admin.get(flow).json()["process_steps"] == shop.steps


def test_replace_on_a_line_item_replans_its_prints(admin, shop):
    flow = shop.workflow()
    item = line_item(admin, 2, flow)
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    old = {p["uri"] for p in settled_count(admin, "print", item, 6)}
    response = admin.post(flow + "replace/", json={"name": unique("Print and ship"), "description": "no sifting",
                                                    "process_steps": [shop.steps[0], shop.steps[2]],
                                                    "line_item": item})
    assert response.status_code == 204, response.text
    new_flow = response.headers["Location"]
    body = admin.get(new_flow).json()
    assert (body["line_item"], body["source_workflow"]) == (item, flow)
    eventually(lambda: admin.get(item).json()["workflow"] == new_flow)  # recorded by orders, seen a moment later
    eventually(lambda: {p["workflow"] for p in of_line_item(admin, "print", item)} == {new_flow}, timeout=30)
    prints = settled_count(admin, "print", item, 4)
    assert not old & {p["uri"] for p in prints}
    assert {p["workflow"] for p in of_line_item(admin, "piece", item)} == {new_flow}
    eventually(lambda: admin.get(flow).json()["usage_state"] == "inactive")


def test_cancel_cancels_pieces_and_prints(admin, shop):
    item = line_item(admin, 2, shop.workflow())
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(admin, "print", item, 6)
    assert admin.put(item, json={"status": "cancelled"}).status_code == 204
    eventually(lambda: {p["status"] for p in of_line_item(admin, "piece", item)} == {"cancelled"}, timeout=30)
    eventually(lambda: {p["status"] for p in of_line_item(admin, "print", item)} == {"cancelled"}, timeout=30)


def test_additive_workflow_without_a_printer_type_cannot_be_confirmed(admin, shop):
    flow = shop.workflow(steps=[shop.steps[1], shop.steps[2]])
    item = line_item(admin, 1, flow)
    refused = admin.put(item, json={"status": "confirmed"})
    assert error(refused, 400) == domain.ADDITIVE_NEEDS_PRINTER_TYPE
    assert admin.get(item).json()["status"] == "pending"
    order = admin.get(item).json()["order"]  # confirming the order confirms its line items: the same 400
    assert error(admin.put(order, json={"status": "confirmed"}), 400) == domain.ADDITIVE_NEEDS_PRINTER_TYPE
    assert admin.get(item).json()["status"] == "pending" and admin.get(order).json()["status"] == "pending"
    specimen = shop.workflow(steps=[shop.steps[1]], type="specimen")
    assert admin.put(item, json={"workflow": specimen}).status_code == 204
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204


def production_app(system):
    container = system.restarted.get("production") or system.core.service_map["production"]
    return next(d for d in container.extensions if isinstance(d, EventStore)).app


def test_redelivered_news_and_feed_do_not_double_pieces(system, admin, shop):
    item = line_item(admin, 2, shop.workflow())
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(admin, "print", item, 6)
    app = production_app(system)
    events = app.recorder.max_notification_id()

    dispatch = event_dispatcher(system.config)
    container = system.restarted.get("production") or system.core.service_map["production"]
    with system.rpc() as rpc:
        latest = rpc.orders.max_position()
    for position in (1, latest, 3, latest + 1000):
        with entrypoint_waiter(container, "on_orders_news", timeout=15) as handled:
            dispatch("orders", NEWS_EVENT, {"application": "orders", "position": position})
        handled.get()
    with system.rpc() as rpc:
        feed = rpc.orders.get_notifications(1, 500)
    app.apply_feed("orders", feed, lambda path: None)  # the whole feed again, from the start

    assert app.recorder.max_notification_id() == events  # nothing new was recorded
    assert len(of_line_item(admin, "piece", item)) == 2 and len(of_line_item(admin, "print", item)) == 6


def test_pieces_come_exactly_once_after_production_was_down(system, admin):
    """Production is away when the line item is confirmed (no workflow: confirming asks production nothing)."""
    item = line_item(admin, 4)
    system.stop_service("production")
    try:
        assert admin.put(item, json={"status": "confirmed"}).status_code == 204
        assert admin.get(item).json()["status"] == "confirmed"
        assert of_line_item(admin, "piece", item) == []
    finally:
        system.start_service("production")
    pieces = settled_count(admin, "piece", item, 4)
    assert sorted(p["copy"] for p in pieces) == [1, 2, 3, 4]
    assert of_line_item(admin, "print", item) == []  # no workflow: no steps
    system.stop_service("production")  # and once more: a restart replays nothing
    system.start_service("production")
    with system.rpc() as rpc:
        assert rpc.production.max_position() >= 0
    assert len(of_line_item(admin, "piece", item)) == 4


def test_quantity_change_after_confirm_replans_pieces(admin, shop):
    """orders.md §1.3 LineItemQuantityChanged: more pieces planned; fewer cancels unstarted copies, and is refused
    (the reference's 400) below the pieces already in runs."""
    item = line_item(admin, 2, shop.workflow())
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(admin, "print", item, 6)
    assert admin.put(item, json={"quantity": 3}).status_code == 204
    pieces = settled_count(admin, "piece", item, 3)
    assert sorted(p["copy"] for p in pieces) == [1, 2, 3] and {p["status"] for p in pieces} == {"confirmed"}
    prints = settled_count(admin, "print", item, 9)
    printing = [p["uri"] for p in prints if p["process_step_position"] == 0]
    run = admin.post("/run/", json={"prints": printing})
    assert run.status_code == 201, run.text
    eventually(lambda: {p["status"] for p in of_line_item(admin, "piece", item)} == {"queued-for-printing"})
    refused = admin.put(item, json={"quantity": 2})
    assert error(refused, 400) == orders_domain.QUANTITY_OUT_OF_RANGE
    assert refused.json()["errors"][0]["field"] == "quantity" and admin.get(item).json()["quantity"] == 3
    assert admin.delete(run.headers["Location"]).status_code == 204
    eventually(lambda: {p["status"] for p in of_line_item(admin, "piece", item)} == {"confirmed"})
    assert admin.put(item, json={"quantity": 2}).status_code == 204
    eventually(lambda: sorted((p["copy"], p["status"]) for p in of_line_item(admin, "piece", item)) == [
        (1, "confirmed"), (2, "confirmed"), (3, "cancelled")], timeout=30)
    eventually(lambda: sorted(p["status"] for p in of_line_item(admin, "print", item)) == [
        "cancelled"] * 3 + ["created"] * 6, timeout=30)
    assert error(admin.put(item, json={"quantity": 0}), 400) == orders_domain.QUANTITY_OUT_OF_RANGE
