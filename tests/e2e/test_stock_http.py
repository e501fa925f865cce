"""Stock over HTTP (materials.md §3.13–3.16), every service running on the real broker (SQLite and PostgreSQL): one
stock per (material, location) (the documented 400), its quantity moved only by its ledger, StockBelowMinimum in the
materials feed when it falls under stock_min, and the sub-location's stock summary computed from lots and batches.
Every number is computed here and asserted as a client reads it."""
import uuid

import pytest

from shared import catalogue
from tests.kit.payloads import PayloadFactory
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e
DUPLICATE = "A stock with requested material and location already exists (this pair should be unique)."


def created(response):
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def path(uri):
    return "/" + uri.split("/", 3)[3]


@pytest.fixture(scope="module")
def place(admin):
    """A material (kg), a location and a sub-location in it."""
    me = admin.get("/sessions/").json()
    factory = PayloadFactory(admin, me["bureau"], me["user"])
    material = created(admin.post("/material/", json=dict(factory.minimal(catalogue.resource("material")),
                                                          name=f"PA12 {uuid.uuid4().hex[:6]}", units="kg",
                                                          density=1.01)))
    location = created(admin.post("/location/", json={"name": f"Store {uuid.uuid4().hex[:6]}",
                                                      "address": "1 Loop Rd", "bureau": me["bureau"]}))
    shelf = created(admin.post("/sub-location/", json={"name": "Shelf A", "location": location,
                                                       "bureau": me["bureau"]}))
    return {"material": material, "location": location, "shelf": shelf, "bureau": me["bureau"]}


def stock_action(admin, stock, action_type, quantity=None, **metadata):
    payload = {"action_type": action_type, "source_stock": stock, "metadata": metadata}
    if quantity is not None:
        payload["action_quantity"] = quantity
    return admin.post("/material-stock-action/", json=payload)


def test_one_stock_per_material_and_location(admin, place):
    stock = created(admin.post("/stock/", json={"material": place["material"], "location": place["location"]}))
    again = admin.post("/stock/", json={"material": place["material"], "location": place["location"]})
    assert again.status_code == 400
    assert again.json()["errors"][0]["title"] == DUPLICATE
    assert admin.delete(stock).status_code == 204
    assert created(admin.post("/stock/", json={"material": place["material"], "location": place["location"]}))


def test_the_ledger_moves_the_stock_and_a_fall_under_the_minimum_is_published(system, admin, place):
    other = dict(place)
    other["location"] = created(admin.post("/location/", json={"name": f"Annex {uuid.uuid4().hex[:6]}",
                                                               "address": "2 Loop Rd", "bureau": place["bureau"]}))
    stock = created(admin.post("/stock/", json={"material": place["material"], "location": other["location"],
                                                "quantity": 20.0, "stock_min": 8.0, "stock_max": 40.0}))
    expected = 20.0
    for kind, amount in (("consume", 7.5), ("replenish", 2.0), ("consume", 6.0)):
        response = stock_action(admin, stock, kind, amount)
        assert response.status_code == 201, response.text
        expected += amount if kind == "replenish" else -amount
        assert admin.get(response.headers["Location"]).json()["quantity"] == pytest.approx(expected)
    assert expected == pytest.approx(8.5)
    assert admin.get(stock).json()["quantity"] == pytest.approx(expected)
    refused = stock_action(admin, stock, "consume", expected + 1)
    assert refused.status_code == 400 and f"holds {expected:g}" in refused.json()["errors"][0]["title"]
    assert admin.put(stock, json={"quantity": 99.0}).status_code == 400

    fall = stock_action(admin, stock, "consume", 1.0)  # 7.5 < 8
    assert fall.status_code == 201
    expected -= 1.0
    counted = stock_action(admin, stock, "reconcile", counted_quantity=0.0)
    assert counted.status_code == 201
    body = admin.get(counted.headers["Location"]).json()
    assert (body["quantity"], body["action_quantity"]) == (0.0, pytest.approx(expected))
    assert admin.get(stock).json()["status"] == "exhausted"

    uuid_ = path(stock).strip("/").rsplit("/", 1)[1]

    def below():
        with system.rpc() as rpc:
            feed = rpc.materials.get_notifications(1, 10_000)
        return [e for e in feed["events"] if e["uuid"] == uuid_ and e["names"][-1] == "StockBelowMinimum"]
    fallen = eventually(below, timeout=10)
    assert len(fallen) == 1  # the reconcile to 0 is no new fall: it was under already
    assert fallen[0]["fields"] == {"quantity": pytest.approx(7.5), "stock_min": 8.0}


def test_the_sub_location_stock_summary(admin, place):
    material, location, shelf = place["material"], place["location"], place["shelf"]
    stock = next((s["uri"] for s in admin.get(f"/stock/?filter[location]={location}").json()["resources"]
                  if path(s["material"]) == path(material)), None) or created(
        admin.post("/stock/", json={"material": material, "location": location}))
    lot = created(admin.post("/material-lot/", json={"name": "on shelf", "material": material, "location": location,
                                                     "sub_location": shelf, "number_of_containers": 3,
                                                     "size_of_container": 5.0}))
    created(admin.post("/material-lot/", json={"name": "coming", "material": material, "location": location,
                                               "sub_location": shelf, "status": "on_order",
                                               "number_of_containers": 2, "size_of_container": 7.0}))
    containers = admin.get(lot).json()["containers_available_for_initial_batches"]
    batch = created(admin.post("/material-batch-action/", json={
        "action_type": "create_initial_batch", "quantity": 0.0, "metadata": {"containers": containers[:2]}}))
    body = admin.get(batch).json()
    assert path(body["sub_location"]) == path(shelf)
    assert body["quantity_available_for_actions"] == pytest.approx(2 * 5.0)
    assert len(admin.get(lot).json()["containers_available_for_initial_batches"]) == 1

    def summary():
        rows = admin.get(f"/stock-summary/sub-location/{path(shelf).strip('/').rsplit('/', 1)[1]}/stock/").json()
        return [r for r in rows["resources"] if path(r["stock"]) == path(stock)]
    rows = eventually(summary, timeout=10)
    assert len(rows) == 1
    row = rows[0]
    assert path(row["sub_location"]) == path(shelf)
    # the lot on hand has one container (5 kg) no batch took yet, the batch from two containers 10 kg, the lot on order
    # 2 × 7 kg
    assert row["material_lot_quantity_available"] == pytest.approx(5.0)
    assert row["batches_quantity_available"] == pytest.approx(10.0)
    assert row["material_lot_quantity_on_order"] == pytest.approx(2 * 7.0)
    assert admin.get("/stock-summary/sub-location/00000000-0000-0000-0000-000000000000/stock/").status_code == 404
