"""Stock (materials.md §3.13, §3.15): one stock per (material, location) in a bureau, its quantity the fold of its
ledger, and StockBelowMinimum when it falls under its minimum (the materials feed carries the name)."""
import pytest

from shared.errors import InvalidPayload
from tests.unit.materials_kit import Kit


@pytest.fixture
def kit():
    kit = Kit()
    yield kit
    kit.close()


def stock(kit, **fields):
    kit._material = getattr(kit, "_material", None) or kit.material()
    kit._location = getattr(kit, "_location", None) or kit.location()
    return kit.create("stock", {"material": kit._material, "location": kit._location, **fields})


def act(kit, stock_path, action_type, quantity=None, **metadata):
    payload = {"action_type": action_type, "source_stock": stock_path, "metadata": metadata}
    if quantity is not None:
        payload["action_quantity"] = quantity
    return kit.create("material-stock-action", payload)


def feed_names(kit, stock_path):
    """The event names the materials feed carries for one stock, in order (the last name is the most specific)."""
    uuid = stock_path.rstrip("/").rsplit("/", 1)[1]
    return [item["names"][-1] for item in kit.app.feed(1, 10_000)["events"] if item["uuid"] == uuid]


def test_the_material_location_pair_is_unique_in_a_bureau(kit):
    stock(kit)
    with pytest.raises(InvalidPayload) as refused:
        stock(kit)
    assert refused.value.title == (
        "A stock with requested material and location already exists (this pair should be unique).")
    other_location = kit.location("Annex")
    assert kit.create("stock", {"material": kit._material, "location": other_location})


def test_a_deleted_stock_frees_its_pair(kit):
    first = stock(kit)
    kit.app.delete("stock", first.rstrip("/").rsplit("/", 1)[1], kit.ctx())
    assert stock(kit) != first


def test_the_quantity_is_the_fold_of_the_ledger(kit):
    s = stock(kit, quantity=10.0)
    steps = [("replenish", 5.0, None), ("consume", 2.5, None), ("reconcile", None, 11.0), ("consume", 11.0, None)]
    expected = 10.0
    for kind, amount, counted in steps:
        before = expected
        if kind == "reconcile":
            action = act(kit, s, kind, counted_quantity=counted)
            expected = counted
        else:
            action = act(kit, s, kind, amount)
            expected += amount if kind == "replenish" else -amount
        body = kit.get(action)
        assert body["quantity"] == pytest.approx(expected)
        assert body["action_quantity"] == pytest.approx(abs(expected - before))
    assert kit.get(s)["quantity"] == pytest.approx(0.0) and kit.get(s)["status"] == "exhausted"


def test_consuming_more_than_the_stock_holds_is_refused_and_changes_nothing(kit):
    s = stock(kit, quantity=3.0)
    with pytest.raises(InvalidPayload) as refused:
        act(kit, s, "consume", 4.0)
    assert "holds 3" in refused.value.title
    assert kit.get(s)["quantity"] == 3.0


def test_the_quantity_is_not_set_by_put(kit):
    s = stock(kit, quantity=3.0)
    with pytest.raises(InvalidPayload):
        kit.app.update("stock", s.rstrip("/").rsplit("/", 1)[1], {"quantity": 9.0}, kit.ctx())
    assert kit.get(s)["quantity"] == 3.0


def stored_names(kit, s):
    return [n for n in feed_names(kit, s) if n != "StockCreated"]


def test_stock_below_minimum_is_recorded_once_when_the_stock_falls_under_it(kit):
    s = stock(kit, quantity=10.0, stock_min=4.0)
    act(kit, s, "consume", 5.0)  # 5: still at or above the minimum
    assert "StockBelowMinimum" not in stored_names(kit, s)
    act(kit, s, "consume", 2.0)  # 3 < 4: falls under
    assert stored_names(kit, s).count("StockBelowMinimum") == 1
    act(kit, s, "consume", 1.0)  # 2: still under, no new fall
    assert stored_names(kit, s).count("StockBelowMinimum") == 1
    act(kit, s, "replenish", 10.0)  # 12, back above
    act(kit, s, "consume", 9.0)  # 3: falls under again
    assert stored_names(kit, s).count("StockBelowMinimum") == 2


def test_raising_the_minimum_above_the_quantity_is_a_fall_too(kit):
    s = stock(kit, quantity=5.0, stock_min=1.0)
    kit.app.update("stock", s.rstrip("/").rsplit("/", 1)[1], {"stock_min": 6.0}, kit.ctx())
    assert stored_names(kit, s).count("StockBelowMinimum") == 1


def test_the_feed_carries_stock_below_minimum_with_the_numbers(kit):
    s = stock(kit, quantity=2.0, stock_min=1.5)
    act(kit, s, "consume", 1.0)
    uuid = s.rstrip("/").rsplit("/", 1)[1]
    events = [e for e in kit.app.feed(1, 10_000)["events"] if e["uuid"] == uuid]
    assert [e["names"][-1] for e in events] == ["StockCreated", "StockConsumed", "StockBelowMinimum"]
    assert events[-1]["fields"] == {"quantity": 1.0, "stock_min": 1.5}
