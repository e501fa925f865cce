"""Receiving (materials.md F1, §3.3–3.7, §6.4): purchase orders, lots that create their containers, the lot's ledger
of actions on unused containers, and the lot status machine."""
import pytest

from shared.errors import InvalidPayload, NotFound
from tests.unit.materials_kit import OTHER_BUREAU, Kit


@pytest.fixture
def kit():
    kit = Kit()
    yield kit
    kit.close()


def error(excinfo):
    return excinfo.value.title


def test_a_lot_creates_its_containers_full(kit):
    lot_path = kit.lot(containers=4, size=12.5, expiration_date="2030-01-01T00:00:00+00:00", usage_cycles_limit=5)
    lot = kit.get(lot_path)
    assert lot["full_quantity"] == 50.0 and lot["quantity"] == 50.0  # Q7, Q8
    assert lot["units"] == "kg" and lot["status"] == "received" and lot["material_name"] == "Ti64"
    containers = [kit.get(c) for c in lot["containers_available_for_initial_batches"]]
    assert len(containers) == 4
    for container in containers:
        assert container["material_lot"] == lot_path and container["type"] == "disposable"
        assert container["quantity"] == container["full_quantity"] == 12.5
        assert container["status"] == "new" and container["is_available_for_initial_batches"] is True
        assert container["location"] == lot["location"]


def test_a_lot_starts_on_order_or_received(kit):
    with pytest.raises(InvalidPayload) as excinfo:
        kit.lot(status="available")
    assert "Provided status transformation is not allowed." in error(excinfo)


def test_containers_need_a_size(kit):
    with pytest.raises(InvalidPayload) as excinfo:
        kit.lot(containers=2, size=None)
    assert excinfo.value.field == "size_of_container"
    with pytest.raises(InvalidPayload):
        kit.lot(containers=-1)


def test_lot_units_must_convert_to_the_materials(kit):
    material = kit.material(units="kg", density=None)
    with pytest.raises(InvalidPayload) as excinfo:
        kit.lot(material=material, units="cm3")
    assert "density" in error(excinfo)
    assert kit.get(kit.lot(material=material, units="lb"))["units"] == "lb"


def test_purchase_order_number_is_unique_per_bureau_and_counts_received_lots(kit):
    material = kit.material()
    po = kit.create("material-purchase-order", {"external_id": "PO-1", "material": material,
                                                "planned_full_quantity": 100.0})
    with pytest.raises(InvalidPayload) as excinfo:
        kit.create("material-purchase-order", {"external_id": "po-1", "material": material,
                                               "planned_full_quantity": 1.0})
    assert "already exists" in error(excinfo)
    kit.bureau = OTHER_BUREAU  # another bureau may use the same number
    kit.create("material-purchase-order", {"external_id": "PO-1", "material": kit.material(),
                                           "planned_full_quantity": 1.0})
    kit.bureau = Kit().bureau

    on_order = kit.lot(material=material, material_purchase_order=po, status="on_order", containers=2, size=10.0)
    received = kit.lot(material=material, material_purchase_order=po, containers=1, size=5.0)
    assert kit.get(po)["delivered_quantity"] == 5.0  # Q9: received lots only
    assert kit.get(on_order)["material_purchase_order_external_id"] == "PO-1"

    with pytest.raises(InvalidPayload) as excinfo:
        kit.create("material-lot-action", {"action_type": "receive_lot", "material_lot": on_order})
    assert excinfo.value.field == "notes"
    kit.create("material-lot-action", {"action_type": "receive_lot", "material_lot": on_order, "notes": "arrived"})
    lot = kit.get(on_order)
    assert lot["status"] == "received" and lot["actual_delivery_date"]
    assert kit.get(po)["delivered_quantity"] == 25.0
    with pytest.raises(InvalidPayload):
        kit.create("material-lot-action", {"action_type": "receive_lot", "material_lot": received, "notes": "again"})


def test_a_lot_of_another_material_cannot_join_the_po(kit):
    po = kit.create("material-purchase-order", {"external_id": "PO-2", "material": kit.material(),
                                                "planned_full_quantity": 1.0})
    with pytest.raises(InvalidPayload) as excinfo:
        kit.lot(material=kit.material(name="PA12", units="gram"), material_purchase_order=po)
    assert excinfo.value.field == "material_purchase_order"


@pytest.mark.parametrize("start,moves,refused", [
    ("received", ["in_testing", "available", "in_storage", "available"], ["in_use", "on_order", "done"]),
    ("on_order", ["return_to_supplier"], ["received", "available"]),
])
def test_lot_status_machine(kit, start, moves, refused):
    lot_path = kit.lot(status=start)
    _, uuid = lot_path.strip("/").split("/")
    for status in moves:
        kit.app.update("material-lot", uuid, {"status": status}, kit.ctx())
        assert kit.get(lot_path)["status"] == status
    for status in refused:
        with pytest.raises(InvalidPayload) as excinfo:
            kit.app.update("material-lot", uuid, {"status": status}, kit.ctx())
        assert error(excinfo) == "Provided status transformation is not allowed."


def test_a_lot_goes_in_use_with_its_first_initial_batch(kit):
    lot_path = kit.lot()
    _, uuid = lot_path.strip("/").split("/")
    kit.app.update("material-lot", uuid, {"status": "available"}, kit.ctx())
    batch = kit.initial_batch(lot_path, count=1)
    lot = kit.get(lot_path)
    assert lot["status"] == "in_use" and lot["initial_batches"] == [batch]
    assert len(lot["containers_available_for_initial_batches"]) == 3


def test_an_on_order_lot_cannot_seed_a_batch(kit):
    lot_path = kit.lot(status="on_order")
    with pytest.raises(InvalidPayload) as excinfo:
        kit.initial_batch(lot_path)
    assert "on_order" in error(excinfo)


def test_lot_actions_change_unused_containers_only(kit):
    lot_path = kit.lot(containers=2, size=10.0)
    kit.create("material-lot-action", {"action_type": "add_containers", "material_lot": lot_path,
                                       "metadata": {"number_of_containers": 2, "size_of_container": 5.0}})
    lot = kit.get(lot_path)
    assert lot["full_quantity"] == 30.0 and len(lot["containers_available_for_initial_batches"]) == 4
    unused = lot["containers_available_for_initial_batches"]
    kit.create("material-lot-action", {"action_type": "edit_containers_quantity", "material_lot": lot_path,
                                       "metadata": {"containers": unused[2:], "quantity": 7.0}})
    assert kit.get(lot_path)["full_quantity"] == 34.0
    kit.create("material-lot-action", {"action_type": "delete_containers", "material_lot": lot_path,
                                       "metadata": {"containers": unused[3:]}})
    lot = kit.get(lot_path)
    assert lot["full_quantity"] == 27.0 and lot["quantity"] == 27.0 and len(
        lot["containers_available_for_initial_batches"]) == 3

    kit.act("create_initial_batch", containers=unused[:1])
    for action, metadata in (("edit_containers_quantity", {"containers": unused[:1], "quantity": 1.0}),
                             ("delete_containers", {"containers": unused[:1]})):
        with pytest.raises(InvalidPayload) as excinfo:  # Q16
            kit.create("material-lot-action", {"action_type": action, "material_lot": lot_path, "metadata": metadata})
        assert "already used" in error(excinfo)


def test_another_bureaus_lot_does_not_exist(kit):
    lot_path = kit.lot()
    kit.bureau = OTHER_BUREAU
    with pytest.raises(NotFound) as excinfo:
        kit.create("material-lot-action", {"action_type": "add_containers", "material_lot": lot_path,
                                           "metadata": {"number_of_containers": 1, "size_of_container": 1.0}})
    assert error(excinfo) == "The requested material_lot cannot be found."


def test_a_purchase_order_renamed_keeps_its_number_unique(kit):
    material = kit.material()
    first = kit.create("material-purchase-order", {"external_id": "PO-A", "material": material,
                                                   "planned_full_quantity": 1.0})
    kit.create("material-purchase-order", {"external_id": "PO-B", "material": material, "planned_full_quantity": 1.0})
    uuid = first.strip("/").split("/")[1]
    kit.app.update("material-purchase-order", uuid, {"external_id": "po-a"}, kit.ctx())  # its own number
    with pytest.raises(InvalidPayload) as excinfo:
        kit.app.update("material-purchase-order", uuid, {"external_id": "PO-B"}, kit.ctx())
    assert "already exists" in excinfo.value.title
    kit.app.update("material-purchase-order", uuid, {"external_id": "PO-C"}, kit.ctx())
    assert kit.get(first)["external_id"] == "PO-C"
