"""Materials over HTTP (issue 14 items 1-3), on SQLite and on PostgreSQL with every service running: a powder
received as a lot of 4 containers, made a batch, split, loaded and unloaded, sieved, blended with a fresh batch,
corrected and scrapped, with every quantity and the genealogy asserted as a client reads them; two actions racing on
one batch (one 409, nothing changed); another bureau's batch (404, its genealogy too)."""
import threading
import uuid

import pytest

from shared import catalogue
from tests.kit.payloads import PayloadFactory
from tests.kit.plugin import login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


def created(response):
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def act(api, action_type, source=None, quantity=0.0, expect=201, **metadata):
    payload = {"action_type": action_type, "quantity": quantity, "metadata": metadata}
    if source:
        payload["source_batch"] = source
    response = api.post("/material-batch-action/", json=payload)
    assert response.status_code == expect, response.text
    return response.headers.get("Location") if expect == 201 else response.json()["errors"][0]


def amounts(api, batch):
    body = api.get(batch).json()
    return body["quantity"], body["reserved_quantity"], body["quantity_available_for_actions"]


def path(uri):
    return "/" + uri.split("/", 3)[3]


@pytest.fixture(scope="module")
def powder(admin):
    """A material (kg), a location, a purchase order and a lot of 4 × 12.5 kg on order."""
    me = admin.get("/sessions/").json()
    factory = PayloadFactory(admin, me["bureau"], me["user"])
    material = created(admin.post("/material/", json=dict(factory.minimal(catalogue.resource("material")),
                                                          name=f"Ti64 {uuid.uuid4().hex[:6]}", units="kg",
                                                          density=4.43)))
    location = created(admin.post("/location/", json={"name": f"Powder room {uuid.uuid4().hex[:6]}",
                                                      "address": "1 Loop Rd", "bureau": me["bureau"]}))
    po = created(admin.post("/material-purchase-order/", json={
        "external_id": f"PO-{uuid.uuid4().hex[:6]}", "material": material, "planned_full_quantity": 100.0}))
    return {"material": material, "location": location, "po": po, "factory": factory}


def new_lot(admin, powder, containers=4, size=12.5, **fields):
    return created(admin.post("/material-lot/", json={
        "name": "Ti64 delivery", "material": powder["material"], "location": powder["location"],
        "number_of_containers": containers, "size_of_container": size, **fields}))


def test_a_powder_from_receipt_to_scrap(admin, powder):
    # F1: a lot on order, then received
    lot = new_lot(admin, powder, material_purchase_order=powder["po"], status="on_order",
                  usage_cycles_limit=10)
    body = admin.get(lot).json()
    assert body["status"] == "on_order" and body["full_quantity"] == 50.0 and body["units"] == "kg"
    containers = body["containers_available_for_initial_batches"]
    assert len(containers) == 4
    assert all(admin.get(c).json()["quantity"] == 12.5 for c in containers)
    assert admin.get(powder["po"]).json()["delivered_quantity"] == 0.0
    refused = act(admin, "create_initial_batch", expect=400, containers=containers)
    assert "on_order" in refused["title"]
    created(admin.post("/material-lot-action/", json={"action_type": "receive_lot", "material_lot": lot,
                                                      "notes": "4 drums, seals intact"}))
    assert admin.get(lot).json()["status"] == "received"
    assert admin.get(powder["po"]).json()["delivered_quantity"] == 50.0

    # F2: the initial batch (Location names the new batch)
    batch = act(admin, "create_initial_batch", containers=containers)
    assert "/material-batch/" in batch
    assert amounts(admin, batch) == (50.0, 0.0, 50.0)
    b = admin.get(batch).json()
    assert b["status"] == "new" and b["powder_quality"] == "new" and b["is_initial_batch"] is True
    assert sorted(b["containers"]) == sorted(containers) and b["material_lots"] == [lot]
    assert admin.get(lot).json()["initial_batches"] == [batch]
    assert admin.get(containers[0]).json()["current_batch"] == batch
    assert admin.put(batch, json={"quantity": 1}).status_code == 405  # Q15: batches change by actions only

    # split 12.5 kg off with its container
    half = act(admin, "split_batch", batch, 12.5, containers=containers[:1])
    assert amounts(admin, batch) == (37.5, 0.0, 37.5)
    assert amounts(admin, half) == (12.5, 0.0, 12.5)
    assert admin.get(half).json()["source_material_batches"] == [batch]
    assert admin.get(containers[0]).json()["current_batch"] == half
    refused = act(admin, "split_batch", batch, 40.0, expect=400)
    assert refused["title"] == f"The batch {path(batch)} has 37.5 kg available for actions; split_batch needs 40 kg."

    # a build: load 30, unload 25 (5 kg went into the parts), unsieved and used once
    printer = powder["factory"].create(catalogue.resource("printer"))
    act(admin, "machine_load", batch, 30.0, printer=printer)
    assert amounts(admin, batch) == (37.5, 30.0, 7.5)
    assert admin.get(batch).json()["at_machine"] == printer
    act(admin, "machine_unload_chamber", batch, 25.0, printer=printer)
    assert amounts(admin, batch) == (32.5, 0.0, 32.5)
    b = admin.get(batch).json()
    assert b["powder_quality"] == "unsieved" and b["usage_cycles"] == 1 and b["status"] == "idle"
    printer_type = admin.get(printer).json()["printer_type"]
    exposure = admin.get(f"/printer-type-batch-relationship/?filter[material_batch]={batch}").json()
    assert [r["printer_type"] for r in exposure["resources"]] == [printer_type]

    # sieve, losing 0.5 kg
    act(admin, "sieve", batch, sieved_quantity=32.0)
    assert amounts(admin, batch) == (32.0, 0.0, 32.0)
    assert admin.get(batch).json()["powder_quality"] == "sieved"

    # blend with a fresh batch of a second lot
    fresh_lot = new_lot(admin, powder, containers=1, size=10.0)
    fresh = act(admin, "create_initial_batch",
                containers=admin.get(fresh_lot).json()["containers_available_for_initial_batches"])
    blend = act(admin, "blend_batches", batch, 42.0, batches=[fresh])
    assert amounts(admin, blend) == (42.0, 0.0, 42.0)
    assert amounts(admin, batch) == (0.0, 0.0, 0.0) and amounts(admin, fresh) == (0.0, 0.0, 0.0)
    assert admin.get(batch).json()["status"] == "done" and admin.get(fresh).json()["status"] == "done"
    blended = admin.get(blend).json()
    assert sorted(blended["material_lots"]) == sorted([lot, fresh_lot])
    assert blended["usage_cycles"] == 1 and blended["powder_quality"] == "sieved"
    assert sorted(blended["source_material_batches"]) == sorted([batch, fresh])

    # a weighing corrects it, then it is scrapped
    act(admin, "edit_batch_quantity", blend, 41.5, reason="weighed")
    assert amounts(admin, blend) == (41.5, 0.0, 41.5)
    act(admin, "scrap_batch", blend)
    assert amounts(admin, blend) == (0.0, 0.0, 0.0)
    assert admin.get(blend).json()["powder_quality"] == "done"
    assert amounts(admin, half) == (12.5, 0.0, 12.5)  # untouched all along

    # the genealogy, backward: the blend ← (the batch ← its lot, the fresh batch ← its lot); lot → purchase order
    found = admin.get(f"/material-genealogy/?filter[target_batch]={blend}").json()["resources"]
    assert len(found) == 1
    genealogy = found[0]
    parents = {node["source_batch"]: node for node in genealogy["parents_tree"]}
    assert set(parents) == {path(batch), path(fresh)}
    assert parents[path(batch)]["quantity"] == 32.0 and parents[path(fresh)]["quantity"] == 10.0
    assert parents[path(batch)]["parents"][0]["material_lots"] == [path(lot)]
    assert parents[path(fresh)]["parents"][0]["material_lots"] == [path(fresh_lot)]
    assert admin.get(lot).json()["material_purchase_order"] == powder["po"]
    # … and forward: lot → containers → batches → their children
    used = {b for c in containers for b in admin.get(c).json()["used_in_batches"]}
    assert used == {batch, half, blend}  # the containers went along with the split and the blend
    forward = admin.get(f"/material-genealogy/?filter[target_batch]={batch}").json()["resources"][0]
    children = {node["destination_batch"] for node in forward["children_tree"]}
    assert children == {path(half), path(blend)}
    links = admin.get(f"/material-batch-linking/?filter[destination_batch]={blend}").json()["resources"]
    assert sorted(link["quantity"] for link in links) == [10.0, 32.0]

    # the lot's material left in its containers: the 12.5 kg still in the split-off batch's container
    assert admin.get(lot).json()["quantity"] == 12.5


def test_two_actions_racing_on_one_batch(admin, powder):
    lot = new_lot(admin, powder, containers=1, size=10.0)
    batch = act(admin, "create_initial_batch",
                containers=admin.get(lot).json()["containers_available_for_initial_batches"])
    act(admin, "split_batch", batch, 1.0)
    actions = admin.get("/material-batch-action/?filter[source_batch]=" + batch).json()["resources"]
    assert len(actions) == 1 and "/material-batch-action/" in actions[0]["previous_action"]  # the creating action
    expected = actions[0]["uri"]
    answers = []

    def take(amount):
        answers.append(admin.post("/material-batch-action/", json={
            "action_type": "test", "source_batch": batch, "quantity": amount, "previous_action": expected}))

    racers = [threading.Thread(target=take, args=(amount,)) for amount in (2.0, 3.0)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    assert "latest action is" in loser.json()["errors"][0]["title"]
    winner = next(a for a in answers if a.status_code == 201)
    taken = 2.0 if winner.request.body and b'"quantity": 2.0' in winner.request.body else 3.0
    assert amounts(admin, batch) == (9.0 - taken, 0.0, 9.0 - taken)  # the loser changed nothing


def test_another_bureaus_batch_is_not_found(system, admin, powder):
    lot = new_lot(admin, powder, containers=1, size=10.0)
    batch = act(admin, "create_initial_batch",
                containers=admin.get(lot).json()["containers_available_for_initial_batches"])
    intruder = make_tenant(admin, login, "materials").manager
    assert intruder.get(batch).status_code == 404
    batch_uuid = batch.rstrip("/").rsplit("/", 1)[1]
    assert intruder.get(f"/material-genealogy/{batch_uuid}/").status_code == 404  # the genealogy is the batch's
    assert intruder.get(f"/material-genealogy/?filter[target_batch]={batch}").json()["resources"] == []
    mine = admin.get(f"/material-genealogy/{batch_uuid}/")
    assert mine.status_code == 200 and mine.json()["target_batch"] == batch
    assert mine.json() == admin.get(f"/material-genealogy/?filter[target_batch]={batch}").json()["resources"][0]
    assert admin.get("/material-genealogy/").json() == {"resources": [], "total_count": 0, "meta": {
        "total_count_is_estimate": False, "next": None}}  # a genealogy is of a batch: none without one
    assert admin.post("/material-genealogy/", json={}).status_code == 405
    for payload in ({"action_type": "split_batch", "source_batch": batch, "quantity": 1.0},
                    {"action_type": "scrap_batch", "source_batch": batch}):
        response = intruder.post("/material-batch-action/", json=payload)
        assert response.status_code == 404, response.text
        assert response.json()["errors"][0]["title"] == "The requested material batch cannot be found."
    assert amounts(admin, batch) == (10.0, 0.0, 10.0)
