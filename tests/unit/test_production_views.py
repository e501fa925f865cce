"""The production read views (gateway.production_views) are functions of the documents: the same feeds applied in
another interleaving (as a rebuild from zero applies them: one service's whole feed, then the next) give the same
read side. The figures are checked against values computed here from the feed itself."""
from uuid import uuid4

import pytest
from sqlalchemy import select

from gateway import listing
from gateway.readstore import ReadStore
from gateway.tables import documents
from shared import catalogue

BUREAU = "/bureau/11111111-1111-1111-1111-111111111111/"
OTHER = "/bureau/33333333-3333-3333-3333-333333333333/"


class Feeds:
    """Public events of two services, each numbered in its own feed, with one clock across both (the live order)."""

    def __init__(self):
        self.events, self.clock = [], 0

    def add(self, application, resource, uuid, kind, fields, bureau=BUREAU):
        self.clock += 1
        position = sum(1 for e in self.events if e["application"] == application) + 1
        self.events.append({"position": position, "application": application, "resource": resource, "uuid": uuid,
                            "version": 1, "event": f"{application}/{resource}/X", "user": None, "kind": kind,
                            "bureau": bureau, "timestamp": f"2026-11-30T08:{self.clock // 60:02d}:{self.clock % 60:02d}"
                                                           "+00:00", "fields": fields, "names": []})
        return f"/{resource}/{uuid}/"


def _shop_floor():
    f = Feeds()
    ptype = f.add("production", "printer-type", str(uuid4()), "created", {"name": "Fuse 1", "running_cost_per_hour": 3})
    printer = f.add("production", "printer", str(uuid4()), "created", {"name": "Fuse #1", "printer_type": ptype,
                                                                      "location": None, "queue": []})
    step = f.add("production", "process-step", str(uuid4()), "created", {"workstation_type_uri": ptype})
    workflow = f.add("production", "workflow", str(uuid4()), "created", {"name": "Print", "process_steps": [step]})
    order = f.add("orders", "order", str(uuid4()), "created", {"name": "O-1", "customer_id": "C-1"})
    items = []
    for name, quantity, base in (("bracket", 2, 6.0), ("hinge", 1, 3.0)):
        items.append(f.add("orders", "line-item", str(uuid4()), "created", {
            "name": name, "order": order, "quantity": quantity, "workflow": workflow, "status": "confirmed",
            "materials": {"base": "/material/44444444-4444-4444-4444-444444444444/"},
            "estimates": {"materials": {"base": base, "support": None}, "quantity": quantity}}))
    prints, pieces = [], []
    for item, quantity in zip(items, (2, 1)):
        for copy in range(1, quantity + 1):
            piece = f.add("production", "piece", str(uuid4()), "created", {
                "name": f"piece {copy}", "line_item": item, "order": order, "workflow": workflow, "status": "confirmed",
                "current_step_position": 0, "current_print": None})
            each = f.add("production", "print", str(uuid4()), "created", {
                "piece": piece, "line_item": item, "order": order, "process_step": step, "process_step_position": 0,
                "workstation_type_uri": ptype, "operation": "printing", "status": "created", "run": None})
            f.add("production", "piece", piece.split("/")[2], "updated", {"current_print": each})
            pieces.append(piece)
            prints.append(each)
    run_id = str(uuid4())
    run = f"/run/{run_id}/"
    for each in prints:
        f.add("production", "print", each.split("/")[2], "updated", {"run": run, "status": "queued"})
    f.add("production", "run", run_id, "created", {"name": "R1", "status": "queued", "operation": "printing",
                                                    "prints": prints, "printer": printer, "orders": [order],
                                                    "workstation_name": "Fuse #1"})
    f.add("production", "run", run_id, "updated", {"status": "in-progress"})
    actuals = f.add("production", "run-actuals", str(uuid4()), "created", {
        "run": run, "start_in_progress_time": "2026-11-30T08:00:00+00:00", "end_in_progress_time": None,
        "total_cost": None})
    f.add("orders", "line-item", items[0].split("/")[2], "updated", {"name": "bracket v2"})
    f.add("production", "run", run_id, "updated", {"status": "complete"})
    for each, piece in zip(prints, pieces):
        f.add("production", "print", each.split("/")[2], "updated", {"status": "complete"})
        f.add("production", "piece", piece.split("/")[2], "updated", {"status": "complete"})
    f.add("production", "run-actuals", actuals.split("/")[2], "updated", {
        "end_in_progress_time": "2026-11-30T09:30:00+00:00", "total_cost": 4.5})
    f.add("materials", "run-actuals-additive", str(uuid4()), "created", {"run_actual": actuals,
                                                                         "base_material_used": 8.25})
    f.add("orders", "order", order.split("/")[2], "updated", {"name": "O-1 renamed"})
    f.add("orders", "line-item", items[0].split("/")[2], "updated", {"status": "complete"})  # nothing shown
    rework = f.add("production", "workflow", str(uuid4()), "created", {"name": "Rework", "process_steps": [step]})
    f.add("production", "piece", pieces[1].split("/")[2], "updated", {"workflow": rework})  # a custom workflow
    f.add("production", "printer", printer.split("/")[2], "created", {"name": "theirs"}, bureau=OTHER)
    return f.events, dict(order=order, items=items, pieces=pieces, prints=prints, run=run, printer=printer)


def _views(store):
    with store.engine.connect() as conn:
        return sorted((r.path, r.resource, r.bureau, repr(r.doc), r.deleted) for r in conn.execute(select(documents)))


def _apply(store, events, by_service):
    if by_service:  # a rebuild: each feed whole, one after the other, in the given order
        for application in by_service:
            feed = [e for e in events if e["application"] == application]
            store.apply_feed(application, feed, feed[-1]["position"])
    else:  # live: as they happened, one event at a time
        for event in events:
            store.apply_feed(event["application"], [event], event["position"])


def _listed(store, resource, query, scope=None):
    spec = catalogue.resource(resource)
    return store.documents(spec, scope, listing.parse(spec, query)).rows


@pytest.fixture
def stores(tmp_path):
    events, names = _shop_floor()
    made = {}
    orders = {"live": None, "rebuilt": ("orders", "production", "materials"),  # as the projector follows them
              "rebuilt, production first": ("materials", "production", "orders")}
    for kind, by_service in orders.items():
        made[kind] = ReadStore("sqlite:///" + str(tmp_path / f"{kind}.sqlite"))
        made[kind].create_tables()
        _apply(made[kind], events, by_service)
    yield made, names
    for store in made.values():
        store.dispose()


def test_views_rebuilt_in_another_order_equal_the_live_ones(stores):
    made, _ = stores
    live = _views(made["live"])
    assert sum(1 for row in live if row[1] in ("flat-piece", "pieces-by-run", "piece-actuals")) == 9
    assert _views(made["rebuilt"]) == live
    assert _views(made["rebuilt, production first"]) == live


def test_view_values(stores):
    made, n = stores
    store = made["live"]
    run_uuid = n["run"].split("/")[2]
    material = store.document(f"/run-material/{run_uuid}/", BUREAU)
    assert material["estimate_base_material_used"] == pytest.approx(6.0 / 2 * 2 + 3.0)  # each print's share
    assert material["actual_base_material_used"] == 8.25
    rows = [r.doc for r in _listed(store, "pieces-by-run", f"filter[run]={n['run']}")]
    assert sorted(r["piece"] for r in rows) == sorted(n["pieces"])
    assert {r["line_item_name"] for r in rows} == {"bracket v2", "hinge"}
    assert {r["order_name"] for r in rows} == {"O-1 renamed"} and {r["piece_status"] for r in rows} == {"complete"}
    assert {r["piece"]: r["reworked"] for r in rows} == {n["pieces"][0]: False, n["pieces"][1]: True,
                                                          n["pieces"][2]: False}
    by_item = {r.doc["line_item"]: r.doc for r in _listed(store, "line-items-by-run", f"filter[run]={n['run']}")}
    assert {k: (v["total_piece_quantity"], v["original_piece_quantity"]) for k, v in by_item.items()} == {
        n["items"][0]: (2, 1), n["items"][1]: (1, 1)}
    flat = store.document("/flat-piece/" + n["pieces"][0].split("/")[2] + "/", BUREAU)
    assert (flat["current_process_step_run_name"], flat["current_process_step_status"], flat["print_run_uuid"],
            flat["order_customer_id"], flat["process_step_workstation_type_name"], flat["total_process_steps"]) == (
        "R1", "complete", run_uuid, "C-1", "Fuse 1", 1)
    assert flat["past_process_step_completion_date"] == "2026-11-30T09:30:00+00:00"
    actuals = [r.doc for r in _listed(store, "piece-actuals", f"filter[piece]={n['pieces'][0]}")]
    assert actuals[0]["total_cost"] == pytest.approx(4.5 / 3) and actuals[0]["per_step_details"][0]["duration"] == 5400
    line = [r.doc for r in _listed(store, "line-item-actuals", f"filter[line_item]={n['items'][0]}")][0]
    # the reworked piece is left out of the math
    assert line["total_cost"] == pytest.approx(4.5 / 3) and line["end_in_progress_time"] and line["has_custom_actuals"]
    assert line["per_step_details"][0]["per_piece_average"]["cost"] == pytest.approx(1.5)
    assert line["per_step_details"][0]["total"]["pieces"] == 1
    stations = _listed(store, "workstation", "", BUREAU)
    assert [r.doc["name"] for r in stations] == ["Fuse #1"]
    assert [r.path for r in _listed(store, "order", "filter[run_status]=complete", BUREAU)] == [n["order"]]
    assert _listed(store, "order", "filter[run_status]=queued,in-progress", BUREAU) == []
    assert _listed(store, "order", "filter[run_status]=complete", OTHER) == []
