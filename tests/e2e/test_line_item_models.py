"""Line items and their models through the HTTP gateway (orders.md §1.3 rule 1, §3; files.md §5 F1): the model rule,
"The model does not seem printable", estimates from the analysed model, and the flat line item."""
import uuid

import pytest
import requests

from tests.kit.meshes import box_stl
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e


def upload(api, path, expect="processed"):
    created = api.post("/model/", json={"name": path.name, "type": "stl", "file_unit": "mm"})
    assert created.status_code == 201, created.text
    with open(path, "rb") as handle:
        assert requests.put(created.headers["X-Upload-Location"], data=handle, timeout=60).status_code == 204
    uri = created.headers["Location"]
    eventually(lambda: api.get(uri).json()["status"] == expect, timeout=60, interval=0.1)
    return uri


def material(api, cost, units="cm3", density=None):
    maker = api.post("/manufacturer/", json={"name": f"maker-{uuid.uuid4().hex[:6]}"}).headers["Location"]
    body = {"name": f"PA12-{uuid.uuid4().hex[:6]}", "type": "base", "cost": cost, "manufacturer": maker,
            "units": units}
    if density is not None:
        body["density"] = density
    response = api.post("/material/", json=body)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def order_with_product(api, no_model_upload=False, currency="EUR"):
    order = api.post("/order/", json={"name": f"o-{uuid.uuid4().hex[:6]}", "currency": currency}).headers["Location"]
    product = api.post("/product/", json={"order": order, "no_model_upload": no_model_upload})
    assert product.status_code == 201, product.text
    return order, product.headers["Location"]


@pytest.fixture(scope="module")
def box_model(admin, tmp_path_factory):
    return upload(admin, box_stl(tmp_path_factory.mktemp("m") / "box.stl", dims=(10, 20, 30)))  # 6 cm³


def test_estimates_follow_the_analysed_model(admin, box_model):
    base = material(admin, cost=0.5)  # per cm³
    order, product = order_with_product(admin)
    item = admin.post("/line-item/", json={"product": product, "model": box_model, "quantity": 3,
                                           "materials": {"base": base, "support": None}})
    assert item.status_code == 201, item.text
    uri = item.headers["Location"]
    estimates = eventually(lambda: admin.get(uri).json()["estimates"], timeout=30)
    assert estimates["materials"]["base"] == pytest.approx(18.0)  # 6 cm³ × 3
    assert estimates["cost"]["material"] == pytest.approx(9.0) and estimates["currency"] == "EUR"
    # a quantity change re-estimates
    assert admin.put(uri, json={"quantity": 5}).status_code == 204
    eventually(lambda: admin.get(uri).json()["estimates"]["materials"]["base"] == pytest.approx(30.0), timeout=30)
    flat = eventually(lambda: admin.get("/flat-line-item/" + uri.rstrip("/").rsplit("/", 1)[1] + "/").json(),
                      timeout=10)
    assert flat["model"] == box_model and flat["model_volume"] == pytest.approx(6000.0 * 5)
    assert flat["print_bounding_box"] == pytest.approx(6000.0) and flat["model_surface_area"] == pytest.approx(2200)
    assert flat["order"] == order.rstrip("/").rsplit("/", 1)[1] and flat["currency"] == "EUR"
    assert flat["prints_quantity"] == 5
    render = eventually(lambda: admin.get(flat["uri"]).json()["model_render"], timeout=30)
    assert render == box_model + "snapshot/"
    assert flat["base_material_name"].startswith("PA12-")
    flat_order = admin.get("/flat-order/" + order.rstrip("/").rsplit("/", 1)[1] + "/").json()
    assert flat_order["prints_quantity"] == 5 and flat_order["order_volume"] == pytest.approx(30000.0)
    assert flat_order["total_order_material_usage"] == pytest.approx(30.0)
    assert flat_order["material_cost"] == pytest.approx(15.0)


def test_weight_priced_material_uses_its_density(admin, box_model):
    base = material(admin, cost=100.0, units="kg", density=1.0)  # 6 cm³ → 6 g → 0.006 kg
    order, product = order_with_product(admin)
    uri = admin.post("/line-item/", json={"product": product, "model": box_model, "quantity": 1,
                                          "materials": {"base": base, "support": None}}).headers["Location"]
    estimates = eventually(lambda: admin.get(uri).json()["estimates"], timeout=30)
    assert estimates["cost"]["material"] == pytest.approx(0.6)


def test_a_line_item_before_its_model_is_analysed_gets_estimates_later(admin, tmp_path):
    created = admin.post("/model/", json={"name": "late.stl", "type": "stl"})
    model = created.headers["Location"]
    order, product = order_with_product(admin)
    uri = admin.post("/line-item/", json={"product": product, "model": model, "quantity": 2}).headers["Location"]
    assert admin.get(uri).json()["estimates"] is None  # nothing to estimate from yet
    path = box_stl(tmp_path / "late.stl", dims=(10, 10, 10))
    with open(path, "rb") as handle:
        assert requests.put(created.headers["X-Upload-Location"], data=handle, timeout=60).status_code == 204
    estimates = eventually(lambda: admin.get(uri).json()["estimates"], timeout=60)
    assert estimates["materials"]["base"] == pytest.approx(2.0)
    flat_uri = "/flat-line-item/" + uri.rstrip("/").rsplit("/", 1)[1] + "/"
    eventually(lambda: admin.get(flat_uri).json()["model_volume"] == pytest.approx(2000.0), timeout=30)


def test_a_broken_model_is_not_printable(admin, tmp_path):
    path = tmp_path / "broken.stl"
    path.write_bytes(b"not a mesh")
    model = upload(admin, path, expect="error")
    order, product = order_with_product(admin)
    before = admin.get("/line-item/").json()["total_count"]
    response = admin.post("/line-item/", json={"product": product, "model": model, "quantity": 1})
    assert response.status_code == 400
    assert response.json()["errors"][0]["title"] == "The model does not seem printable"
    assert admin.get("/line-item/").json()["total_count"] == before


def test_a_model_that_fails_later_puts_its_line_items_in_error(admin, tmp_path):
    created = admin.post("/model/", json={"name": "bad-later.stl", "type": "stl"})
    order, product = order_with_product(admin)
    uri = admin.post("/line-item/", json={"product": product, "model": created.headers["Location"],
                                          "quantity": 1}).headers["Location"]
    assert requests.put(created.headers["X-Upload-Location"], data=b"garbage bytes", timeout=60).status_code == 204
    eventually(lambda: admin.get(uri).json()["error"] == "The model does not seem printable", timeout=60)


def test_model_and_no_model_upload_exclude_each_other(admin, box_model):
    order, product = order_with_product(admin, no_model_upload=True)
    both = admin.post("/line-item/", json={"product": product, "model": box_model, "quantity": 1})
    assert both.status_code == 400 and "You cannot do both" in both.json()["errors"][0]["title"]
    # neither: fine while the model may still come, refused at confirmation
    order, product = order_with_product(admin)
    uri = admin.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"]
    for status in ("calculating_estimates", "pending"):
        assert admin.put(uri, json={"status": status}).status_code == 204
    neither = admin.put(uri, json={"status": "confirmed"})
    assert neither.status_code == 400 and "cannot do neither" in neither.json()["errors"][0]["title"]
    assert admin.get(uri).json()["status"] == "pending"
    assert admin.put(uri, json={"model": box_model}).status_code == 204
    assert admin.put(uri, json={"status": "confirmed"}).status_code == 204


def test_what_has_prints_in_a_run_cannot_be_deleted(admin):
    from tests.e2e.test_production_http import Shop, settled_count

    shop = Shop(admin)
    flow = shop.workflow()
    order, product = order_with_product(admin, no_model_upload=True)
    in_run, planned = (admin.post("/line-item/", json={"product": product, "quantity": 1,
                                                       "workflow": flow}).headers["Location"] for _ in range(2))
    for item in (in_run, planned):  # confirmed: production makes their prints (F1)
        eventually(lambda: admin.get(item).json()["status"] == "pending", timeout=30)
        assert admin.put(item, json={"status": "confirmed"}).status_code == 204
        settled_count(admin, "print", item, 3)
    first = [p["uri"] for p in settled_count(admin, "print", in_run, 3) if p["process_step_position"] == 0]
    assert admin.post("/run/", json={"prints": first}).status_code == 201  # one line item's print goes in a run
    eventually(lambda: [p for p in settled_count(admin, "print", in_run, 3) if p["run"]])

    refused = admin.delete(in_run)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["title"] == (
        "An line-item with prints that are associated with a run cannot be deleted")
    order_refused = admin.delete(order)
    assert order_refused.status_code == 400
    assert order_refused.json()["errors"][0]["title"] == "An order with prints associated with a run cannot be deleted"
    assert admin.get(in_run).status_code == 200 and admin.get(order).status_code == 200
    assert admin.delete(planned).status_code == 204  # its prints are not in a run


def test_a_design_file_becomes_the_products_model(admin, tmp_path):
    order, product = order_with_product(admin)
    item = admin.post("/line-item/", json={"product": product, "quantity": 2}).headers["Location"]
    created = admin.post("/design-file/", json={"product": product, "name": "part.stl", "format": "stl",
                                                "type": "single-mesh"})
    assert created.status_code == 201, created.text
    design_file, model = created.headers["Location"], created.headers["Model-Location"]
    assert admin.get(model).json()["design_file"] == design_file
    with open(box_stl(tmp_path / "part.stl", dims=(10, 10, 10)), "rb") as handle:
        assert requests.put(created.headers["X-Upload-Location"], data=handle, timeout=60).status_code == 204
    eventually(lambda: admin.get(design_file).json()["status"] == "processed", timeout=60, interval=0.1)
    assert admin.get(model).json()["volume_mm"] == pytest.approx(1000.0)
    line_item = eventually(lambda: admin.get(item).json()["estimates"] and admin.get(item).json(), timeout=60)
    assert line_item["model"] == model and line_item["estimates"]["materials"]["base"] == pytest.approx(2.0)


@pytest.mark.parametrize("fmt, content, words", [
    ("step", b"ISO-10303-21;\nHEADER;\nENDSEC;\n", "CAD converter"),
    ("stl", b"definitely not a mesh", "not the declared format"),
])
def test_a_design_file_that_cannot_become_a_model(admin, fmt, content, words):
    order, product = order_with_product(admin)
    item = admin.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"]
    created = admin.post("/design-file/", json={"product": product, "name": f"part.{fmt}", "format": fmt,
                                                "type": "single-mesh"})
    assert created.status_code == 201, created.text
    assert ("Model-Location" in created.headers) == (fmt == "stl")
    assert requests.put(created.headers["X-Upload-Location"], data=content, timeout=60).status_code == 204
    body = eventually(lambda: admin.get(created.headers["Location"]).json()["status"] == "error"
                      and admin.get(created.headers["Location"]).json(), timeout=60)
    assert words in body["notes"], body
    if fmt == "stl":
        eventually(lambda: admin.get(item).json()["error"] == "The model does not seem printable", timeout=30)


def test_a_model_that_line_items_print_cannot_be_deleted(admin, tmp_path):
    model = upload(admin, box_stl(tmp_path / "kept.stl", dims=(1, 1, 1)))
    order, product = order_with_product(admin)
    item = admin.post("/line-item/", json={"product": product, "model": model, "quantity": 1}).headers["Location"]
    refused = admin.delete(model)
    assert refused.status_code == 409 and "printed by 1 line item" in refused.json()["errors"][0]["title"]
    assert admin.get(model).status_code == 200
    assert admin.delete(item).status_code == 204
    assert admin.delete(model).status_code == 204
    assert admin.get(model).status_code == 404


def test_a_model_uploaded_in_the_wrong_unit_is_measured_again_with_its_line_items(admin, tmp_path):
    # a 2×3×4 inch part, uploaded as if it were in mm
    model = upload(admin, box_stl(tmp_path / "inches.stl", dims=(2, 3, 4)))
    assert admin.get(model).json()["volume_mm"] == pytest.approx(24.0)
    order, product = order_with_product(admin)
    item = admin.post("/line-item/", json={"product": product, "model": model, "quantity": 1}).headers["Location"]
    eventually(lambda: (admin.get(item).json()["estimates"] or {}).get("model_volume_mm") == pytest.approx(24.0),
               timeout=30)
    assert admin.put(model, json={"file_unit": "in"}).status_code == 204
    inch3 = 25.4 ** 3
    body = eventually(lambda: admin.get(model).json()["volume_mm"] == pytest.approx(24 * inch3)
                      and admin.get(model).json(), timeout=60)
    assert body["status"] == "processed" and body["size"]["x"] == pytest.approx(2 * 25.4)
    assert body["analyses"]["unit"] == "in"
    estimates = eventually(lambda: (admin.get(item).json()["estimates"] or {}).get("model_volume_mm")
                           == pytest.approx(24 * inch3) and admin.get(item).json()["estimates"], timeout=60)
    assert estimates["materials"]["base"] == pytest.approx(24 * inch3 / 1000)
    units = admin.get(f"/event/?filter[reference]={model}&filter[key]=file_unit").json()["resources"]
    assert [r["current_value"] for r in units] == ["mm", "in"]  # the audit log says who changed it, and when
    # and back again: every change is a round of its own
    assert admin.put(model, json={"file_unit": "mm"}).status_code == 204
    eventually(lambda: admin.get(model).json()["volume_mm"] == pytest.approx(24.0)
               and admin.get(model).json()["status"] == "processed", timeout=60)
