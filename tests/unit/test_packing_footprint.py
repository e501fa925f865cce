"""Footprints from real meshes (../shared/data/stl) and a generated L-bracket. Expected figures come from the mesh
files read independently (struct parsing for binary STL, plain numpy), never from the code under test."""
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from services.production.packing.footprint import grown, mesh_footprint, outline
from tests.kit.meshes import l_bracket, l_bracket_stl

STL = Path(__file__).resolve().parents[3] / "shared" / "data" / "stl"
if not STL.exists():
    STL = Path("/work/shared/data/stl")


def binary_stl_vertices(path):
    data = Path(path).read_bytes()
    count = struct.unpack_from("<I", data, 80)[0]
    rows = np.frombuffer(data, dtype=np.dtype([("n", "<3f4"), ("v", "<9f4"), ("a", "<u2")]), count=count, offset=84)
    return rows["v"].reshape(-1, 3, 3).astype(np.float64)


def test_the_cube_footprint_is_its_20_mm_square():
    vertices = binary_stl_vertices(STL / "20mm-xyz-cube.stl")
    (x0, y0, z0), (x1, y1, z1) = vertices.min(axis=(0, 1)), vertices.max(axis=(0, 1))
    assert (round(x1 - x0, 3), round(y1 - y0, 3)) == (20.0, 20.0)
    shape, rest_z, height = mesh_footprint(STL / "20mm-xyz-cube.stl")
    assert shape.symmetric_difference(box(x0, y0, x1, y1)).area < 1e-6
    assert shape.area == pytest.approx(400.0, abs=1e-3)  # float32 vertices
    assert rest_z == pytest.approx(-z0, abs=1e-6) and height == pytest.approx(z1 - z0, abs=1e-6)


def test_the_cube_grown_by_half_the_spacing_is_a_22_mm_square():
    shape, _, _ = mesh_footprint(STL / "20mm-xyz-cube.stl")
    bigger = grown(shape, 2.0)
    x0, y0, x1, y1 = shape.bounds
    assert bigger.symmetric_difference(box(x0 - 1, y0 - 1, x1 + 1, y1 + 1)).area < 1e-6


def test_an_l_bracket_footprint_is_an_l_not_its_bounding_box():
    shape = outline(l_bracket(40, 10, 10).triangles)
    expected = Polygon([(0, 0), (40, 0), (40, 10), (10, 10), (10, 40), (0, 40)])
    assert shape.symmetric_difference(expected).area < 1e-6
    assert shape.area == pytest.approx(700.0)  # 40×10 + 30×10, against 1600 for its box


def test_an_l_bracket_file_reads_to_the_same_l(tmp_path):
    shape, rest_z, height = mesh_footprint(l_bracket_stl(tmp_path / "l.stl", 40, 10, 12), "mm")
    assert shape.area == pytest.approx(700.0, abs=1e-3) and height == pytest.approx(12.0, abs=1e-4)


def test_the_torus_footprint_is_a_ring_with_its_hole():
    vertices = binary_stl_vertices(STL / "torus.STL")
    radial = np.hypot(vertices[:, :, 0], vertices[:, :, 1])
    outer, inner = radial.max(), radial.min()
    shape, _, _ = mesh_footprint(STL / "torus.STL")
    assert len(shape.interiors) == 1
    # a faceted torus: the outline is a polygon inscribed in the outer circle, the hole circumscribes the inner one
    assert shape.area == pytest.approx(math.pi * (outer ** 2 - inner ** 2), rel=0.03)
    assert not shape.contains(shape.centroid)


@pytest.mark.parametrize("name", ["teapot.stl", "featuretype.STL", "torus.STL", "20mm-xyz-cube.stl"])
def test_a_grown_footprint_covers_the_exact_offset_and_stays_small(name):
    shape, _, _ = mesh_footprint(STL / name)
    spacing = 0.1 * max(shape.bounds[2] - shape.bounds[0], shape.bounds[3] - shape.bounds[1])
    simple = grown(shape, spacing)
    exact = shape.buffer(spacing / 2, quad_segs=32)
    assert simple.covers(exact.buffer(-1e-9))
    assert simple.area < exact.area * 1.05
    assert len(simple.exterior.coords) <= 121
