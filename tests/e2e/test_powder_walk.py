"""A powder's walk through production over HTTP (issue 14 "Done when"; materials.md §9 F1–F3, §5): a lot of 4
containers received on a purchase order → its initial batch → loaded into a printer → the printer's run completes
(production's feed tells materials) → the chamber is unloaded (usage_cycles 1, unsieved; what the machine kept was
the run's: /run-actuals-additive/) → sieved → blended with a fresh batch of a second lot → the blend loaded and topped
off from another fresh batch → a second build. Then the backward query from a part of the second build names both
lots (and the first lot's purchase order), and the forward query from the first lot names the parts of both builds.
Every quantity is computed here, independently of the service, and asserted as a client reads it."""
import io
import uuid

import pytest
import requests
from PIL import Image
from pypdf import PdfReader

from tests.e2e.test_production_http import Shop, created, of_line_item, settled_count, unique
from tests.e2e.test_shop_floor import Floor
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e


def path(uri):
    return "/" + uri.split("/", 3)[3] if uri and uri.startswith("http") else uri


def act(api, action_type, source=None, quantity=0.0, **metadata):
    payload = {"action_type": action_type, "quantity": quantity, "metadata": metadata}
    if source:
        payload["source_batch"] = source
    response = api.post("/material-batch-action/", json=payload)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def amounts(api, batch):
    body = api.get(batch).json()
    return body["quantity"], body["reserved_quantity"], body["quantity_available_for_actions"]


def genealogy(api, batch):
    found = api.get(f"/material-genealogy/?filter[target_batch]={batch}").json()["resources"]
    assert len(found) == 1
    return found[0]


def nodes(tree, key):
    for node in tree:
        yield node
        yield from nodes(node[key], key)


@pytest.fixture(scope="module")
def floor(admin):
    return Floor(admin, Shop(admin))


def parts_to_print(api, floor, quantity):
    """A line item of `quantity` parts, confirmed, and the printing run of its prints on the shop's printer."""
    order = created(api, "/order/", {"name": unique("powder walk")})
    product = created(api, "/product/", {"order": order, "no_model_upload": True})
    item = created(api, "/line-item/", {"product": product, "quantity": quantity, "workflow": floor.workflow})
    floor.becomes(item, "pending")
    assert api.put(item, json={"status": "confirmed"}).status_code == 204
    pieces = {p["uri"] for p in settled_count(api, "piece", item, quantity)}
    settled_count(api, "print", item, 3 * quantity)
    return floor.run(item, 0, printer=floor.shop.printer), pieces


def printed(api, floor, run, batch):
    """The run goes in-progress and completes; materials learns it from production's feed (the batch printed it)."""
    floor.moved(run, "in-progress")
    floor.moved(run, "complete")
    eventually(lambda: path(run) in next(b for b in genealogy(api, batch)["batches"] if b["uri"] == path(batch))[
        "runs"], timeout=30)


def additive_of(api, run):
    """The run's /run-actuals-additive/ (run → run-actuals → additive), once materials has sent it to production."""
    def found():
        actuals = api.get(f"/run-actuals/?filter[run]={run}").json()["resources"]
        if not actuals:
            return None
        rows = api.get(f"/run-actuals-additive/?filter[run_actual]={actuals[0]['uri']}").json()["resources"]
        return rows[0] if rows else None
    return eventually(found, timeout=30)


def test_a_powder_walks_through_two_builds_and_is_traced_both_ways(admin, floor):
    # F1: a purchase order and a lot of 4 × 12.5 kg on it, received
    material = created(admin, "/material/", {"name": unique("Ti64"), "type": "base", "cost": 300.0, "units": "kg",
                                             "density": 4.43, "manufacturer": floor.shop.manufacturer})
    po = created(admin, "/material-purchase-order/", {"external_id": f"PO-{uuid.uuid4().hex[:6]}",
                                                      "material": material, "planned_full_quantity": 50.0})
    lot = created(admin, "/material-lot/", {
        "name": "Ti64 delivery", "material": material, "location": floor.shop.location, "status": "on_order",
        "material_purchase_order": po, "number_of_containers": 4, "size_of_container": 12.5,
        "usage_cycles_limit": 5})
    created(admin, "/material-lot-action/", {"action_type": "receive_lot", "material_lot": lot,
                                             "notes": "4 drums, seals intact"})
    containers = admin.get(lot).json()["containers_available_for_initial_batches"]
    assert len(containers) == 4 and admin.get(lot).json()["full_quantity"] == 4 * 12.5
    assert admin.get(po).json()["delivered_quantity"] == 4 * 12.5

    # F2: the initial batch
    batch = act(admin, "create_initial_batch", containers=containers)
    b = {"quantity": 4 * 12.5, "reserved": 0.0}
    assert amounts(admin, batch) == (b["quantity"], 0.0, b["quantity"])

    # F3, first build: load 30 kg, the run prints 2 parts and completes, 26 kg come back out of the chamber
    first_run, first_parts = parts_to_print(admin, floor, 2)
    load = 30.0
    act(admin, "machine_load", batch, load, printer=floor.shop.printer)
    assert amounts(admin, batch) == (b["quantity"], load, b["quantity"] - load)
    printed(admin, floor, first_run, batch)
    unloaded = 26.0
    consumed_first = load - unloaded
    act(admin, "machine_unload_chamber", batch, unloaded, printer=floor.shop.printer)
    b["quantity"] -= consumed_first
    assert amounts(admin, batch) == (b["quantity"], 0.0, b["quantity"])
    body = admin.get(batch).json()
    assert (body["usage_cycles"], body["powder_quality"], body["status"], body["at_machine"]) == (
        1, "unsieved", "idle", None)
    first_additive = additive_of(admin, first_run)
    assert path(first_additive["material_batch"]) == path(batch)
    assert first_additive["base_material_used"] == pytest.approx(consumed_first)
    # the run's material view (production.md §2.7) shows the actual the build consumed
    run_material = "/run-material/" + first_run.rstrip("/").rsplit("/", 1)[1] + "/"
    eventually(lambda: admin.get(run_material).json().get("actual_base_material_used") == pytest.approx(consumed_first))

    # sieve (0.5 kg lost), then blend with a fresh batch of a second lot (2 × 10 kg; one container each batch)
    sieved = b["quantity"] - 0.5
    act(admin, "sieve", batch, sieved_quantity=sieved)
    b["quantity"] = sieved
    assert amounts(admin, batch) == (sieved, 0.0, sieved) and admin.get(batch).json()["powder_quality"] == "sieved"
    fresh_lot = created(admin, "/material-lot/", {"name": "Ti64 top-up", "material": material,
                                                  "location": floor.shop.location, "number_of_containers": 2,
                                                  "size_of_container": 10.0})
    fresh_containers = admin.get(fresh_lot).json()["containers_available_for_initial_batches"]
    fresh = act(admin, "create_initial_batch", containers=fresh_containers[:1])
    spare = act(admin, "create_initial_batch", containers=fresh_containers[1:])
    blend = act(admin, "blend_batches", batch, sieved + 10.0, batches=[fresh])
    n = {"quantity": sieved + 10.0}
    assert amounts(admin, blend) == (n["quantity"], 0.0, n["quantity"])
    assert amounts(admin, batch) == (0.0, 0.0, 0.0) and amounts(admin, fresh) == (0.0, 0.0, 0.0)
    body = admin.get(blend).json()
    assert sorted(body["material_lots"]) == sorted([lot, fresh_lot])
    assert (body["usage_cycles"], body["powder_quality"]) == (1, "sieved")  # the oldest portion, the worst quality

    # second build: load 40 kg of the blend, top off 5 kg from the spare fresh batch, 3 parts, 38 kg come back
    second_run, second_parts = parts_to_print(admin, floor, 3)
    second_load, top_off = 40.0, 5.0
    act(admin, "machine_load", blend, second_load, printer=floor.shop.printer)
    act(admin, "machine_top_off", blend, top_off, batch_to_load=spare, printer=floor.shop.printer)
    n["quantity"] += top_off
    in_machine = second_load + top_off
    assert amounts(admin, blend) == (n["quantity"], in_machine, n["quantity"] - in_machine)
    assert amounts(admin, spare) == (10.0 - top_off, 0.0, 10.0 - top_off)
    printed(admin, floor, second_run, blend)
    second_unloaded = 38.0
    consumed_second = in_machine - second_unloaded
    act(admin, "machine_unload_chamber", blend, second_unloaded, printer=floor.shop.printer)
    n["quantity"] -= consumed_second
    assert amounts(admin, blend) == (n["quantity"], 0.0, n["quantity"])
    assert admin.get(blend).json()["usage_cycles"] == 2
    second_additive = additive_of(admin, second_run)
    assert path(second_additive["material_batch"]) == path(blend)
    assert second_additive["base_material_used"] == pytest.approx(consumed_second)

    # conservation, as a client can check it: what came in = what is left + what the builds consumed + the loss
    received = 4 * 12.5 + 2 * 10.0
    left = sum(amounts(admin, each)[0] for each in (batch, fresh, spare, blend))
    assert left + consumed_first + consumed_second + 0.5 == pytest.approx(received)

    # backward: a part of the second build → its print → the run → its actuals → the batch → its lots → the PO
    part = sorted(second_parts)[0]
    prints = admin.get(f"/print/?filter[piece]={part}").json()["resources"]
    runs = {p["run"] for p in prints if p["run"]}
    assert runs == {second_run}
    consumed_batch = additive_of(admin, second_run)["material_batch"]
    parents = list(nodes(genealogy(admin, consumed_batch)["parents_tree"], "parents"))
    lots = {lot_path for node in parents if node["source_batch"] is None for lot_path in node["material_lots"]}
    assert lots == {path(lot), path(fresh_lot)}
    assert {(node["source_batch"], node["quantity"]) for node in parents if node["destination_batch"] == path(
        blend)} == {(path(batch), sieved), (path(fresh), 10.0), (path(spare), top_off)}
    assert admin.get(lot).json()["material_purchase_order"] == po

    # forward (recall of the first lot): its containers → the batches they were used in → their descendants → the
    # runs that printed from them → those runs' prints → the parts
    used = {b for c in admin.get(f"/material-container/?filter[material_lot]={lot}").json()["resources"]
            for b in c["used_in_batches"]}
    assert used == {batch, blend}
    reached, runs = set(), set()
    for each in used:
        tree = genealogy(admin, each)
        reached |= {path(each)} | {node["destination_batch"] for node in nodes(tree["children_tree"], "children")}
        runs |= {run for b in tree["batches"] if b["uri"] in reached for run in b["runs"]}
    assert reached == {path(batch), path(blend)}
    assert runs == {path(first_run), path(second_run)}
    parts = {p["piece"] for run in runs for p in admin.get(f"/print/?filter[run]={run}").json()["resources"]}
    assert parts == first_parts | second_parts
    assert len(parts) == 2 + 3
    assert of_line_item  # (the shop floor's helpers made the runs)

    # the two reports (§3.11, §3.26), made in the background, downloadable through their signed links
    recall = report_text(admin, "/material-batch-traceability-report/", {"material_batch": batch})
    for expected in [path(lot), path(po), po_number(admin, po), path(batch), path(blend), path(first_run),
                     path(second_run), *map(path, parts), f"{sieved:g}kg", f"{consumed_first:g}kg"]:
        assert expected in recall, expected
    backward = report_text(admin, "/traceability-report/", {"piece": part, "filters": []})
    for expected in [path(part), path(second_run), path(blend), path(batch), path(fresh), path(spare), path(lot),
                     path(fresh_lot), po_number(admin, po), f"{consumed_second:g}kg", f"{top_off:g}kg"]:
        assert expected in backward, expected
    assert path(first_run) not in backward  # the part was printed by the second build only


def po_number(api, po):
    return api.get(po).json()["external_id"]


def report_text(api, collection, payload):
    """POST a report, follow it pending → processing → complete, download its PDF through the signed link (no
    session: the link is the credential), and return its text (whitespace removed: long URIs wrap in table cells)
    after checking that it opens and holds the genealogy picture."""
    response = api.post(collection, json=payload)
    assert response.status_code == 201, response.text
    report = response.headers["Location"]
    assert api.get(report).json()["status"] in ("pending", "processing", "complete")
    body = eventually(lambda: (lambda b: b if b["status"] in ("complete", "error") else None)(
        api.get(report).json()), timeout=60)
    assert body["status"] == "complete", body.get("error")
    assert body["content"] and body["error"] is None
    download = requests.get(body["content"], timeout=30)
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(download.content))
    images = [image for page in reader.pages for image in page.images]
    assert images
    with Image.open(io.BytesIO(images[0].data)) as picture:
        assert picture.size[0] > 200 and picture.size[1] > 50
    # the same bytes filed as a document (files service), scanned like any upload, with its own signed link
    document = eventually(lambda: (lambda d: d if d.get("virus_scan") == "passed" and d.get("content") else None)(
        api.get(body["document"]).json()), timeout=30)
    assert document["name"].endswith(".pdf")
    assert requests.get(document["content"], timeout=30).content == download.content
    return "".join("".join(page.extract_text() for page in reader.pages).split())
