"""Stock-tracked consumption over HTTP (materials.md §3.13–3.16, §9 F6), every service running (SQLite and
PostgreSQL): a filament stock at the printer's location with a received lot and a lot on order (`material_lots`,
`on_order_quantity`); a printing run of parts of that material completes in production and its actual base material
is recorded; materials, following production's feed, writes one consume with the run, drawn from the received lot,
shared by the run's pieces (`/material-stock-action-relationship/`), the stock falls under its minimum once. A
manual consume by the run writes the same rows. Every number is computed here and asserted as a client reads it."""
import pytest

from tests.e2e.test_production_http import Shop, created, settled_count, unique
from tests.e2e.test_shop_floor import Floor
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e


def path(uri):
    return "/" + uri.split("/", 3)[3] if uri and uri.startswith("http") else uri


@pytest.fixture(scope="module")
def floor(admin):
    return Floor(admin, Shop(admin))


def printing_run(api, floor, quantity):
    """A line item of `quantity` parts of the shop's material, confirmed, and the printing run of its prints."""
    order = created(api, "/order/", {"name": unique("filament parts")})
    product = created(api, "/product/", {"order": order, "no_model_upload": True})
    item = created(api, "/line-item/", {"product": product, "quantity": quantity, "workflow": floor.workflow,
                                        "materials": {"base": floor.shop.material}})
    floor.becomes(item, "pending")
    assert api.put(item, json={"status": "confirmed"}).status_code == 204
    pieces = {path(p["uri"]) for p in settled_count(api, "piece", item, quantity)}
    settled_count(api, "print", item, 3 * quantity)
    return floor.run(item, 0, printer=floor.shop.printer), pieces


def rows(api, query):
    return api.get(query).json()["resources"]


def test_a_run_consumes_from_the_stock_of_its_material(system, admin, floor):
    shop = floor.shop
    received = created(admin, "/material-lot/", {"name": "spools", "material": shop.material,
                                                 "location": shop.location, "number_of_containers": 2,
                                                 "size_of_container": 30.0})
    coming = created(admin, "/material-lot/", {"name": "more spools", "material": shop.material,
                                               "location": shop.location, "status": "on_order",
                                               "number_of_containers": 1, "size_of_container": 20.0})
    stock = created(admin, "/stock/", {"material": shop.material, "location": shop.location, "quantity": 100.0,
                                       "stock_min": 95.0})
    body = admin.get(stock).json()
    assert [path(lot) for lot in body["material_lots"]] == [path(received), path(coming)]
    assert body["on_order_quantity"] == 20.0
    refused = admin.put(stock, json={"on_order_quantity": 5.0})
    assert refused.status_code == 400 and "computed from the lots" in refused.json()["errors"][0]["title"]

    run, pieces = printing_run(admin, floor, 2)
    floor.moved(run, "in-progress")
    floor.moved(run, "complete")
    (actual,) = eventually(lambda: rows(admin, f"/run-actuals/?filter[run]={run}"), timeout=30)
    created(admin, "/run-actuals-additive/", {"run_actual": actual["uri"], "base_material_used": 6.0})

    (action,) = eventually(lambda: rows(admin, f"/material-stock-action/?filter[source_stock]={stock}"), timeout=30)
    assert (action["action_type"], path(action["run"]), action["action_quantity"], action["quantity"]) == (
        "consume", path(run), 6.0, 94.0)
    assert admin.get(stock).json()["quantity"] == 94.0
    related = eventually(lambda: rows(
        admin, f"/material-stock-action-relationship/?filter[stock_action]={action['uri']}"), timeout=10)
    assert sorted((r["relationship_type"], path(r["resource"]), r["quantity"]) for r in related) == sorted(
        [("source", path(received), 6.0)] + [("destination", piece, 3.0) for piece in pieces])

    # a manual consume by the same run: the received lot's next 4, shared by the pieces
    manual = created(admin, "/material-stock-action/", {"action_type": "consume", "source_stock": stock,
                                                         "action_quantity": 4.0, "run": run})
    related = rows(admin, f"/material-stock-action-relationship/?filter[stock_action]={manual}")
    assert sorted((r["relationship_type"], path(r["resource"]), r["quantity"]) for r in related) == sorted(
        [("source", path(received), 4.0)] + [("destination", piece, 2.0) for piece in pieces])
    assert admin.get(stock).json()["quantity"] == 90.0

    uuid_ = path(stock).strip("/").rsplit("/", 1)[1]

    def below():
        with system.rpc() as rpc:
            feed = rpc.materials.get_notifications(1, 10_000)
        return [e for e in feed["events"] if e["uuid"] == uuid_ and e["names"][-1] == "StockBelowMinimum"]
    fallen = eventually(below, timeout=10)
    assert len(fallen) == 1 and fallen[0]["fields"]["quantity"] == 94.0  # once: 94 < 95, not again at 90

    # the lot on order arrives: nothing is on order any more
    created(admin, "/material-lot-action/", {"action_type": "receive_lot", "material_lot": coming, "notes": "ok"})
    assert admin.get(stock).json()["on_order_quantity"] == 0.0
