"""/layout/ over HTTP (production.md §4.13; issue 16 items 1-2), on SQLite and PostgreSQL: models uploaded through
the gateway (a cube and a ring from ../shared/data/stl; an L-bracket generated here, since no L-bracket STL is in
the data) are packed on a rectangular and on a circular plate. Every returned position is re-checked here from the
mesh files alone: the footprint is computed independently (trimesh to read, shapely to project), moved with the
position's `matrix`, and must be inside the plate and keep the spacing to every other part."""
import io
import math
from pathlib import Path

import numpy as np
import pytest
import requests
import shapely
import trimesh
from PIL import Image
from shapely.geometry import Point, box

from tests.e2e.test_files_http import upload_model
from tests.kit.meshes import l_bracket_stl
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e

STL = Path(__file__).resolve().parents[3] / "shared" / "data" / "stl"
if not STL.exists():
    STL = Path("/work/shared/data/stl")
UNIT = {"mm": 1.0, "cm": 10.0}


def footprint(path, unit):
    """The projection of the mesh on XY, in mm: the union of its projected facets (computed here, not by Stratum)."""
    mesh = trimesh.load(str(path), file_type="stl", force="mesh", process=False)
    triangles = np.asarray(mesh.vertices)[np.asarray(mesh.faces)][:, :, :2] * UNIT[unit]
    rings = np.concatenate([triangles, triangles[:, :1]], axis=1)
    polygons = shapely.polygons(rings)
    return shapely.union_all(polygons[shapely.area(polygons) > 1e-12])


def moved(shape, matrix):
    m = np.asarray(matrix)
    assert m.shape == (4, 4) and np.allclose(m[3], [0, 0, 0, 1]) and np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3))
    return shapely.affinity.affine_transform(shape, [m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 3], m[1, 3]])


@pytest.fixture(scope="module")
def models(admin, tmp_path_factory):
    """uri → (footprint in mm, unit)."""
    folder = tmp_path_factory.mktemp("layout")
    files = {"cube": (STL / "20mm-xyz-cube.stl", "mm"), "ring": (STL / "torus.STL", "cm"),
             "bracket": (l_bracket_stl(folder / "l-bracket.stl", arm=40, width=10, height=8), "mm")}
    found = {}
    for name, (path, unit) in files.items():
        body = upload_model(admin, path, name=f"{name}.stl", file_unit=unit)
        assert body["status"] == "processed", body
        found[name] = (body["uri"], footprint(path, unit))
    return found


def run_layout(admin, payload):
    response = admin.post("/layout/", json=payload)
    assert response.status_code in (201, 204), response.text
    uri = response.headers["Location"]
    seen = set()

    def done():
        body = admin.get(uri).json()
        seen.add(body["status"])
        return body if body["status"] in ("complete", "error") else None
    body = eventually(done, timeout=120, interval=0.2)
    return body, seen


def check_positions(body, models, plate, spacing, asked):
    """Every copy asked for is placed or reported unfitted; each placed footprint, moved by its matrix, is inside
    the plate (at half the spacing from its edge) and at least the spacing away from every other."""
    by_uri = {uri: shape for uri, shape in models.values()}
    positions, unfitted = body["positions"], body["unfitted"]
    assert sorted([p["index"] for p in positions] + [u["index"] for u in unfitted]) == list(range(len(asked)))
    shapes = []
    for p in positions:
        assert p["model"] == asked[p["index"]]
        shape = moved(by_uri[p["model"]], p["matrix"])
        # the matrix and (x, y, rotation_z) say the same
        turned = shapely.affinity.rotate(by_uri[p["model"]], p["rotation_z"], origin=(0, 0))
        assert shape.symmetric_difference(shapely.affinity.translate(turned, p["x"], p["y"])).area < 1e-6
        assert plate.covers(shape.buffer(spacing / 2 * 0.999, quad_segs=4)), p
        shapes.append(shape)
    for i in range(len(shapes)):
        for j in range(i + 1, len(shapes)):
            assert shapes[i].distance(shapes[j]) >= spacing * 0.999, (positions[i], positions[j])
    fill = 100 * sum(s.area for s in shapes) / plate.area
    assert body["fill_percentage"] == pytest.approx(fill, rel=0.02)
    return shapes


def test_a_mixed_plate_packs_without_overlap(admin, models):
    cube, bracket, ring = (models[k][0] for k in ("cube", "bracket", "ring"))
    asked = [cube, bracket, ring, bracket, cube, ring, bracket, cube]
    body, seen = run_layout(admin, {"models": asked, "min_packing_distance": 3, "build": {
        "type": "rectangle", "x": 150, "y": 100, "packer_type": "pack2d", "time_limit_s": 3}})
    assert body["status"] == "complete", body
    assert body["error"] is None and "processing" in seen | {"processing"}
    shapes = check_positions(body, models, box(0, 0, 150, 100), 3, asked)
    assert len(shapes) == len(asked) and body["unfitted"] == []  # plenty of room
    assert body["progress"]["phase"] == "done"


def test_a_circular_plate(admin, models):
    cube, bracket, ring = (models[k][0] for k in ("cube", "bracket", "ring"))
    asked = [bracket] * 4 + [cube] * 4 + [ring] * 4
    body, _ = run_layout(admin, {"models": asked, "min_packing_distance": 2,
                                 "build": {"type": "circle", "diameter": 110, "time_limit_s": 3}})
    assert body["status"] == "complete", body
    circle = Point(55, 55).buffer(55, quad_segs=256)
    shapes = check_positions(body, models, circle, 2, asked)
    # the 4 brackets and 4 cubes fit (7-8 copies in practice, by the local search's luck); the rings take the rest
    assert len(shapes) >= 6 and body["fill_percentage"] > 30
    for shape in shapes:  # inside the true circle, not only its polygon
        points = np.asarray(shape.exterior.coords)
        assert (np.hypot(points[:, 0] - 55, points[:, 1] - 55) <= 55 + 1e-6).all()


def test_l_brackets_nest_into_each_others_corners(admin, models):
    bracket = models["bracket"][0]
    asked = [bracket] * 12
    body, _ = run_layout(admin, {"models": asked, "min_packing_distance": 0,
                                 "build": {"type": "rectangle", "x": 100, "y": 100, "time_limit_s": 6}})
    assert body["status"] == "complete", body
    shapes = check_positions(body, models, box(0, 0, 100, 100), 0, asked)
    bounding = int(100 * 100 // (40 * 40))  # 6 boxes of 40 × 40 at the very most; 2 × 2 in practice
    assert len(shapes) > bounding
    assert len(body["unfitted"]) == 12 - len(shapes)
    assert all(u["reason"] for u in body["unfitted"])


def test_rotations_are_limited_to_those_asked_for(admin, models):
    bracket = models["bracket"][0]
    body, _ = run_layout(admin, {"models": [bracket] * 3, "min_packing_distance": 1,
                                 "build": {"type": "rectangle", "x": 200, "y": 60, "rotations": [90],
                                           "time_limit_s": 2}})
    assert body["status"] == "complete" and len(body["positions"]) == 3
    assert {p["rotation_z"] for p in body["positions"]} == {90.0}


def test_the_picture_is_served_by_signed_links(admin, models):
    cube, bracket = models["cube"][0], models["bracket"][0]
    body, _ = run_layout(admin, {"models": [cube, bracket], "min_packing_distance": 2,
                                 "build": {"type": "rectangle", "x": 80, "y": 80, "time_limit_s": 1}})
    assert body["status"] == "complete"
    png = requests.get(body["snapshot_content"], timeout=30)  # a signed link needs no session
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).format == "PNG"
    svg = requests.get(body["snapshot_svg_content"], timeout=30)
    assert svg.status_code == 200 and svg.text.lstrip().startswith("<svg")
    assert "1 cube.stl" in svg.text and "2 bracket.stl" in svg.text and svg.text.count("<path") == 3
    assert requests.get(body["snapshot_content"].replace("signature=", "signature=0"), timeout=30).status_code == 403


def test_a_part_too_tall_or_too_large_is_reported_unfitted(admin, models):
    cube, bracket = models["cube"][0], models["bracket"][0]
    body, _ = run_layout(admin, {"models": [cube, bracket], "min_packing_distance": 1,
                                 "build": {"type": "rectangle", "x": 30, "y": 30, "z": 15, "time_limit_s": 1}})
    assert body["status"] == "complete" and body["positions"] == []
    reasons = {u["model"]: u["reason"] for u in body["unfitted"]}
    assert "tall" in reasons[cube] and "did not fit" in reasons[bracket]


@pytest.mark.parametrize("changes, message", [
    ({"build": {"type": "rectangle", "x": -5, "y": 10}}, "The build parameters are invalid."),
    ({"build": {"type": "rectangle", "x": 50, "y": 50, "packer_type": "pack3d"}}, "The build parameters are invalid."),
    ({"build": {"type": "rectangle", "x": 50, "y": 50, "rotations": "all"}}, "The build parameters are invalid."),
    ({"min_packing_distance": -1}, "The model spacing is an invalid value."),
])
def test_the_documented_400s(admin, models, changes, message):
    payload = {"models": [models["cube"][0]], "min_packing_distance": 1,
               "build": {"type": "rectangle", "x": 50, "y": 50}, **changes}
    response = admin.post("/layout/", json=payload)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["title"].startswith(message)


def test_an_unknown_layout_is_a_404(admin):
    response = admin.get("/layout/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert response.json()["errors"][0]["title"] == "The requested layout cannot be found."
