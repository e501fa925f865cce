"""Genealogy on read (materials.md §3.12, §5): the trees are walked from the edges the batch actions wrote, when asked;
nothing is rebuilt or stored on write; a batch reached twice (a diamond, a top-off cycle) is expanded once; another
bureau's batch is not found; genealogy documents an earlier release stored still load."""
import uuid

import pytest

from shared.errors import NotFound
from shared.uris import parse_uri
from tests.unit.materials_kit import OTHER_BUREAU, Kit

PRINTER = "/printer/44444444-4444-4444-4444-444444444444/"
OTHER_PRINTER = "/printer/66666666-6666-6666-6666-666666666666/"
PRINTER_TYPE = "/printer-type/55555555-5555-5555-5555-555555555555/"
PRINTERS = {PRINTER: {"printer_type": PRINTER_TYPE}, OTHER_PRINTER: {"printer_type": PRINTER_TYPE}}


@pytest.fixture
def kit():
    kit = Kit()
    yield kit
    kit.close()


@pytest.fixture
def batch(kit):
    """An initial batch of 4 × 10 kg."""
    return kit.initial_batch(kit.lot(containers=4, size=10.0))


def nodes(tree, key):
    """Every node of a tree, depth first."""
    for node in tree:
        yield node
        yield from nodes(node[key], key)


def test_trees_both_ways(kit, batch):
    child = kit.act("split_batch", batch, 10.0)
    lot = kit.get(batch)["material_lots"][0]
    fresh = kit.initial_batch(kit.lot(material=kit.get(lot)["material"], containers=1, size=10.0))
    blend = kit.act("blend_batches", child, batches=[fresh])
    genealogy = kit.genealogy(blend)
    assert genealogy["target_batch"] == blend
    parents = {node["source_batch"]: node for node in genealogy["parents_tree"]}
    assert set(parents) == {child, fresh}
    assert parents[child]["quantity"] == 10.0 and parents[child]["destination_batch"] == blend
    assert parents[child]["parents"][0]["source_batch"] == batch  # up to the initial batch …
    root = parents[child]["parents"][0]["parents"][0]
    assert root["source_batch"] is None and root["material_lots"] == [lot]  # … and its lot
    assert root["quantity"] == 40.0 and len(root["containers"]) == 4
    assert parents[fresh]["parents"][0]["material_lots"] == kit.get(fresh)["material_lots"]
    assert {b["uri"] for b in genealogy["batches"]} == {blend, child, fresh, batch}
    assert {a["action_type"] for a in genealogy["actions"]} == {"blend_batches", "split_batch",
                                                                "create_initial_batch"}
    assert all(a["uri"].startswith("/material-batch-action/") for a in genealogy["actions"])
    top = kit.genealogy(batch)
    assert top["children_tree"][0]["destination_batch"] == child
    assert top["children_tree"][0]["children"][0]["destination_batch"] == blend
    assert top["parents_tree"][0]["source_batch"] is None
    links = [e["fields"] for e in kit.app.feed(1, 500)["events"] if e["resource"] == "material-batch-linking"]
    assert {(link["source_batch"], link["destination_batch"], link["quantity"]) for link in links} >= {
        (batch, child, 10.0), (child, blend, 10.0), (fresh, blend, 10.0)}


def test_nothing_is_stored_on_write(kit, batch):
    kit.act("split_batch", batch, 10.0)
    topics = {n.topic for n in kit.app.recorder.select_notifications(start=1, limit=10_000)}
    assert not [t for t in topics if "material-genealogy" in t]


def test_a_batch_reached_twice_is_expanded_once(kit, batch):
    left = kit.act("split_batch", batch, 10.0)
    right = kit.act("split_batch", batch, 10.0)
    blend = kit.act("blend_batches", left, batches=[right])
    parents = list(nodes(kit.genealogy(blend)["parents_tree"], "parents"))
    reaching = [n for n in parents if n["source_batch"] == batch]
    assert len(reaching) == 2  # both edges into the diamond's top are shown …
    assert sorted(len(n["parents"]) for n in reaching) == [0, 1]  # … its own edges once
    children = list(nodes(kit.genealogy(batch)["children_tree"], "children"))
    assert sorted(n["destination_batch"] for n in children) == sorted([left, right, blend, blend])
    assert sorted(len(n["children"]) for n in children if n["destination_batch"] == blend) == [0, 0]


def test_a_top_off_cycle_ends(kit, batch):
    """Two loaded batches topping each other off make a cycle of edges: the walk still ends."""
    other = kit.act("split_batch", batch, 20.0)
    kit.act("machine_load", batch, 5.0, printer=PRINTER, printers=PRINTERS)
    kit.act("machine_load", other, 5.0, printer=OTHER_PRINTER, printers=PRINTERS)
    kit.act("machine_top_off", batch, 1.0, batch_to_load=other)
    kit.act("machine_top_off", other, 1.0, batch_to_load=batch)
    genealogy = kit.genealogy(batch)
    parents = list(nodes(genealogy["parents_tree"], "parents"))
    assert {(n["source_batch"], n["destination_batch"]) for n in parents} == {
        (None, batch), (other, batch), (batch, other)}
    children = list(nodes(genealogy["children_tree"], "children"))
    assert {(n["source_batch"], n["destination_batch"]) for n in children} == {(batch, other), (other, batch)}
    assert {b["uri"] for b in genealogy["batches"]} == {batch, other}


def test_another_bureaus_batch_is_not_found(kit, batch):
    with pytest.raises(NotFound) as excinfo:
        kit.genealogy(batch, bureau=OTHER_BUREAU)
    assert excinfo.value.title == "The requested material-genealogy cannot be found."
    with pytest.raises(NotFound):
        kit.app.genealogy(str(uuid.uuid4()), {"platform_admin": True})
    with pytest.raises(NotFound):
        kit.app.genealogy("not-a-uuid", {"platform_admin": True})
    assert kit.genealogy(batch, bureau=kit.bureau)["target_batch"] == batch


def test_documents_an_earlier_release_stored_still_load(kit, batch):
    """Before the trees were built on read, each batch's genealogy was stored as a /material-genealogy/ resource (the
    generic resource class, topic materials/material-genealogy): such events load, and are not what is answered."""
    old_id = uuid.uuid5(uuid.NAMESPACE_URL, f"stratum:material-genealogy:{parse_uri(batch)[1]}")
    stored = {"target_batch": batch, "parents_tree": [], "children_tree": [], "batches": [], "actions": []}
    old = kit.app.aggregates["material-genealogy"].create(old_id, stored, kit.bureau, "/users/1/")
    old.update({"children_tree": [{"uri": "/material-batch-linking/x/"}]}, "/users/1/")
    kit.app.save(old)
    topics = [n.topic for n in kit.app.recorder.select_notifications(start=1, limit=10_000)
              if "material-genealogy" in n.topic]
    assert topics == ["materials/material-genealogy/Created", "materials/material-genealogy/Updated"]
    loaded = kit.app.repository.get(old_id)
    assert loaded.fields["target_batch"] == batch and loaded.fields["children_tree"][0]["uri"]
    assert kit.app.feed(1, 500)["events"]  # the feed still reads past them
    assert kit.genealogy(batch)["parents_tree"][0]["source_batch"] is None  # the answer is walked, not stored
