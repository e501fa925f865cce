"""The read side never loses or doubles data: the projector catches up after downtime, a redelivered doorbell or
feed batch is applied once, and a projection rebuilt from zero equals the live one."""
import time
import uuid

import pytest
import requests
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import select

from gateway.readstore import ReadStore, read_store_url
from gateway.tables import credentials, documents
from shared import uris
from shared.service import NEWS_EVENT
from tests.e2e.test_production_http import Shop, created, settled_count, unique
from tests.e2e.test_shop_floor import Floor
from tests.kit.meshes import box_stl
from tests.kit.plugin import eventually, login

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def store(config):
    read_store = ReadStore(read_store_url(config))
    yield read_store
    read_store.dispose()


def snapshot(store):
    """Everything the read side holds, without storage artefacts (the audit log's ids, given in apply order): the
    audit log as its /event/ items, every column of each (uuid, position, values, …)."""
    audit = sorted(tuple(repr(v) for v in item.values()) for item in store.audit_items())
    with store.engine.connect() as conn:
        docs = sorted((r.path, r.resource, r.bureau, repr(r.doc), r.deleted)
                      for r in conn.execute(select(documents)))
        sessions = sorted(tuple(r) for r in conn.execute(select(credentials)))
    return docs, audit, sessions


def differences(rebuilt, live):
    """The rows that differ, for a failure message a person can read."""
    import ast

    lines = []
    live_docs = {row[0]: ast.literal_eval(row[3]) for row in live[0]}
    for row in sorted(set(rebuilt[0]) - set(live[0])):
        doc, before = ast.literal_eval(row[3]), live_docs.get(row[0], {})
        changed = {k: (before.get(k), doc.get(k)) for k in set(doc) | set(before) if doc.get(k) != before.get(k)}
        lines.append(f"{row[0]} live → rebuilt: {changed}")
    for name, new, old in zip(("documents", "audit", "credentials"), rebuilt, live):
        lines += [f"{name} only rebuilt: {row}" for row in sorted(set(new) - set(old))]
        lines += [f"{name} only live:    {row}" for row in sorted(set(old) - set(new))]
    return "\n".join(lines[:20])


def quiet_snapshot(store, seconds=0.5):
    """The read side once background work (analysis, snapshots, estimates, announcements, mail deliveries) has
    stopped writing: the same positions `seconds` apart, before and after the snapshot."""
    def quiet():
        before = store.positions()
        time.sleep(seconds)
        taken = snapshot(store)
        return (taken, before) if store.positions() == before else None
    return eventually(quiet, timeout=60)


def visible(admin, names):
    return admin.get(f"/order/?filter[name]={','.join(names)}").json()["total_count"]


def test_projector_catches_up_after_downtime(system, admin, store):
    bureau = uris.normalise(admin.get("/sessions/").json()["bureau"])
    system.stop_projector()
    tag = uuid.uuid4().hex[:8]
    names = [f"offline-{tag}-{i}" for i in range(15)]
    # Written by another service while the projector is down (no gateway involved, so no inline catch-up).
    with system.rpc() as rpc:
        results = [rpc.orders.create("order", {"name": name}, {"user": None, "bureau": bureau,
                                                                "command_id": str(uuid.uuid4())})
                   for name in names]
    assert store.position("orders") < results[-1]["position"]
    assert visible(admin, names) == 0

    system.start_projector()
    eventually(lambda: visible(admin, names) == len(names))
    assert store.position("orders") >= results[-1]["position"]
    # one creation row per non-empty field, per order: nothing doubled by the restart
    for result in results[:3]:
        rows = admin.get(f"/event/?filter[reference]={admin.base_url}{result['uri']}&filter[key]=name").json()
        assert rows["total_count"] == 1


def test_redelivered_news_and_batches_are_applied_once(system, admin, store):
    location = admin.post("/order/", json={"name": f"once-{uuid.uuid4().hex[:8]}"}).headers["Location"]
    assert admin.put(location, json={"priority": 7}).status_code == 204
    before, _positions = quiet_snapshot(store)  # the stack's start-up work (the machine catalogue) may still write

    # The doorbell rung again, several times, out of order.
    dispatch = event_dispatcher(system.config)
    projector = next(iter(system.projector.containers))
    # positions already applied (skipped without a pull) and one beyond the end (pulls, finds nothing new)
    for position in (5, 1, store.position("orders"), 2, store.position("orders") + 1000):
        with entrypoint_waiter(projector, "on_orders_news", timeout=15) as handled:
            dispatch("orders", NEWS_EVENT, {"application": "orders", "position": position})
        handled.get()  # re-raises if the handler failed
    # The whole feed delivered again from the start, straight into the store.
    with system.rpc() as rpc:
        feed = rpc.orders.get_notifications(1, 500)
    position = store.position("orders")
    assert store.apply_feed("orders", feed["events"], feed["last"]) == position

    assert snapshot(store) == before
    assert admin.get(location).json()["priority"] == 7


def test_rebuild_from_zero_equals_live(system, admin, store, tmp_path):
    me = admin.get("/sessions/").json()["user"]
    location = admin.post("/order/", json={"name": "to rebuild", "priority": 3, "order_owner": me}).headers["Location"]
    admin.put(location, json={"name": "rebuilt"})
    product = admin.post("/product/", json={"order": location, "no_model_upload": True}).headers["Location"]
    item = admin.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"]
    for status in ("calculating_estimates", "pending", "confirmed"):
        admin.put(item, json={"status": status})  # order status, flat order and assignment all follow
    deleted = admin.post("/order/", json={"name": "to delete"}).headers["Location"]
    admin.delete(deleted)
    # a model from the files service, printed by a line item: its flat line item joins three services' documents
    model = admin.post("/model/", json={"name": "cube.stl", "type": "stl"})
    with open(box_stl(tmp_path / "cube.stl", dims=(10, 10, 10)), "rb") as handle:
        assert requests.put(model.headers["X-Upload-Location"], data=handle, timeout=30).status_code == 204
    other = admin.post("/order/", json={"name": "modelled"}).headers["Location"]
    product = admin.post("/product/", json={"order": other}).headers["Location"]
    # …its material (materials' feed) and workflow (production's): the projector applies those feeds after orders'
    maker = admin.post("/manufacturer/", json={"name": "EOS"}).headers["Location"]
    powder = admin.post("/material/", json={"name": "PA2200", "type": "base", "cost": 60.0, "manufacturer": maker,
                                            "bureau": admin.get("/sessions/").json()["bureau"]}).headers["Location"]
    workflow = admin.post("/workflow/", json={"name": "SLS standard"}).headers["Location"]
    modelled = admin.post("/line-item/", json={"product": product, "model": model.headers["Location"], "quantity": 2,
                                               "materials": {"base": powder}, "workflow": workflow}
                          ).headers["Location"]
    eventually(lambda: admin.get(modelled).json()["estimates"], timeout=60)
    eventually(lambda: admin.get(model.headers["Location"]).json()["snapshot_content"], timeout=60)
    # …and a prep workflow record with a task record (production's), summarised per line item
    workflow = admin.post("/prep-workflow/", json={"name": "Review"}).headers["Location"]
    record = admin.post("/prep-workflow-record/", json={"order": other, "line_item": modelled, "status": "queued",
                                                        "prep_workflow": workflow}).headers["Location"]
    session = admin.get("/sessions/").json()
    with system.rpc() as rpc:
        rpc.production.create("prep-task-record", {"prep_workflow_record": uris.normalise(record), "position": 0,
                                                   "name": "Review", "status": "queued"},
                              {"user": uris.normalise(session["user"]), "bureau": uris.normalise(session["bureau"]),
                               "internal": True, "command_id": str(uuid.uuid4())})
    summary = "/flat-summary-line-item-tasks/" + modelled.rstrip("/").rsplit("/", 1)[1] + "/"
    eventually(lambda: admin.get(summary).json().get("current_task_name") == "Review")
    # a shop floor: a run printed and completed, so every production view (pieces and line items by run, flat
    # pieces, run material, piece and line-item actuals, workstations, the run_status filter) has rows joining
    # production's documents with orders' (line item, order) and the shipping station's
    floor = Floor(admin, Shop(admin))
    job = created(admin, "/order/", {"name": unique("rebuilt floor")})
    printed = created(admin, "/line-item/", {"product": created(admin, "/product/", {"order": job,
                                                                                      "no_model_upload": True}),
                                             "quantity": 2, "workflow": floor.workflow})
    floor.becomes(printed, "pending", timeout=60)
    assert admin.put(job, json={"status": "confirmed"}).status_code == 204
    settled_count(admin, "print", printed, 6)
    run = floor.run(printed, 0, printer=floor.shop.printer)
    floor.moved(run, "in-progress")
    floor.moved(run, "complete")
    floor.all_become("piece", printed, "queued-for-post-processing")
    # a password change ends the sessions and token begun before it, not those after: in feed order, on a rebuild too
    name = f"rebuilt-{uuid.uuid4().hex[:6]}"
    user = admin.post("/users/", json={"username": name, "password": "old"}).headers["Location"]
    before_change = login(system.base_url, name, "old")
    assert before_change.post("/api_tokens/", json={"name": "cron"}).status_code == 201
    assert admin.put(user, json={"password": "new"}).status_code == 204
    after_change = login(system.base_url, name, "new")
    live, positions = quiet_snapshot(store, seconds=5)  # mail deliveries are recorded on a timer of their own

    system.stop_projector()
    store.reset()
    assert snapshot(store) == ([], [], [])
    system.start_projector()
    eventually(lambda: store.positions() == positions, timeout=30, interval=0.5)

    rebuilt = snapshot(store)
    assert rebuilt == live, differences(rebuilt, live)
    assert admin.get(location).json()["name"] == "rebuilt"
    order_uuid = location.rstrip("/").rsplit("/", 1)[1]
    assert admin.get(f"/flat-order/?filter[uuid]={order_uuid}").json()["resources"][0]["status"] == "confirmed"
    assert admin.get(f"/assignment/?filter[related_uuid]={order_uuid}").json()["total_count"] == 1
    assert admin.get(deleted).status_code == 404
    flat = admin.get("/flat-line-item/" + modelled.rstrip("/").rsplit("/", 1)[1] + "/").json()
    assert flat["model_volume"] == pytest.approx(2000.0) and flat["model_name"] == "cube.stl"
    assert (flat["base_material_name"], flat["workflow_name"]) == ("PA2200", "SLS standard")
    assert before_change.get("/order/").status_code == 401 and after_change.get("/order/").status_code == 200
    assert admin.get(f"/pieces-by-run/?filter[run]={run}").json()["total_count"] == 2
    actuals = admin.get(f"/line-item-actuals/?filter[line_item]={printed}").json()["resources"]
    assert actuals[0]["total_cost"] is not None
    assert job in {r["uri"] for r in admin.get("/order/?filter[run_status]=complete").json()["resources"]}


def list_keys(store):
    from gateway import indexes

    with store.engine.connect() as conn:
        return {table.name: sorted(tuple(row) for row in conn.execute(table.select()))
                for table in indexes.all_tables()}


def test_the_operators_rebuild_equals_the_live_read_side(system, admin, store, config):
    """`make rebuild` (runtime.rebuild): every feed replayed from the services' event stores as a bulk load, the
    list keys filled once at the end; the documents, audit log, sessions and list keys equal the live ones."""
    created = admin.post("/order/", json={"name": "before the rebuild"})
    assert created.status_code == 201
    eventually(lambda: admin.get("/order/?filter[name]=before the rebuild").json()["total_count"] == 1)
    live, positions = quiet_snapshot(store, seconds=5)
    live_keys = list_keys(store)
    assert live_keys["lk_order"] and live_keys["lk_flat_order"]

    from runtime.rebuild import rebuild

    system.stop_projector()
    try:
        events, _ = rebuild(config, report=lambda line: None)
    finally:
        system.start_projector()
    assert events >= sum(positions.values()) // 2  # every feed replayed (public events, fewer than notifications)
    rebuilt = snapshot(store)
    assert rebuilt == live, differences(rebuilt, live)
    assert list_keys(store) == live_keys
    assert not store.bulk_loading()
    listed = admin.get("/order/?filter[name]=before the rebuild").json()
    assert listed["total_count"] == 1 and listed["resources"][0]["uri"] == created.headers["Location"]
