"""Line-item status moves through HTTP (orders.md §2.1): the system's own moves (new → calculating_estimates →
pending as estimates are computed), the client's moves up to confirmed, production's after it (printing,
post-processing, shipping, complete as the line item's runs progress: F3), a sample of refused ones, each checked in
the event log; and the order's own status accepts only the manual values of §2.3."""
import uuid

import pytest

from services.orders.status import NOT_ALLOWED
from tests.e2e.test_production_http import Shop, created, settled_count, unique
from tests.kit.plugin import eventually
from tests.unit.test_order_status import AGGREGATION_TABLE

pytestmark = pytest.mark.e2e

SYSTEM_MOVES = ["new", "calculating_estimates", "pending"]  # made by the estimate job, nobody asks for them
CLIENT_MOVES = ["in-preparation", "pending", "confirmed"]
PRODUCTION_MOVES = ["printing", "post-processing", "shipping", "complete"]  # made by the line item's runs (F3)
HAPPY_PATH = CLIENT_MOVES + PRODUCTION_MOVES


def status_of(api, uri):
    return api.get(uri).json()["status"]


def settled(api, line_item, status="pending"):
    """Wait for the system's moves to bring a new line item to `status`."""
    eventually(lambda: status_of(api, line_item) == status, timeout=30)
    return line_item


def make_line_item(api, settle=True, workflow=None, order=None):
    order = order or api.post("/order/", json={"name": "status walk"}).headers["Location"]
    product = api.post("/product/", json={"order": order, "no_model_upload": True})
    assert product.status_code == 201, product.text
    payload = {"product": product.headers["Location"], "quantity": 2, "type": "product"}
    if workflow:
        payload["workflow"] = workflow
    line_item = api.post("/line-item/", json=payload)
    assert line_item.status_code == 201, line_item.text
    return order, settled(api, line_item.headers["Location"]) if settle else line_item.headers["Location"]


def waiting_for_model(api, order=None):
    """A line item whose model is still to come (its product does not say no_model_upload): it stays new."""
    order = order or api.post("/order/", json={"name": "model to come"}).headers["Location"]
    product = api.post("/product/", json={"order": order}).headers["Location"]
    return order, api.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"]


def waiting_for_analysis(api, order):
    """A line item whose model is not analysed yet (no bytes uploaded): calculating_estimates until it is."""
    model = api.post("/model/", json={"name": "pending.stl", "type": "stl"}).headers["Location"]
    product = api.post("/product/", json={"order": order}).headers["Location"]
    item = api.post("/line-item/", json={"product": product, "model": model, "quantity": 1}).headers["Location"]
    return settled(api, item, "calculating_estimates")


def flat_views(api, order, line_item):
    """The flat order and flat line item of a line item's order, as exports read them."""
    def uuid_of(uri):
        return uri.rstrip("/").rsplit("/", 1)[1]
    return (api.get(f"/flat-order/{uuid_of(order)}/").json(),
            api.get(f"/flat-line-item/{uuid_of(line_item)}/").json())


@pytest.fixture(scope="module")
def shop(admin):
    return Shop(admin)


def runs_of(api, shop, line_item, steps=3, quantity=2):
    """A run per step of the line item's prints, each on a workstation of its own (a printer prints one build at a
    time, and other tests' runs share the shop)."""
    prints = settled_count(api, "print", line_item, quantity * steps)
    printer = created(api, "/printer/", {"name": unique("Fuse"), "printer_type": shop.printer_type,
                                         "location": shop.location})
    stations = [{"printer": printer}, {"post_processor": shop.post_processor}, {"shipping": shop.shipping}]
    return [created(api, "/run/", {"prints": [p["uri"] for p in prints if p["process_step_position"] == position],
                                   **stations[position]}) for position in range(steps)]


def run_moves(api, run, *statuses):
    for status in statuses:
        response = api.put(run, json={"status": status})
        assert response.status_code == 204, (run, status, response.text)
        eventually(lambda: api.get(run).json()["status"] == status, timeout=30)


def test_every_move_of_the_happy_path_and_the_event_log(admin, shop):
    order, line_item = make_line_item(admin, workflow=shop.workflow())
    assert admin.get(line_item).json()["status"] == "pending"  # by itself: nothing to estimate without a model

    def follows(status):
        eventually(lambda: admin.get(line_item).json()["status"] == status, timeout=30)
        flat_order, flat_item = eventually(lambda: (lambda views: views[1]["status"] == status and views)(
            flat_views(admin, order, line_item)), timeout=30)  # the exports follow every step
        assert flat_order["status"] == admin.get(order).json()["status"]
        assert flat_order["prints_quantity"] == 2 and flat_item["prints_quantity"] == 2

    for status in CLIENT_MOVES:
        response = admin.put(line_item, json={"status": status})
        assert response.status_code == 204, (status, response.text)
        follows(status)
    printing, sifting, shipping = runs_of(admin, shop, line_item)
    run_moves(admin, printing, "in-progress")
    follows("printing")
    run_moves(admin, printing, "complete")
    follows("post-processing")
    run_moves(admin, sifting, "in-progress", "complete")
    follows("shipping")
    run_moves(admin, shipping, "in-progress", "complete")
    follows("complete")
    rows = admin.get(f"/event/?filter[reference]={line_item}&filter[key]=status").json()["resources"]
    assert [r["current_value"] for r in rows] == [*SYSTEM_MOVES, *HAPPY_PATH]
    assert [r["previous_value"] for r in rows[1:]] == [*SYSTEM_MOVES, *HAPPY_PATH][:-1]


def test_a_line_item_waiting_for_its_model_stays_new_and_cannot_be_confirmed(admin):
    order, line_item = waiting_for_model(admin)
    analysing = waiting_for_analysis(admin, order)
    for item, status in ((line_item, "new"), (analysing, "calculating_estimates")):
        response = admin.put(item, json={"status": "confirmed"})
        assert response.status_code == 400 and response.json()["errors"][0]["title"] == NOT_ALLOWED
        assert status_of(admin, item) == status


@pytest.mark.parametrize("path, refused", [
    ([], "complete"),
    ([], "new"),
    ([], "printing"),
    (["confirmed"], "pending"),
    (["cancelled"], "new"),
    (["error"], "new"),
])
def test_refused_moves_are_400_and_change_nothing(admin, path, refused):
    _, line_item = make_line_item(admin)
    for status in path:
        assert admin.put(line_item, json={"status": status}).status_code == 204
    before = admin.get(line_item).json()
    order = before["order"]
    views_before = flat_views(admin, order, line_item)
    response = admin.put(line_item, json={"status": refused, "quantity": 9})
    assert response.status_code == 400
    assert response.json()["errors"][0] == {"code": "invalid-payload", "title": NOT_ALLOWED, "field": "status"}
    assert admin.get(line_item).json() == before
    assert flat_views(admin, order, line_item) == views_before  # nothing reached the exports either


def test_cancel_and_error_from_any_working_state(admin):
    for path in ([], ["confirmed", "printing"]):
        _, line_item = make_line_item(admin)
        for status in path + ["error", "pending" if not path else "printing", "cancelled"]:
            assert admin.put(line_item, json={"status": status}).status_code == 204, status


def test_orders_accept_only_manual_statuses(admin):
    order, _ = make_line_item(admin)
    response = admin.put(order, json={"status": "printing"})
    assert response.status_code == 400 and response.json()["errors"][0]["title"] == NOT_ALLOWED
    created = admin.post("/order/", json={"name": "born confirmed?", "status": "confirmed"})
    assert created.status_code == 400 and created.json()["errors"][0]["field"] == "status"


def test_order_status_follows_its_line_items(admin, shop):
    order = admin.post("/order/", json={"name": "aggregate"}).headers["Location"]
    product = admin.post("/product/", json={"order": order, "no_model_upload": True}).headers["Location"]
    print_only = shop.workflow(steps=shop.steps[:1])
    first, second = (admin.post("/line-item/", json={"product": product, "quantity": 1,
                                                     "workflow": print_only}).headers["Location"]
                     for _ in range(2))
    body = admin.get(order).json()
    assert body["line_items"] == [first, second]
    assert admin.get(first).json()["order"] == order

    def move(item, *statuses):
        for status in statuses:
            assert admin.put(item, json={"status": status}).status_code == 204, status

    def status():
        return admin.get(order).json()["status"]

    def becomes(expected):
        eventually(lambda: status() == expected, timeout=30)

    settled(admin, first)
    settled(admin, second)
    assert status() == "pending"  # all alike, by the system's moves
    move(first, "confirmed")
    assert status() == "pending"
    move(second, "confirmed")
    assert status() == "confirmed"
    (first_run,), (second_run,) = (runs_of(admin, shop, item, steps=1, quantity=1) for item in (first, second))
    run_moves(admin, first_run, "in-progress")  # production moves the line items (F3), the order follows
    becomes("processing")  # mixed production stages
    run_moves(admin, second_run, "in-progress")
    becomes("printing")
    run_moves(admin, second_run, "complete")
    becomes("processing")
    move(first, "error")  # a client's (or a failure's) move, still by hand
    assert status() == "complete"  # complete plus errors only
    history = [r["current_value"] for r in
               admin.get(f"/event/?filter[reference]={order}&filter[key]=status").json()["resources"]]
    assert history[0] == "new" and history[-6:] == [
        "pending", "confirmed", "processing", "printing", "processing", "complete"]


def test_manual_cancel_cascades_and_deleted_line_items_leave_the_order(admin):
    order = admin.post("/order/", json={"name": "cascade"}).headers["Location"]
    product = admin.post("/product/", json={"order": order}).headers["Location"]  # models to come: they stay new
    first, second = (admin.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"]
                     for _ in range(2))
    assert admin.delete(second).status_code == 204
    assert admin.get(order).json()["line_items"] == [first]
    refused = admin.put(order, json={"status": "confirmed"})  # a new line item cannot jump to confirmed
    assert refused.status_code == 400 and admin.get(first).json()["status"] == "new"
    assert admin.put(order, json={"status": "cancelled"}).status_code == 204
    assert admin.get(first).json()["status"] == "cancelled"
    assert admin.get(order).json()["status"] == "cancelled"


def test_template_names_are_set_once_and_unique(admin):
    name = f"bracket template {uuid.uuid4().hex[:6]}"
    template = admin.post("/order/", json={"name": "t", "template_name": name})
    assert template.status_code == 201
    assert admin.get(template.headers["Location"]).json()["is_template"] is True
    duplicate = admin.post("/order/", json={"name": "t2", "template_name": name.upper()})
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"][0]["title"] == "The requested template name already exists."
    other = admin.post("/order/", json={"name": "t3"}).headers["Location"]
    assert admin.put(other, json={"template_name": name}).status_code == 400
    assert admin.put(other, json={"template_name": name + " b"}).status_code == 204
    renamed = admin.put(other, json={"template_name": "something else"})
    assert renamed.status_code == 400 and renamed.json()["errors"][0]["field"] == "template_name"


def test_assignments_follow_the_order_owner(admin, system):
    me = admin.get("/sessions/").json()["user"]
    other = admin.post("/users/", json={"username": f"owner-{uuid.uuid4().hex[:6]}@example.com"})
    assert other.status_code == 201, other.text
    other = other.headers["Location"]
    order = admin.post("/order/", json={"name": "owned", "order_owner": me}).headers["Location"]
    order_uuid = order.rstrip("/").rsplit("/", 1)[1]

    def assignments():
        return admin.get(f"/assignment/?filter[related_uuid]={order_uuid}").json()["resources"]

    [first] = assignments()
    assert (first["assignee_user"], first["is_active"], first["related_uri"], first["related_table_name"]) == (
        me, True, order, "order")
    assert admin.post("/assignment/", json={}).status_code == 405

    assert admin.put(order, json={"order_owner": other}).status_code == 204
    [second] = assignments()
    assert second["assignee_user"] == other and second["uri"] != first["uri"]
    assert admin.get(first["uri"]).status_code == 404

    assert admin.put(order, json={"status": "cancelled"}).status_code == 204
    [done] = assignments()
    assert done["is_active"] is False and done["related_object_status"] == "cancelled"
    assert admin.delete(order).status_code == 204
    assert assignments() == []


def test_flat_order_follows_the_order(admin):
    me = admin.get("/sessions/").json()
    order = admin.post("/order/", json={"name": "flat", "order_owner": me["user"], "customer_name": "Ada",
                                        "shipping": {"name": "Ada L.", "address": "1 Loop Rd"}}).headers["Location"]
    order_uuid = order.rstrip("/").rsplit("/", 1)[1]
    flat_uri = f"{admin.base_url}/flat-order/{order_uuid}/"
    flat = admin.get(flat_uri).json()
    assert (flat["name"], flat["status"], flat["customer_name"], flat["owner_email"], flat["owner_name"]) == (
        "flat", "new", "Ada", me["username"], me["name"])
    assert (flat["shipping_name"], flat["shipping_address"], flat["line_items_quantity"]) == ("Ada L.", "1 Loop Rd", 0)
    assert flat["customer_id"] == order_uuid[:8] and flat["confirmed_date"] is None

    product = admin.post("/product/", json={"order": order, "no_model_upload": True}).headers["Location"]
    item = settled(admin, admin.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"])
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    flat = admin.get(flat_uri).json()
    assert flat["status"] == "confirmed" and flat["confirmed_date"] and flat["line_items_quantity"] == 1
    listed = admin.get(f"/flat-order/?filter[uuid]={order_uuid}").json()
    assert listed["total_count"] == 1 and listed["resources"][0]["uri"] == flat_uri
    assert admin.delete(order).status_code == 204
    assert admin.get(flat_uri).status_code == 404


def test_flat_order_follows_its_owners_rename(admin):
    bureau = admin.get("/sessions/").json()["bureau"]
    name = f"owner-{uuid.uuid4().hex[:6]}@example.com"
    owner = admin.post("/users/", json={"username": name, "email": name, "name": "Grace", "bureau": bureau,
                                        "password": "pw-owner-1"}).headers["Location"]
    order = admin.post("/order/", json={"name": "renamed owner", "order_owner": owner}).headers["Location"]
    flat_uri = "/flat-order/" + order.rstrip("/").rsplit("/", 1)[1] + "/"
    assert admin.get(flat_uri).json()["owner_name"] == "Grace"
    assert admin.put(owner, json={"name": "Grace Hopper"}).status_code == 204
    assert admin.get(flat_uri).json()["owner_name"] == "Grace Hopper"


def test_clone_copies_an_order_in_the_background(admin):
    source = admin.post("/order/", json={"name": "original", "template_name": f"tpl {uuid.uuid4().hex[:6]}",
                                         "customer_name": "Ada", "priority": 80}).headers["Location"]
    product = admin.post("/product/", json={"order": source, "no_model_upload": True}).headers["Location"]
    items = [settled(admin, admin.post("/line-item/", json={"product": product, "quantity": q}).headers["Location"])
             for q in (2, 5)]

    response = admin.post(source + "clone/")
    assert response.status_code == 202, response.text
    clone = response.headers["Location"]
    assert clone != source

    def finished():
        body = admin.get(clone).json()
        return body if body["status"] != "cloning" else None

    body = eventually(finished)
    assert (body["name"], body["customer_name"], body["priority"]) == ("original", "Ada", 80)
    assert body["template_name"] is None and body["is_template"] is False  # a copy of a template is a real order
    assert len(body["line_items"]) == 2 and not set(body["line_items"]) & set(items)
    copies = [admin.get(i).json() for i in body["line_items"]]
    assert sorted(c["quantity"] for c in copies) == [2, 5]
    assert all(c["order"] == clone for c in copies)
    assert admin.get(source).json()["line_items"] == items  # the source is untouched
    for copy in body["line_items"]:  # copies start new and are estimated like any new line item
        rows = admin.get(f"/event/?filter[reference]={copy}&filter[key]=status").json()["resources"]
        assert rows[0]["current_value"] == "new"
        settled(admin, copy)
    eventually(lambda: status_of(admin, clone) == "pending", timeout=30)
    history = admin.get(f"/event/?filter[reference]={clone}&filter[key]=status").json()["resources"]
    assert [r["current_value"] for r in history][:2] == ["cloning", "new"]
    flat_order, _ = flat_views(admin, clone, copies[0]["uri"])
    assert (flat_order["status"], flat_order["line_items_quantity"], flat_order["prints_quantity"]) == (
        "pending", 2, 7)
    flat_items = [flat_views(admin, clone, c["uri"])[1] for c in copies]
    assert {f["order"] for f in flat_items} == {clone.rstrip("/").rsplit("/", 1)[1]}


def test_line_item_clone_joins_the_same_order(admin):
    order = admin.post("/order/", json={"name": "li clone"}).headers["Location"]
    product = admin.post("/product/", json={"order": order, "no_model_upload": True}).headers["Location"]
    item = admin.post("/line-item/", json={"product": product, "quantity": 3}).headers["Location"]
    response = admin.post(item + "clone/", json={"quantity": 7})
    assert response.status_code == 204, response.text
    copy = admin.get(response.headers["Location"]).json()
    assert copy["quantity"] == 7 and copy["order"] == order and copy["product"] != product
    assert admin.get(order).json()["line_items"] == [item, response.headers["Location"]]
    assert admin.post(f"{admin.base_url}/line-item/{uuid.uuid4()}/clone/").status_code == 404


def test_comments_and_comment_actions(admin, system):
    from tests.kit.plugin import login

    me = admin.get("/sessions/").json()["user"]
    helper_name = f"helper-{uuid.uuid4().hex[:6]}@example.com"
    helper = admin.post("/users/", json={"username": helper_name, "password": "pw"}).headers["Location"]
    order = admin.post("/order/", json={"name": "discussed"}).headers["Location"]
    order_uuid = order.rstrip("/").rsplit("/", 1)[1]
    posted = admin.post("/comment/", json={"related_table_name": "order", "related_uuid": order_uuid,
                                           "text": "please check the wall thickness",
                                           "comment_action": {"assignee_user": helper}})
    assert posted.status_code == 201, posted.text
    comment = posted.headers["Location"]
    assert admin.get(comment).json()["user"] == me

    [action] = admin.get(f"/comment-action/?filter[comment]={comment}").json()["resources"]
    assert (action["assignee_user"], action["status"], action["related_uri"], action["created_by"]) == (
        helper, "new", order, me)
    assert admin.post("/comment-action/", json={}).status_code == 405
    action_uuid = action["uri"].rstrip("/").rsplit("/", 1)[1]
    [assignment] = admin.get(f"/assignment/?filter[related_uuid]={action_uuid}").json()["resources"]
    assert assignment["assignee_user"] == helper and assignment["is_active"] is True

    assert admin.put(action["uri"], json={"status": "complete"}).status_code == 403  # not the assignee
    assignee = login(system.base_url, helper_name, "pw")
    assert assignee.put(comment, json={"text": "edited by someone else"}).status_code == 403
    assert assignee.put(action["uri"], json={"status": "complete"}).status_code == 204
    done = admin.get(action["uri"]).json()
    assert done["status"] == "complete" and done["completed"]
    assert admin.get(assignment["uri"]).json()["is_active"] is False
    assert assignee.put(action["uri"], json={"status": "new"}).status_code == 400

    assert admin.put(comment, json={"text": "edited"}).status_code == 204
    assert admin.delete(comment).status_code == 204


def test_older_client_flow_line_items_first_then_the_order(admin):
    """The flow public clients still use: POST line items (model, bureau, materials, quantity), then an order that
    lists them with currency and a shipping object."""
    model = admin.post("/model/", json={"name": "bracket.stl", "type": "stl"})
    assert model.status_code == 201, model.text
    items = []
    for quantity in (3, 4):
        response = admin.post("/line-item/", data={"model": model.headers["Location"], "quantity": str(quantity)})
        assert response.status_code == 201, response.text
        items.append(response.headers["Location"])
    admin.put(items[0], json={"materials": {"base": None, "support": None}})
    order = admin.post("/order/", json={"name": "legacy", "line_items": items, "currency": "USD",
                                        "shipping": {"name": "Ada", "address": "1 Loop Rd", "tracking": "1Z"}})
    assert order.status_code == 201, order.text
    location = order.headers["Location"]
    body = admin.get(location).json()
    assert body["line_items"] == items and body["currency"] == "USD"
    # the model has no bytes yet: its line items wait for its analysis, and so does the order
    eventually(lambda: admin.get(location).json()["status"] == "calculating_estimates", timeout=30)
    for item in items:
        line_item = admin.get(item).json()
        assert line_item["order"] == location and line_item["product"]
        assert admin.get(line_item["product"]).json()["order"] == location
        flat_order, flat_item = flat_views(admin, location, item)
        assert flat_item["order"] == location.rstrip("/").rsplit("/", 1)[1] and flat_item["currency"] == "USD"
        assert flat_item["model"] == model.headers["Location"] and flat_item["model_name"] == "bracket.stl"
    assert (flat_order["line_items_quantity"], flat_order["prints_quantity"]) == (2, 7)
    assert flat_order["shipping_name"] == "Ada"
    assert admin.post("/line-item/", json={"order": location, "quantity": 1}).status_code == 400  # needs a product


# How a line item reaches each status from `pending` (where the system's moves bring it) along the allowed moves
# (orders.md §2.1); `new` and `calculating_estimates` are line items still waiting for their model or its analysis.
_PATH_TO = {
    "pending": [], "in-preparation": ["in-preparation"], "confirmed": ["confirmed"],
    "printing": ["confirmed", "printing"],
    "post-processing": ["confirmed", "printing", "post-processing"],
    "shipping": ["confirmed", "printing", "shipping"],
    "complete": ["confirmed", "printing", "complete"],
    "error": ["error"], "cancelled": ["cancelled"],
}


@pytest.mark.parametrize("statuses, expected", AGGREGATION_TABLE, ids=lambda v: "+".join(v) if isinstance(v, list)
                         else v)
def test_the_order_status_table_over_http(admin, statuses, expected):
    """Every row of the §2.3 table, reached by real moves; the order and its flat view agree."""
    order = admin.post("/order/", json={"name": "table"}).headers["Location"]
    product = admin.post("/product/", json={"order": order, "no_model_upload": True}).headers["Location"]
    for target in statuses:
        if target == "new":
            waiting_for_model(admin, order)
            continue
        if target == "calculating_estimates":
            waiting_for_analysis(admin, order)
            continue
        item = settled(admin, admin.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"])
        for status in _PATH_TO[target]:
            assert admin.put(item, json={"status": status}).status_code == 204, (target, status)
    eventually(lambda: admin.get(order).json()["status"] == expected, timeout=30)
    flat = admin.get("/flat-order/" + order.rstrip("/").rsplit("/", 1)[1] + "/").json()
    assert flat["status"] == expected and flat["line_items_quantity"] == len(statuses)
