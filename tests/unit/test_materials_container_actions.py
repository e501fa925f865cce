"""The container-action ledger (materials.md §3.7, §4 "Container-action side effects", §6.3): each action type's
effect on its container (quantity, status, current_batch, used_in_batches, place, docking, tare, type), the batch
action it writes with `from_container_action` (the batch ledger's arithmetic, so material is conserved), the 400s
that change nothing, the expected version (409) and another bureau's container (404)."""
import pytest

from shared.errors import Conflict, InvalidPayload, NotFound
from tests.unit.materials_kit import OTHER_BUREAU, Kit

PRINTER = "/printer/44444444-4444-4444-4444-444444444444/"
PRINTER_TYPE = "/printer-type/55555555-5555-5555-5555-555555555555/"
PRINTERS = {PRINTER: {"printer_type": PRINTER_TYPE}}


@pytest.fixture
def kit():
    kit = Kit()
    yield kit
    kit.close()


@pytest.fixture
def batch(kit):
    """An initial batch of 2 × 10 kg (lot containers)."""
    return kit.initial_batch(kit.lot(containers=2, size=10.0))


def can(kit, name="Can", kind="permanent", **fields):
    return kit.create("material-container", {"name": name, "type": kind, **fields})


def act(kit, kind, container, quantity=0.0, source=None, printers=None, **metadata):
    payload = {"action_type": kind, "source_material_container": container, "quantity": quantity,
               "metadata": metadata}
    if source:
        payload["source_batch"] = source
    extra = {"printers": printers} if printers is not None else {}
    return kit.app.create("material-container-action", payload, kit.ctx(**extra))["uri"]


def caused(kit, batch):
    """The batch's latest action, which a container action caused."""
    return kit.get(kit.aggregate(batch).fields["_last_action"])


def total(kit, *batches):
    return sum(kit.get(b)["quantity"] for b in batches)


def test_load_container_makes_the_loaded_material_a_batch_of_its_own_in_the_container(kit, batch):
    container = can(kit)
    action = act(kit, "load_container", container, 6.0, source=batch)
    c = kit.get(container)
    loaded = c["current_batch"]
    assert loaded != batch and c["used_in_batches"] == [loaded]
    assert (c["quantity"], c["full_quantity"], c["status"]) == (6.0, 6.0, "in_use")
    assert kit.get(loaded)["containers"] == [container] and kit.get(loaded)["material_in_containers"] is True
    assert (kit.get(loaded)["quantity"], kit.get(batch)["quantity"]) == (6.0, 14.0)  # moved, not made
    split = caused(kit, loaded)
    assert split["action_type"] == "split_batch" and split["from_container_action"] == action
    assert split["source_batch"] == batch and split["quantity"] == 6.0
    assert kit.get(loaded)["source_material_batches"] == [batch]  # the genealogy edge
    body = kit.get(action)
    assert body["source_batch"] == batch and body["metadata"]["batch"] == loaded
    assert body["parent_container_action"] is None
    assert body["materials"] == {"material_lots": kit.get(batch)["material_lots"], "material_names": ["Ti64"]}


def test_load_container_refusals_change_nothing(kit, batch):
    full = can(kit, "Full")
    act(kit, "load_container", full, 2.0, source=batch)
    cases = [
        (can(kit, "Empty"), 25.0, "has 18 kg available for actions; split_batch needs 25 kg"),
        (full, 1.0, "holds material of the batch"),
        (can(kit, "Empty 2"), 0.0, "needs a quantity of more than 0"),
        (kit.get(batch)["containers"][0], 1.0, "is disposable"),
        (can(kit, "Steel only", material_restrictions=[kit.material(name="316L")]), 1.0, "may hold only"),
    ]
    for container, quantity, text in cases:
        before = kit.get(batch), kit.get(container)
        with pytest.raises(InvalidPayload) as refused:
            act(kit, "load_container", container, quantity, source=batch)
        assert text in refused.value.title
        assert (kit.get(batch), kit.get(container)) == before


def test_top_off_container_adds_the_donor_to_the_container_batch(kit, batch):
    container = can(kit)
    act(kit, "load_container", container, 5.0, source=batch)
    held = kit.get(container)["current_batch"]
    donor = kit.initial_batch(kit.lot(containers=1, size=4.0))
    action = act(kit, "top_off_container", container, 3.0, source=donor)
    assert kit.get(container)["quantity"] == 8.0 and kit.get(container)["current_batch"] == held
    assert (kit.get(held)["quantity_available_for_actions"], kit.get(donor)["quantity"]) == (8.0, 1.0)
    top_off = caused(kit, held)
    assert top_off["action_type"] == "machine_top_off" and top_off["from_container_action"] == action
    assert top_off["metadata"]["batch_to_load"] == donor
    assert donor in kit.get(held)["source_material_batches"]
    assert set(kit.get(donor)["material_lots"]) <= set(kit.get(held)["material_lots"])
    with pytest.raises(InvalidPayload) as refused:
        act(kit, "top_off_container", can(kit, "Empty"), 1.0, source=donor)
    assert "holds no material" in refused.value.title


def test_transfer_moves_the_content_and_the_destination_records_its_side(kit, batch):
    first, second = can(kit, "A"), can(kit, "B")
    act(kit, "load_container", first, 4.0, source=batch)
    held = kit.get(first)["current_batch"]
    action = act(kit, "transfer_container", first, destination_container=second)
    a, b = kit.get(first), kit.get(second)
    assert (a["quantity"], a["status"], a["current_batch"]) == (0.0, "empty", None)
    assert (b["quantity"], b["status"], b["current_batch"]) == (4.0, "in_use", held)
    assert kit.get(held)["containers"] == [second] and kit.get(held)["quantity"] == 4.0
    child = kit.get(kit.aggregate(second).fields["_last_action"])
    assert child["parent_container_action"] == action and child["action_type"] == "load_container"
    assert child["quantity"] == 4.0
    with pytest.raises(InvalidPayload) as refused:
        act(kit, "transfer_container", second, destination_container=second)
    assert "into itself" in refused.value.title
    with pytest.raises(InvalidPayload) as refused:
        act(kit, "transfer_container", second)
    assert "metadata.destination_container" in refused.value.title


def test_split_container_splits_part_into_a_new_batch_and_container(kit, batch):
    first, second = can(kit, "A"), can(kit, "B")
    act(kit, "load_container", first, 8.0, source=batch)
    held = kit.get(first)["current_batch"]
    action = act(kit, "split_container", first, 3.0, destination_container=second)
    new = kit.get(second)["current_batch"]
    assert new not in (held, batch) and kit.get(new)["quantity"] == 3.0 and kit.get(held)["quantity"] == 5.0
    assert kit.get(first)["quantity"] == 5.0 and kit.get(second)["quantity"] == 3.0
    assert caused(kit, new)["from_container_action"] == action and caused(kit, new)["action_type"] == "split_batch"
    assert kit.get(action)["metadata"]["batch"] == new
    with pytest.raises(InvalidPayload) as refused:
        act(kit, "split_container", first, 6.0)
    assert "holds 5 kg" in refused.value.title
    assert total(kit, batch, held, new) == 20.0  # nothing made or lost


def test_scrap_container_scraps_the_whole_batch_or_its_share(kit, batch):
    whole, part = can(kit, "whole"), can(kit, "part")
    act(kit, "load_container", whole, 2.0, source=batch)
    alone = kit.get(whole)["current_batch"]
    action = act(kit, "scrap_container", whole)
    assert kit.get(alone)["status"] == "done" and kit.get(alone)["quantity"] == 0.0
    assert caused(kit, alone)["action_type"] == "scrap_batch" and caused(kit, alone)["from_container_action"] == action
    assert kit.get(whole)["status"] == "empty" and kit.get(action)["quantity"] == 2.0
    # a lot container of a batch with another container: only its share goes
    lot_container = kit.get(batch)["containers"][0]
    act(kit, "scrap_container", lot_container)
    assert kit.get(batch)["quantity"] == 8.0 and kit.get(batch)["status"] != "done"
    assert caused(kit, batch)["action_type"] == "edit_batch_quantity"
    assert lot_container not in kit.get(batch)["containers"] and kit.get(lot_container)["quantity"] == 0.0


def test_machine_load_loads_the_container_into_the_printer(kit, batch):
    container = can(kit)
    act(kit, "load_container", container, 5.0, source=batch)
    held = kit.get(container)["current_batch"]
    with pytest.raises(InvalidPayload) as refused:
        act(kit, "machine_load", container, printers=PRINTERS)
    assert "metadata.printer" in refused.value.title and kit.get(container)["quantity"] == 5.0
    action = act(kit, "machine_load", container, printers=PRINTERS, printer=PRINTER)
    b = kit.get(held)
    assert (b["at_machine"], b["reserved_quantity"], b["status"]) == (PRINTER, 5.0, "in_use")
    assert caused(kit, held)["action_type"] == "machine_load" and caused(kit, held)["from_container_action"] == action
    assert kit.get(container)["status"] == "empty" and kit.get(container)["current_batch"] is None
    assert kit.get(action)["metadata"]["printer"] == PRINTER


def test_sieve_relocate_and_unload(kit, batch):
    container = can(kit)
    act(kit, "load_container", container, 5.0, source=batch)
    held = kit.get(container)["current_batch"]
    act(kit, "sieve", container)
    assert kit.get(held)["powder_quality"] == "sieved" and caused(kit, held)["action_type"] == "sieve"
    annex = kit.location("Annex")
    act(kit, "relocate_container", container, location=annex)
    assert kit.get(container)["location"] == annex and kit.get(held)["location"] == annex  # its only container
    assert caused(kit, held)["action_type"] == "relocate"
    lot_container = kit.get(batch)["containers"][0]
    act(kit, "relocate_container", lot_container, location=annex)  # one of two: the batch stays
    assert kit.get(lot_container)["location"] == annex and kit.get(batch)["location"] != annex
    act(kit, "unload_container", container)
    assert kit.get(container)["status"] == "empty" and kit.get(held)["quantity"] == 5.0
    assert kit.get(held)["material_in_containers"] is False and kit.get(held)["containers"] == []
    with pytest.raises(InvalidPayload) as refused:
        act(kit, "unload_container", container)
    assert "holds no material" in refused.value.title


def test_modules_dock_undock_tare_and_reclassify(kit, batch):
    dose = can(kit, "Dose", "dose")
    act(kit, "load_container", dose, 5.0, source=batch)
    held = kit.get(dose)["current_batch"]
    act(kit, "dock_module", dose, printers=PRINTERS, workstation=PRINTER)
    assert (kit.get(dose)["is_docked"], kit.get(dose)["workstation_uri"]) == (True, PRINTER)
    assert kit.get(held)["at_machine"] == PRINTER and caused(kit, held)["action_type"] == "dock_dose_module"
    with pytest.raises(InvalidPayload) as refused:
        act(kit, "reclassify", dose, type="overflow")
    assert "undock it" in refused.value.title
    act(kit, "undock_module", dose)
    assert kit.get(dose)["is_docked"] is False and caused(kit, held)["action_type"] == "undock_dose_module"
    act(kit, "reclassify", dose, type="overflow")
    act(kit, "update_module_tare", dose, tare_weight=1250)
    assert (kit.get(dose)["type"], kit.get(dose)["tare_weight"]) == ("overflow", 1250.0)
    empty = can(kit, "Build", "build")
    act(kit, "dock_module", empty, workstation="/post-processor/66666666-6666-6666-6666-666666666666/")
    assert kit.get(empty)["is_docked"] is True
    for kind, container, metadata, text in (
            ("dock_module", can(kit, "Plain"), {"workstation": PRINTER}, "not a module"),
            ("reclassify", dose, {"type": "disposable"}, "'metadata.type' must be one of"),
            ("update_module_tare", dose, {"tare_weight": -1}, "'metadata.tare_weight'"),
            ("dock_module", can(kit, "Cyclone", "cyclone"), {"workstation": "/order/1/"}, "'metadata.workstation'")):
        with pytest.raises(InvalidPayload) as refused:
            act(kit, kind, container, **metadata)
        assert text in refused.value.title


def test_a_stale_expected_version_is_409_and_changes_nothing(kit, batch):
    container = can(kit)
    seen = act(kit, "load_container", container, 5.0, source=batch)
    act(kit, "sieve", container, previous_action=seen)
    before = kit.get(container)
    with pytest.raises(Conflict) as conflict:
        act(kit, "unload_container", container, previous_action=seen)
    assert conflict.value.status == 409 and "latest action is" in conflict.value.title
    assert kit.get(container) == before


def test_another_bureaus_container_is_404(kit, batch):
    container = can(kit)
    act(kit, "load_container", container, 5.0, source=batch)
    kit.bureau = OTHER_BUREAU
    with pytest.raises(NotFound):
        act(kit, "sieve", container)
