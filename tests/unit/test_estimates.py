"""Line-item estimates from a model's analysis (orders.md §3), as pure functions."""
import pytest

from services.orders.estimates import estimate, material_units_used, out_of_date

CUBE = {"volume_mm": 1000.0}  # 1 cm³


@pytest.mark.parametrize("material, used", [
    ({"units": "cm3"}, 1.0), ({"units": "ml"}, 1.0), ({"units": "mm3"}, 1000.0), ({"units": "l"}, 0.001),
    ({"units": "inch3"}, 1 / 16.387064), ({"units": "gram", "density": 1.2}, 1.2),
    ({"units": "kg", "density": 1.2}, 0.0012), ({"units": "lb", "density": 453.59237}, 1.0),
    ({"units": "kg"}, None), ({"units": "each"}, None), ({"units": "meter"}, None),
])
def test_material_units_from_volume(material, used):
    assert material_units_used(1.0, material) == (pytest.approx(used) if used is not None else None)


def test_estimate_covers_the_whole_quantity():
    result = estimate(CUBE, 4, {"units": "cm3", "cost": 2.5, "uri": "/material/1/"}, None, "EUR")
    assert result["materials"] == {"base": 4.0, "support": None}
    assert result["cost"] == {"material": 10.0, "total": 10.0}
    assert (result["currency"], result["quantity"], result["base_material"]) == ("EUR", 4, "/material/1/")


def test_no_material_price_means_no_cost_rather_than_zero():
    assert estimate(CUBE, 1)["cost"] == {"material": None, "total": None}
    assert estimate(CUBE, 1, {"units": "each", "cost": 3})["cost"]["material"] is None


def test_out_of_date_when_its_inputs_moved():
    item = {"model": "/model/m/", "quantity": 2, "materials": {"base": "/material/1/"}}
    current = dict(item, estimates={"quantity": 2, "base_material": "/material/1/", "model": "/model/m/"})
    assert out_of_date(item) and not out_of_date(current)
    assert out_of_date(dict(current, quantity=3))
    assert out_of_date(dict(current, materials={"base": "/material/2/"}))
    assert out_of_date(dict(current, model="/model/n/"))
    assert not out_of_date({"quantity": 1})  # nothing to estimate without a model
    assert not out_of_date(dict(item, error="The model does not seem printable"))
