"""/create-runs/ and /packing-process/ over HTTP (production.md §2.2, §4.12, §4.14, flow F2; issue 16 items 3-4), on
SQLite and PostgreSQL, with the 20 mm calibration cube of ../shared/data/stl (20mm-xyz-cube.stl) as every piece's
model. A 60 × 60 mm plate with 5 mm spacing takes 2 × 2 cubes (each needs 25 mm), so six pieces overfill it:
`split-builds` makes two printing runs (4 + 2), `ignore` one run and two unfitted pieces. The sifting step batches
`by_number_of_parts`, so the second request's sifting prints infill the open sifting run the first one left. pack3d
stacks six cubes in one 60 × 60 × 50 mm powder bed (two layers). Every packed run's layout is re-checked here from
the mesh file alone (trimesh reads it, the position's matrix moves it)."""
import itertools
import io
from pathlib import Path

import numpy as np
import pytest
import requests
import trimesh
from PIL import Image

from services.production import create_runs
from tests.e2e.test_line_item_models import upload
from tests.e2e.test_production_http import created, error, unique
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e

STL = Path(__file__).resolve().parents[3] / "shared" / "data" / "stl"
if not STL.exists():
    STL = Path("/work/shared/data/stl")
CUBE = STL / "20mm-xyz-cube.stl"
SPACING = 5


@pytest.fixture(scope="module")
def config_overrides():
    return {"STRATUM_CREATE_RUNS_PACKING_SECONDS": "3"}  # each plate's search; the cubes need far less


class Bureau:
    def __init__(self, api):
        self.api = api
        maker = created(api, "/manufacturer/", {"name": unique("EOS")})
        location = created(api, "/location/", {"name": unique("Hall"), "address": "1 Loop Rd"})
        self.model = upload(api, CUBE)
        self.flat_type = created(api, "/printer-type/", {
            "name": unique("Flat"), "manufacturer": maker, "materials": [], "build_plate_shape": "rectangular",
            "build_volume": {"x": 60, "y": 60, "z": 100}, "min_packing_distance": SPACING,
            "build_packer_type": "pack2d"})
        self.bed_type = created(api, "/printer-type/", {
            "name": unique("Powder bed"), "manufacturer": maker, "materials": [], "build_plate_shape": "rectangular",
            "build_volume": {"x": 60, "y": 60, "z": 50}, "min_packing_distance": SPACING,
            "build_packer_type": "pack3d", "manufacturing_process": "SLS"})
        self.flat = created(api, "/printer/", {"name": unique("Flat #1"), "printer_type": self.flat_type,
                                               "location": location})
        self.bed = created(api, "/printer/", {"name": unique("Bed #1"), "printer_type": self.bed_type,
                                              "location": location})
        self.sift_type = created(api, "/post-processor-type/", {
            "name": unique("Sift"), "duration": 600, "batching_strategy": "by_number_of_parts",
            "number_of_parts": 40})
        self.sifter = created(api, "/post-processor/", {"name": unique("Sifter"), "post_processor_type": self.sift_type,
                                                        "location": location})
        sift = self.step(self.sift_type)
        self.flat_flow = created(api, "/workflow/", {"name": unique("Print, sift"), "process_steps": [
            self.step(self.flat_type), sift]})
        self.bed_flow = created(api, "/workflow/", {"name": unique("Sinter, sift"), "process_steps": [
            self.step(self.bed_type), sift]})

    def step(self, workstation_type):
        return created(self.api, "/process-step/", {"workstation_type_uri": workstation_type, "notes": "optional",
                                                    "success": "optional", "tracking_id": "hidden",
                                                    "upload": "hidden"})

    def pieces(self, quantity, workflow=None):
        order = created(self.api, "/order/", {"name": unique("cubes")})
        product = created(self.api, "/product/", {"order": order})
        item = created(self.api, "/line-item/", {"product": product, "model": self.model, "quantity": quantity,
                                                 "workflow": workflow or self.flat_flow})
        self.last_item = item
        eventually(lambda: self.api.get(item).json()["status"] == "pending", timeout=30)
        assert self.api.put(order, json={"status": "confirmed"}).status_code == 204

        def confirmed():
            found = self.api.get(f"/piece/?filter[line_item]={item}&per_page=100").json()["resources"]
            return len(found) == quantity and all(p["status"] == "confirmed" and p["current_print"] for p in found) \
                and sorted(found, key=lambda p: p["copy"])
        return [p["uri"] for p in eventually(confirmed, timeout=30)]

    def create_runs(self, pieces, printer=None, **fields):
        uri = created(self.api, "/create-runs/", {"pieces": pieces, "primary_workstation": printer or self.flat,
                                                  **fields})
        return self.finished(uri)

    def finished(self, uri):
        return eventually(lambda: (lambda b: b if b["status"] in ("complete", "error") else None)(
            self.api.get(uri).json()), timeout=120, interval=0.3)

    def get(self, uri):
        return self.api.get(uri).json()


@pytest.fixture(scope="module")
def bureau(admin):
    return Bureau(admin)


def cube_vertices():
    return np.asarray(trimesh.load(str(CUBE), file_type="stl", force="mesh").vertices)  # mm, read here


def placed_boxes(layout):
    """Each position's cube, moved by its matrix: its bounding box (low, high) in the build volume."""
    vertices = cube_vertices()
    boxes = []
    for p in layout["positions"]:
        m = np.asarray(p["matrix"])
        moved = vertices @ m[:3, :3].T + m[:3, 3]
        boxes.append((moved.min(axis=0), moved.max(axis=0)))
    return boxes


def assert_apart(boxes, volume, floor):
    """Inside the volume, half the spacing from its walls (the plate itself: `floor` mm), and the spacing apart."""
    for low, high in boxes:
        assert (low[:2] >= SPACING / 2 - 1e-6).all() and low[2] >= floor - 1e-6
        assert (high <= np.asarray(volume) - SPACING / 2 + 1e-6).all()
    for (a0, a1), (b0, b1) in itertools.combinations(boxes, 2):
        assert np.maximum(b0 - a1, a0 - b1).max() >= SPACING - 1e-6  # the spacing along some axis


def test_split_builds_makes_two_runs_and_infills_the_open_downstream_run(admin, bureau):
    first = bureau.create_runs(bureau.pieces(2), locked=False)
    assert first["status"] == "complete", first
    open_sift = first["resulting_runs"][1]
    assert bureau.get(open_sift)["pieces_locked"] is False and len(bureau.get(open_sift)["prints"]) == 2

    pieces = bureau.pieces(6)
    done = bureau.create_runs(pieces, on_packing_process_failure="split-builds", run_name="Cubes", priority=70)
    assert done["status"] == "complete", done
    assert done["unfitted_pieces"] == [] and done["pieces_count"] == 6 and done["finished"]
    assert done["printer_name"] == bureau.get(bureau.flat)["name"]
    printing = [bureau.get(r) for r in done["resulting_runs"] if bureau.get(r)["operation"] == "printing"]
    assert [len(r["prints"]) for r in printing] == [4, 2]  # the plate takes four cubes, the rest a second plate
    assert [r["name"] for r in printing] == ["Cubes", "Cubes (2)"] and done["primary_run"] == printing[0]["uri"]
    assert {(r["status"], r["printer"], r["priority"], r["pieces_locked"]) for r in printing} == {
        ("queued", bureau.flat, 70, True)}
    eventually(lambda: {printing[0]["uri"], printing[1]["uri"]} <= set(bureau.get(bureau.flat)["queue"]))
    # the sifting prints joined the open run (8 of its 40 parts); no new sifting run was needed
    assert open_sift in done["resulting_runs"] and done["resulting_runs_count"] == 3
    assert len(bureau.get(open_sift)["prints"]) == 8
    # every piece's printing print is in one of the two runs, and the pieces wait for printing
    in_runs = {p for r in printing for p in r["prints"]}
    assert {bureau.get(p)["current_print"] for p in pieces} == in_runs
    eventually(lambda: {bureau.get(p)["status"] for p in pieces} == {"queued-for-printing"})
    # each run keeps its plate: the layout (re-checked here) and its picture, and the packing process
    for run, count in zip(printing, (4, 2)):
        layout = bureau.get(run["layout"])
        assert layout["status"] == "complete" and len(layout["positions"]) == count
        assert sorted(p["model"] for p in layout["positions"]) == sorted(run["prints"])
        boxes = placed_boxes(layout)
        assert_apart(boxes, (60, 60, 100), floor=0)
        assert {round(float(low[2]), 4) for low, _ in boxes} == {0.0}  # pack2d: on the plate
        png = requests.get(layout["snapshot_content"], timeout=30)
        assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).format == "PNG"
        process = bureau.get(run["packing_process"])
        assert (process["status"], process["run"], process["create_runs"], process["layout"]) == (
            "complete", run["uri"], done["uri"], run["layout"])
    first_plate = bureau.get(printing[0]["packing_process"])
    assert len(first_plate["fitted_pieces"]) == 4 and len(first_plate["unfitted_pieces"]) == 2
    assert first_plate["fill_percentage"] == pytest.approx(4 * 400 / 3600 * 100, rel=0.05)


def available(api, printer):
    body = api.get(f"/line-item-available-for-run/?filter[available_for_printer]={printer}&per_page=100").json()
    return {row["uri"].rstrip("/").rsplit("/", 1)[1]: row for row in body["resources"]}


def test_ignore_leaves_what_did_not_fit_unscheduled(admin, bureau):
    pieces = bureau.pieces(6)
    item_uuid = bureau.last_item.rstrip("/").rsplit("/", 1)[1]
    row = eventually(lambda: available(admin, bureau.flat).get(item_uuid))  # the ADD RUN page lists it
    assert (row["available_quantity"], row["quantity"], row["available_for_printer"]) == (6, 6, [bureau.flat])
    assert row["dimensions"]["x"] == pytest.approx(20, abs=0.01) and row["size"] == pytest.approx(8000, rel=1e-3)
    assert item_uuid not in available(admin, bureau.bed)  # its prints are not at the powder bed's type
    done = bureau.create_runs(pieces)  # on_packing_process_failure defaults to ignore
    assert done["status"] == "complete", done
    assert len(done["unfitted_pieces"]) == 2 and set(done["unfitted_pieces"]) < set(pieces)
    assert "2 piece(s) did not fit the build plate" in done["notes"]
    primary = bureau.get(done["primary_run"])
    assert len(primary["prints"]) == 4
    for piece in done["unfitted_pieces"]:  # still available for a new run
        assert bureau.get(bureau.get(piece)["current_print"])["run"] is None
        assert bureau.get(piece)["status"] == "confirmed"
    eventually(lambda: available(admin, bureau.flat).get(item_uuid, {}).get("available_quantity") == 2)
    row = admin.get(f"/line-item-available-for-run/{item_uuid}/")
    assert row.status_code == 200 and row.json()["available_quantity"] == 2
    assert bureau.create_runs(done["unfitted_pieces"])["status"] == "complete"  # the rest, on a plate of their own
    eventually(lambda: item_uuid not in available(admin, bureau.flat))  # nothing left for a new run
    row = admin.get(f"/line-item-available-for-run/{item_uuid}/").json()
    assert (row["available"], row["available_quantity"], row["available_for_printer"]) == (False, 0, [])


def test_pack3d_stacks_the_cubes_in_one_powder_bed(admin, bureau):
    pieces = bureau.pieces(6, bureau.bed_flow)
    done = bureau.create_runs(pieces, printer=bureau.bed)
    assert done["status"] == "complete" and done["unfitted_pieces"] == [], done
    run = bureau.get(done["primary_run"])
    assert len(run["prints"]) == 6
    layout = bureau.get(run["layout"])
    boxes = placed_boxes(layout)
    assert_apart(boxes, (60, 60, 50), floor=SPACING / 2)
    assert len({round(float(low[2]), 3) for low, _ in boxes}) == 2  # two layers: four on the floor, two above
    volume = trimesh.load(str(CUBE), file_type="stl", force="mesh").volume
    assert layout["fill_percentage"] == pytest.approx(6 * volume / (60 * 60 * 50) * 100, rel=1e-3)
    assert all(len(p["box"]) == 6 for p in layout["positions"])


def test_a_packing_process_makes_its_run(admin, bureau):
    pieces = bureau.pieces(3)
    uri = created(admin, "/packing-process/", {"pieces": pieces, "printer": bureau.flat})
    process = eventually(lambda: (lambda b: b if b["status"] in ("complete", "error") else None)(
        bureau.get(uri)), timeout=120, interval=0.3)
    assert process["status"] == "complete" and process["run"] and process["create_runs"], process
    assert process["fitted_pieces"] == pieces and process["layout"]
    saga = bureau.finished(process["create_runs"])  # it goes on with the downstream runs after the plate
    assert (saga["status"], saga["primary_run"]) == ("complete", process["run"])
    assert bureau.get(process["run"])["packing_process"] == uri


def test_bad_requests_change_nothing(admin, bureau):
    pieces = bureau.pieces(1)
    response = admin.post("/create-runs/", json={"pieces": pieces, "primary_workstation": bureau.sifter})
    assert error(response, 400) == create_runs.NOT_A_PRINTER
    response = admin.post("/create-runs/", json={"pieces": pieces, "primary_workstation": bureau.bed})
    assert "is not done on this printer's type" in error(response, 400)
    response = admin.post("/create-runs/", json={"pieces": pieces, "primary_workstation": bureau.flat,
                                                 "on_packing_process_failure": "retry"})
    assert error(response, 400).startswith("'retry' is not a valid choice")
    assert bureau.get(bureau.get(pieces[0])["current_print"])["run"] is None
    missing = admin.get("/create-runs/00000000-0000-0000-0000-000000000000/")
    assert error(missing, 404) == "The requested runs creation process or related object cannot be found."
    assert admin.put(f"/create-runs/{'0' * 8}-0000-0000-0000-{'0' * 12}/", json={}).status_code in (404, 405)


def test_notify_user_mails_the_requester_what_did_not_fit(admin, bureau):
    from tests.kit.plugin import ADMIN_EMAIL

    done = bureau.create_runs(bureau.pieces(5), on_packing_process_failure="notify-user")
    assert done["status"] == "complete" and len(done["unfitted_pieces"]) == 1

    def mailed():
        found = admin.get("/notifications/?filter[template]=stratum.create_runs_finished&per_page=100").json()
        return [n for n in found["resources"] if n["context"].get("create_runs_uri", "").endswith(
            done["uri"].split("//", 1)[1].split("/", 1)[1])]
    notes = eventually(mailed, timeout=60)
    assert len(notes) == 1 and notes[0]["emails"] == [ADMIN_EMAIL]
    assert notes[0]["context"]["unfitted_count"] == 1 and notes[0]["context"]["pieces_count"] == 5


def test_a_piece_no_empty_plate_takes_stays_unfitted_under_split_builds(admin, bureau):
    maker = created(admin, "/manufacturer/", {"name": unique("Tiny")})
    tiny_type = created(admin, "/printer-type/", {
        "name": unique("Tiny"), "manufacturer": maker, "materials": [], "build_plate_shape": "rectangular",
        "build_volume": {"x": 15, "y": 15, "z": 100}, "min_packing_distance": SPACING})
    location = bureau.get(bureau.flat)["location"]
    tiny = created(admin, "/printer/", {"name": unique("Tiny #1"), "printer_type": tiny_type, "location": location})
    flow = created(admin, "/workflow/", {"name": unique("Tiny"), "process_steps": [bureau.step(tiny_type)]})
    pieces = bureau.pieces(2, flow)
    done = bureau.create_runs(pieces, printer=tiny, on_packing_process_failure="split-builds")
    assert done["status"] == "complete", done
    assert done["unfitted_pieces"] == pieces and done["primary_run"] is None and done["resulting_runs"] == []
    assert "not even an empty one" in done["notes"]
    plates = admin.get(f"/packing-process/?filter[create_runs]={done['uri']}").json()["resources"]
    assert len(plates) == 1 and plates[0]["status"] == "complete" and plates[0]["run"] is None  # one try, no loop
    assert plates[0]["unfitted_pieces"] == pieces
