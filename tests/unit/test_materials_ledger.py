"""The batch-action ledger (materials.md §4): each action type's effect on the batches it touches, the quantity
invariants Q1–Q20 with errors naming the batch and the numbers, unit conversion (§2.1), the expected version
(`previous_action`, 409) and other bureaus' batches (404). The genealogy: tests/unit/test_materials_genealogy.py."""
import pytest

from shared.errors import Conflict, InvalidPayload, NotFound
from shared.uris import parse_uri
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
    """An initial batch of 4 × 10 kg."""
    return kit.initial_batch(kit.lot(containers=4, size=10.0))


def quantities(kit, path):
    b = kit.get(path)
    assert b["quantity"] == pytest.approx(b["reserved_quantity"] + b["quantity_available_for_actions"])  # Q1
    return b["quantity"], b["reserved_quantity"], b["quantity_available_for_actions"]


def ledger_sum(kit, batch_path):
    """Σ of the batch's ledger: every action's recorded change of this batch's quantity."""
    total = 0.0
    for notification in kit.app.recorder.select_notifications(start=1, limit=10_000):
        if notification.topic.startswith("materials/material-batch-action/"):
            event = kit.app.mapper.to_domain_event(notification)
            total += (getattr(event, "fields", None) or {}).get("_effects", {}).get(batch_path, 0.0)
    return total


def test_initial_batch(kit, batch):
    b = kit.get(batch)
    assert quantities(kit, batch) == (40.0, 0.0, 40.0)
    assert b["status"] == "new" and b["powder_quality"] == "new" and b["usage_cycles"] == 0
    assert b["is_initial_batch"] is True and b["initial_batch"] == batch and b["units"] == "kg"
    assert len(b["containers"]) == 4 and b["material_in_containers"] is True
    for container in b["containers"]:
        c = kit.get(container)
        assert c["current_batch"] == batch and c["used_in_batches"] == [batch] and c["status"] == "in_use"
        assert c["is_available_for_initial_batches"] is False
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("create_initial_batch", containers=b["containers"][:1])
    assert "already used" in excinfo.value.title
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("split_batch", None, 1.0)
    assert excinfo.value.title == "'source_batch' is required for split_batch."  # Q14


def test_split_moves_quantity_and_containers(kit, batch):
    moved = kit.get(batch)["containers"][:2]
    new = kit.act("split_batch", batch, 15.0, containers=moved)
    assert quantities(kit, batch) == (25.0, 0.0, 25.0)
    assert quantities(kit, new) == (15.0, 0.0, 15.0)
    n = kit.get(new)
    assert n["containers"] == moved and n["source_material_batches"] == [batch] and n["initial_batch"] == batch
    assert n["material_lots"] == kit.get(batch)["material_lots"] and n["is_initial_batch"] is False
    assert kit.get(moved[0])["current_batch"] == new
    with pytest.raises(InvalidPayload) as excinfo:  # Q3
        kit.act("split_batch", batch, 25.5)
    assert excinfo.value.title == (f"The batch {batch} has 25 kg available for actions; split_batch needs 25.5 kg.")
    kit.act("split_batch", batch, 25.0)
    assert kit.get(batch)["status"] == "done"


def test_load_top_off_unload_sieve(kit, batch):
    fresh = kit.initial_batch(kit.lot(containers=1, size=10.0))
    kit.act("machine_load", batch, 30.0, printer=PRINTER, printers=PRINTERS)
    b = kit.get(batch)
    assert quantities(kit, batch) == (40.0, 30.0, 10.0) and b["status"] == "in_use" and b["at_machine"] == PRINTER
    with pytest.raises(InvalidPayload):
        kit.act("scrap_batch", batch)  # loaded material cannot be scrapped
    kit.act("machine_top_off", batch, 4.0, batch_to_load=fresh)
    assert quantities(kit, batch) == (44.0, 34.0, 10.0)
    assert quantities(kit, fresh) == (6.0, 0.0, 6.0)
    assert kit.get(batch)["full_quantity"] == 44.0  # Q5
    assert len(kit.get(batch)["material_lots"]) == 2
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("machine_unload_chamber", batch, 35.0)
    assert excinfo.value.title == (f"The batch {batch} has 34 kg in the machine; machine_unload_chamber cannot "
                                   "return 35 kg.")
    kit.act("machine_unload_chamber", batch, 20.0)  # 14 kg went into the parts
    b = kit.get(batch)
    assert quantities(kit, batch) == (30.0, 0.0, 30.0)
    assert b["status"] == "idle" and b["at_machine"] is None and b["powder_quality"] == "unsieved"
    assert b["usage_cycles"] == 1
    kit.act("sieve", batch, sieved_quantity=29.5)
    assert quantities(kit, batch) == (29.5, 0.0, 29.5) and kit.get(batch)["powder_quality"] == "sieved"
    rels = [r for r in kit.app.feed(1, 500)["events"] if r["resource"] == "printer-type-batch-relationship"]
    assert {(r["fields"]["material_batch"], r["fields"]["printer_type"]) for r in rels} == {
        (batch, PRINTER_TYPE), (fresh, PRINTER_TYPE)}
    assert ledger_sum(kit, batch) == pytest.approx(29.5) and ledger_sum(kit, fresh) == pytest.approx(6.0)


def test_hopper_unload_keeps_quality_and_cycles(kit, batch):
    kit.act("machine_load", batch, 10.0, printer=PRINTER, printers=PRINTERS)
    kit.act("machine_unload_hopper", batch, 10.0)
    b = kit.get(batch)
    assert b["powder_quality"] == "new" and b["usage_cycles"] == 0 and b["status"] == "idle"
    assert quantities(kit, batch) == (40.0, 0.0, 40.0)


def test_an_unknown_printer_is_not_found(kit, batch):
    with pytest.raises(NotFound):
        kit.act("machine_load", batch, 1.0, printer=PRINTER, printers={PRINTER: None})
    with pytest.raises(InvalidPayload):
        kit.act("machine_load", batch, 1.0)


def test_blend_with_unit_conversion(kit, batch):
    material = kit.get(kit.get(batch)["material_lots"][0])["material"]
    in_grams = kit.initial_batch(kit.lot(material=material, units="gram", containers=1, size=2500.0))
    kit.act("machine_load", batch, 5.0, printer=PRINTER, printers=PRINTERS)
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("blend_batches", batch, 40.0, batches=[in_grams])
    assert "hold 37.5 kg available, not 40 kg" in excinfo.value.title
    result = kit.act("blend_batches", batch, 37.5, batches=[in_grams])
    assert quantities(kit, result) == (37.5, 0.0, 37.5)
    assert quantities(kit, batch) == (5.0, 5.0, 0.0)  # the loaded part stays in the machine
    assert quantities(kit, in_grams) == (0.0, 0.0, 0.0) and kit.get(in_grams)["status"] == "done"
    r = kit.get(result)
    assert sorted(r["source_material_batches"]) == sorted([batch, in_grams]) and len(r["material_lots"]) == 2
    assert len(r["containers"]) == 5


def test_blend_takes_the_oldest_cycles_and_worst_quality(kit, batch):
    other = kit.initial_batch(kit.lot(material=kit.get(kit.get(batch)["material_lots"][0])["material"],
                                      containers=1, size=10.0))
    kit.act("machine_load", other, 10.0, printer=PRINTER, printers=PRINTERS)
    kit.act("machine_unload_chamber", other, 8.0)
    result = kit.act("blend_batches", batch, batches=[other])
    r = kit.get(result)
    assert r["usage_cycles"] == 1 and r["powder_quality"] == "unsieved" and r["quantity"] == 48.0
    assert len([e for e in kit.app.feed(1, 500)["events"] if e["resource"] == "printer-type-batch-relationship"
                and e["fields"]["material_batch"] == result]) == 1


def test_blend_needs_one_material(kit, batch):
    other = kit.initial_batch(kit.lot(material=kit.material(name="PA12"), containers=1))
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("blend_batches", batch, batches=[other])
    assert "different materials" in excinfo.value.title


def test_test_edit_scrap(kit, batch):
    kit.act("test", batch, 0.5, sample_name="tensile")
    assert quantities(kit, batch) == (39.5, 0.0, 39.5)
    samples = [e for e in kit.app.feed(1, 500)["events"] if e["resource"] == "sample"]
    assert samples[0]["fields"]["name"] == "tensile" and samples[0]["fields"]["material_batch"] == batch
    kit.act("edit_batch_quantity", batch, 41.0, reason="weighed")
    assert quantities(kit, batch) == (41.0, 0.0, 41.0) and kit.get(batch)["full_quantity"] == 41.0
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("scrap_batch", batch, 3.0)
    assert "full quantity in the batch" in excinfo.value.title
    kit.act("scrap_batch", batch)
    b = kit.get(batch)
    assert quantities(kit, batch) == (0.0, 0.0, 0.0) and b["status"] == "done" and b["powder_quality"] == "done"
    assert b["containers"] == []
    lot = kit.get(b["material_lots"][0])
    assert lot["quantity"] == 0.0 and lot["full_quantity"] == 40.0
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("sieve", batch)
    assert "is done" in excinfo.value.title
    kit.act("edit_batch_details", batch, notes="kept for the record")  # details stay editable
    assert kit.get(batch)["notes"] == "kept for the record"


def test_edit_quantity_keeps_reserved(kit, batch):
    kit.act("machine_load", batch, 30.0, printer=PRINTER, printers=PRINTERS)
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("edit_batch_quantity", batch, 20.0)
    assert excinfo.value.title == f"The batch {batch} has 30 kg reserved; its quantity cannot be 20 kg."


def test_relocate_details_and_lot_details(kit, batch):
    place = kit.location("Annex")
    sub = kit.create("sub-location", {"name": "Cage", "location": place, "bureau": kit.bureau})
    kit.act("relocate", batch, location=place, sub_location=sub)
    b = kit.get(batch)
    assert b["location"] == place and b["sub_location"] == sub and b["location_name"] == "Annex"
    assert kit.get(b["containers"][0])["sub_location"] == sub
    with pytest.raises(InvalidPayload):
        kit.act("relocate", batch, sub_location=sub, location=kit.location("Elsewhere"))
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("edit_batch_details", batch, quantity=3)
    assert excinfo.value.field == "metadata"
    kit.act("edit_batch_details", batch, custom_status="QA hold", external_build_id="B-7")
    assert kit.get(batch)["custom_status"] == "QA hold"
    kit.act("edit_lot_details", batch, expiration_date="2020-01-01T00:00:00+00:00")
    with pytest.raises(InvalidPayload) as excinfo:  # Q11
        kit.act("machine_load", batch, 1.0, printer=PRINTER, printers=PRINTERS)
    assert "expired" in excinfo.value.title


def test_usage_cycles_limit(kit):
    batch = kit.initial_batch(kit.lot(containers=1, size=10.0, usage_cycles_limit=1))
    kit.act("machine_load", batch, 5.0, printer=PRINTER, printers=PRINTERS)
    kit.act("machine_unload_chamber", batch, 5.0)
    with pytest.raises(InvalidPayload) as excinfo:  # Q12
        kit.act("machine_load", batch, 1.0, printer=PRINTER, printers=PRINTERS)
    assert excinfo.value.title == f"The batch {batch} has been used 1 times; its lots allow 1."


def test_add_container_and_containerize(kit, batch):
    lot = kit.get(kit.get(batch)["material_lots"][0])
    spare = kit.lot(material=lot["material"], containers=1, size=5.0)
    kit.act("add_container", batch, containers=kit.get(spare)["containers_available_for_initial_batches"])
    assert quantities(kit, batch) == (45.0, 0.0, 45.0) and len(kit.get(batch)["material_lots"]) == 2
    kit.act("machine_load", batch, 45.0, printer=PRINTER, printers=PRINTERS)
    assert kit.get(batch)["material_in_containers"] is False and kit.get(batch)["containers"] == []
    kit.act("machine_unload_chamber", batch, 44.0)
    with pytest.raises(InvalidPayload) as excinfo:
        kit.act("containerize_batch", batch, containers=[{"quantity": 40.0}])
    assert "hold 40 kg; the batch" in excinfo.value.title
    kit.act("containerize_batch", batch, containers=[{"quantity": 40.0}, {"quantity": 4.0, "name": "rest"}])
    b = kit.get(batch)
    assert b["material_in_containers"] is True and len(b["containers"]) == 2 and b["quantity"] == 44.0
    internal = kit.get(b["containers"][1])
    assert internal["material_lot"] is None and internal["name"] == "rest" and internal["quantity"] == 4.0
    assert internal["printer_type_relationships"] == [PRINTER_TYPE]


def test_dose_modules_and_deferred_builds(kit, batch):
    module = kit.create("material-container", {"type": "dose", "name": "Dose 1"})
    kit.act("machine_load", batch, 40.0, printer=PRINTER, printers=PRINTERS)
    kit.act("machine_unload_hopper", batch, 40.0)
    kit.act("containerize_batch", batch, containers=[{"quantity": 40.0}])
    with pytest.raises(InvalidPayload):
        kit.act("dock_dose_module", batch, container=module, workstation=PRINTER, printers=PRINTERS)
    # a module holding the batch: the batch's own (internal) container reclassified as a dose module
    own = kit.get(batch)["containers"][0]
    kit.app.update("material-container", parse_uri(own)[1], {"type": "dose"}, kit.ctx())
    kit.act("dock_dose_module", batch, container=own, workstation=PRINTER, printers=PRINTERS)
    assert kit.get(own)["is_docked"] is True and kit.get(batch)["at_machine"] == PRINTER
    kit.act("undock_dose_module", batch, container=own)
    assert kit.get(own)["is_docked"] is False and kit.get(batch)["at_machine"] is None
    kit.act("defer_modular_build", batch, 12.0, external_build_id="MLINE-1")
    assert quantities(kit, batch) == (40.0, 12.0, 28.0)
    transactions = [e for e in kit.app.feed(1, 500)["events"] if e["resource"] == "material-batch-action-transaction"]
    assert transactions[0]["fields"]["quantity"] == 12.0 and transactions[0]["fields"]["is_complete"] is False


def test_previous_action_is_the_expected_version(kit, batch):
    first = kit.act("split_batch", batch, 1.0)
    action = [e for e in kit.app.feed(1, 500)["events"] if e["resource"] == "material-batch-action"][-1]
    seen = f"/material-batch-action/{action['uuid']}/"
    assert action["fields"]["previous_action"] is not None
    kit.act("test", batch, 1.0, previous_action=seen)  # as the client saw it: accepted
    before = kit.get(batch)
    with pytest.raises(Conflict) as excinfo:
        kit.act("test", batch, 1.0, previous_action=seen)  # someone else got there first
    assert excinfo.value.status == 409 and "latest action is" in excinfo.value.title
    assert kit.get(batch) == before and first


def test_another_bureaus_batch_is_not_found(kit, batch):
    kit.bureau = OTHER_BUREAU
    with pytest.raises(NotFound) as excinfo:
        kit.act("split_batch", batch, 1.0)
    assert excinfo.value.title == "The requested material batch cannot be found."
    mine = kit.initial_batch(kit.lot(material=kit.material(), containers=1))
    with pytest.raises(NotFound):
        kit.act("blend_batches", mine, batches=[batch])
