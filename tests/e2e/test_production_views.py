"""The production read views over HTTP (production.md §2.7, §3.3–3.6, §4.5, orders.md §1.18 and the order's
`run_status` filter), fed by a real shop floor: a line item with a model is confirmed, its printing run is queued,
started and completed. Every figure is computed here from the source resources the API shows (runs, prints,
pieces, run actuals, line-item estimates), never taken from the views themselves. The views are read-only (405) and
another bureau neither lists nor reads them (404)."""
import pytest

from services.orders.domain import LINE_ITEM_IN_PRODUCTION, ORDER_IN_PRODUCTION
from tests.e2e.test_line_item_models import upload
from tests.e2e.test_production_http import Shop, created, error, settled_count, unique
from tests.e2e.test_shop_floor import Floor
from tests.kit.meshes import box_stl
from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e
VIEWS = ("flat-piece", "pieces-by-run", "line-items-by-run", "run-material", "workstation", "piece-actuals",
         "line-item-actuals")


def uuid_of(uri):
    return uri.rstrip("/").rsplit("/", 1)[1]


def listed(api, view, query=""):
    response = api.get(f"/{view}/?per_page=500{query}")
    assert response.status_code == 200, response.text
    return response.json()["resources"]


@pytest.fixture(scope="module")
def floor(admin):
    return Floor(admin, Shop(admin))


@pytest.fixture(scope="module")
def other(admin):
    return make_tenant(admin, login, "views")


@pytest.fixture(scope="module")
def job(admin, floor, tmp_path_factory):
    """An order whose modelled line item (2 pieces) is confirmed, with its printing run queued."""
    shop = floor.shop
    model = upload(admin, box_stl(tmp_path_factory.mktemp("views") / "part.stl", dims=(10, 20, 30)))
    order = created(admin, "/order/", {"name": unique("views"), "customer_id": unique("C")})
    product = created(admin, "/product/", {"order": order})
    item = created(admin, "/line-item/", {"product": product, "model": model, "quantity": 2, "workflow": floor.workflow,
                                          "materials": {"base": shop.material}, "name": unique("bracket")})
    floor.becomes(item, "pending", timeout=60)
    eventually(lambda: (admin.get(item).json().get("estimates") or {}).get("materials"), timeout=60)
    assert admin.put(order, json={"status": "confirmed"}).status_code == 204
    floor.becomes(item, "confirmed")
    pieces = sorted(settled_count(admin, "piece", item, 2), key=lambda p: p["copy"])
    settled_count(admin, "print", item, 6)
    run = floor.run(item, 0, printer=shop.printer, name=unique("build"))
    floor.all_become("piece", item, "queued-for-printing")
    return {"order": order, "item": item, "pieces": [p["uri"] for p in pieces], "run": run}


def test_workstations_are_the_union_of_printers_post_processors_and_shipping(admin, floor, other):
    shop = floor.shop
    rows = {r["uri"]: r for r in listed(admin, "workstation")}
    for uri, kind in ((shop.printer, "printer"), (shop.post_processor, "post-processor"), (shop.shipping, "shipping")):
        source = admin.get(uri).json()
        row = rows[uri]  # the workstation's uri is its printer's, post-processor's or shipping station's
        assert (row["workstation_type"], row["name"], row["description"]) == (
            kind, source["name"], source.get("description"))
        assert row["location"] == source.get("location")
        one = admin.get(f"/workstation/{uuid_of(uri)}/")
        assert one.status_code == 200 and one.json() == row
        assert other.manager.get(f"/workstation/{uuid_of(uri)}/").status_code == 404
        assert [r["name"] for r in listed(admin, "workstation", f"&filter[uri]={uri}")] == [source["name"]]
    assert rows[shop.post_processor]["in_progress_max"] == admin.get(shop.post_processor_type).json()["in_progress_max"]
    assert not set(rows) & {r["uri"] for r in listed(other.manager, "workstation")}


def test_run_views_while_queued(admin, floor, job, other):
    item, run = admin.get(job["item"]).json(), admin.get(job["run"]).json()
    order = admin.get(job["order"]).json()
    workflow = admin.get(floor.workflow).json()
    pieces = {uri: admin.get(uri).json() for uri in job["pieces"]}

    rows = listed(admin, "pieces-by-run", f"&filter[run]={job['run']}")
    assert sorted((r["piece"], r["piece_name"], r["piece_status"]) for r in rows) == sorted(
        (uri, p["name"], "queued-for-printing") for uri, p in pieces.items())
    assert {(r["line_item"], r["line_item_name"], r["order_name"], r["order_customer_id"], r["workflow_name"],
             r["reworked"]) for r in rows} == {(job["item"], item["name"], order["name"], order["customer_id"],
                                                workflow["name"], False)}

    by_item = listed(admin, "line-items-by-run", f"&filter[run]={job['run']}")
    assert [(r["line_item"], r["total_piece_quantity"], r["original_piece_quantity"]) for r in by_item] == [
        (job["item"], len(run["prints"]), len(run["prints"]))]

    material = admin.get(f"/run-material/{uuid_of(job['run'])}/").json()
    per_print = item["estimates"]["materials"]["base"] / item["estimates"]["quantity"]
    assert material["run"] == job["run"]
    assert material["estimate_base_material_used"] == pytest.approx(per_print * len(run["prints"]))
    assert material["actual_base_material_used"] is None  # nothing consumed yet
    assert [(m["type"], m["material"]) for m in material["materials"]] == [("base", floor.shop.material)]

    flat = admin.get(f"/flat-piece/{uuid_of(job['pieces'][0])}/").json()
    assert (flat["current_process_step_position"], flat["current_process_step_run_uuid"],
            flat["current_process_step_run_name"], flat["current_process_step_status"]) == (
        0, uuid_of(job["run"]), run["name"], "queued")
    assert (flat["current_process_step_workstation_name"], flat["process_step_workstation_type_name"]) == (
        run["workstation_name"], admin.get(floor.shop.printer_type).json()["name"])
    assert (flat["total_process_steps"], flat["print_run_uuid"], flat["line_item_name"], flat["order_uuid"],
            flat["order_customer_id"]) == (len(workflow["process_steps"]), uuid_of(job["run"]), item["name"],
                                           uuid_of(job["order"]), order["customer_id"])
    assert flat["first_run_start"] is None and flat["current_work_instruction_uuid"] is None

    # no actuals before the run starts
    assert listed(admin, "piece-actuals", f"&filter[piece]={job['pieces'][0]}") == []
    assert listed(admin, "line-item-actuals", f"&filter[line_item]={job['item']}") == []

    # another bureau sees none of it
    for view, uuid in (("flat-piece", uuid_of(job["pieces"][0])), ("pieces-by-run", uuid_of(rows[0]["uri"])),
                       ("line-items-by-run", uuid_of(by_item[0]["uri"])), ("run-material", uuid_of(job["run"]))):
        assert other.manager.get(f"/{view}/{uuid}/").status_code == 404
        assert admin.get(f"/{view}/{uuid}/").status_code == 200
    assert listed(other.manager, "pieces-by-run", f"&filter[run]={job['run']}") == []
    assert listed(other.manager, "flat-piece", f"&filter[uuid]={uuid_of(job['pieces'][0])}") == []


def test_the_order_filter_by_run_status_and_what_runs_hold(admin, floor, job, other):
    def orders_with(status, api=admin):
        return {r["uri"] for r in api.get(f"/order/?filter[run_status]={status}&per_page=500").json()["resources"]}

    eventually(lambda: job["order"] in orders_with("queued"))
    assert job["order"] not in orders_with("in-progress") | orders_with("complete")
    assert job["order"] in orders_with("error,queued")  # any of
    assert job["order"] not in orders_with("queued", other.manager)
    printer = admin.get(floor.shop.printer).json()
    assert job["run"] in printer["queue"] and job["run"] not in printer["in_progress"]
    # an order (or line item) with prints in a run is in production: not deleted
    assert error(admin.delete(job["order"]), 400) == ORDER_IN_PRODUCTION
    assert error(admin.delete(job["item"]), 400) == LINE_ITEM_IN_PRODUCTION
    assert admin.get(job["order"]).status_code == 200


def test_actuals_follow_the_run(admin, floor, job):
    floor.moved(job["run"], "in-progress")
    eventually(lambda: job["order"] in {r["uri"] for r in admin.get(
        "/order/?filter[run_status]=in-progress&per_page=500").json()["resources"]})
    printer = admin.get(floor.shop.printer).json()
    assert job["run"] in printer["in_progress"] and job["run"] not in printer["queue"]
    opened = eventually(lambda: listed(admin, "run-actuals", f"&filter[run]={job['run']}"))[0]
    started = eventually(lambda: listed(admin, "piece-actuals", f"&filter[piece]={job['pieces'][0]}"))[0]
    assert (started["start_in_progress_time"], started["end_in_progress_time"], started["total_cost"]) == (
        opened["start_in_progress_time"], None, None)
    flat = admin.get(f"/flat-piece/{uuid_of(job['pieces'][0])}/").json()
    # the piece's first run started when its run did (one change: the run's actuals opened at that moment)
    assert (flat["current_process_step_status"], flat["first_run_start"]) == (
        "in-progress", opened["start_in_progress_time"])

    floor.moved(job["run"], "complete")
    floor.all_become("piece", job["item"], "queued-for-post-processing")
    closed = eventually(lambda: [a for a in listed(admin, "run-actuals", f"&filter[run]={job['run']}")
                                 if a["end_in_progress_time"]])[0]
    run = admin.get(job["run"]).json()
    share = closed["total_cost"] / len(run["prints"])  # the rule: an equal share per piece in the run
    prints = {p["piece"]: p for p in admin.get(f"/print/?filter[run]={job['run']}&per_page=500").json()["resources"]}
    for uri in job["pieces"]:
        actuals = eventually(lambda: [a for a in listed(admin, "piece-actuals", f"&filter[piece]={uri}")
                                      if a["total_cost"] is not None])[0]
        assert actuals["total_cost"] == pytest.approx(share)
        assert actuals["start_in_progress_time"] == closed["start_in_progress_time"]
        assert actuals["end_in_progress_time"] is None  # its post-processing and shipping steps are still to come
        step = next(d for d in actuals["per_step_details"] if d["run"])
        assert (step["run"], step["process_step"], step["cost"]) == (job["run"], prints[uri]["process_step"],
                                                                     pytest.approx(share))
        assert (step["start_in_progress_time"], step["end_in_progress_time"]) == (
            closed["start_in_progress_time"], closed["end_in_progress_time"])
        assert len(actuals["per_step_details"]) == len(admin.get(floor.workflow).json()["process_steps"])
    line = listed(admin, "line-item-actuals", f"&filter[line_item]={job['item']}")[0]
    assert line["total_cost"] == pytest.approx(share * len(job["pieces"]))
    assert (line["start_in_progress_time"], line["end_in_progress_time"], line["has_custom_actuals"]) == (
        closed["start_in_progress_time"], None, False)
    first = line["per_step_details"][0]
    assert (first["total"]["pieces"], first["per_piece_average"]["cost"]) == (len(job["pieces"]), pytest.approx(share))

    piece = admin.get(job["pieces"][0]).json()
    flat = admin.get(f"/flat-piece/{uuid_of(job['pieces'][0])}/").json()
    next_print = admin.get(piece["current_print"]).json()
    assert (flat["current_process_step_position"], flat["current_process_step_run_uuid"]) == (
        piece["current_step_position"], uuid_of(next_print["run"]) if next_print["run"] else None)
    assert (flat["first_run_end"], flat["past_process_step_completion_date"]) == (
        closed["end_in_progress_time"], closed["end_in_progress_time"])
    assert job["order"] in {r["uri"] for r in admin.get(
        "/order/?filter[run_status]=complete&per_page=500").json()["resources"]}


@pytest.mark.parametrize("view", VIEWS)
def test_views_are_read_only(admin, job, view):
    some = listed(admin, view)
    assert some, view
    assert admin.post(f"/{view}/", json={}).status_code == 405
    one = some[0]["uri"] if view != "workstation" else f"/workstation/{uuid_of(some[0]['uri'])}/"
    one = one.replace(admin.base_url, "")
    assert admin.put(one, json={}).status_code == 405
    assert admin.delete(one).status_code == 405


def test_a_cancelled_run_lets_its_order_go(admin, floor):
    """The delete rule holds only while prints sit in a run: a cancelled run lets its prints go (production.md §1.1),
    and the order is then listed under its run's new status, not the old one, and can be deleted."""
    order = created(admin, "/order/", {"name": unique("let go")})
    product = created(admin, "/product/", {"order": order, "no_model_upload": True})
    item = created(admin, "/line-item/", {"product": product, "quantity": 1, "workflow": floor.workflow})
    floor.becomes(item, "pending", timeout=60)
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(admin, "print", item, 3)
    run = floor.run(item, 0)

    def orders_with(status):
        return {r["uri"] for r in admin.get(f"/order/?filter[run_status]={status}&per_page=500").json()["resources"]}

    assert order in orders_with("queued")
    assert error(admin.delete(order), 400) == ORDER_IN_PRODUCTION
    floor.moved(run, "cancelled")
    eventually(lambda: {p["run"] for p in floor.prints(item, 0)} == {None})
    assert order in orders_with("cancelled") and order not in orders_with("queued")
    assert listed(admin, "pieces-by-run", f"&filter[run]={run}") != []  # the run still names what it held
    assert admin.delete(order).status_code == 204
