"""pack3d (production.md §4.14): stacking boxes in a powder-bed build volume, with the spacing kept and every answer
checked independently here (pairwise box intersection, containment)."""
import itertools

import pytest

from services.production.packing.pack3d import Box, Placed, fill_percentage, fits_alone, matrix, pack3d, verify


def grown(p, spacing):
    h = spacing / 2
    return (p.x - h, p.y - h, p.z - h, p.x + p.size[0] + h, p.y + p.size[1] + h, p.z + p.size[2] + h)


def assert_valid(result, volume, spacing):
    boxes = [grown(p, spacing) for p in result.placements]
    for b in boxes:
        assert all(b[i] >= -1e-9 and b[i + 3] <= volume[i] + 1e-9 for i in range(3)), b
    for a, b in itertools.combinations(boxes, 2):
        assert not all(a[i] < b[i + 3] - 1e-9 and b[i] < a[i + 3] - 1e-9 for i in range(3)), (a, b)


def test_cubes_fill_the_floor_then_stack():
    # 20 mm cubes, 5 mm spacing, in 100 × 100 × 100: 4 per row (4 × 25 = 100), 16 per layer, 4 layers = 64
    result = pack3d([Box("cube", 20, 20, 20, copies=70)], (100, 100, 100), spacing=5)
    assert len(result.placements) == 64 and len(result.unfitted) == 6
    assert {p.z for p in result.placements} == {2.5, 27.5, 52.5, 77.5}  # stacked in four layers
    assert_valid(result, (100, 100, 100), 5)
    assert fill_percentage([Box("cube", 20, 20, 20, copies=70)], (100, 100, 100), result.placements) == \
        pytest.approx(64 * 8000 / 1e6 * 100)


def test_a_long_part_turns_to_fit():
    result = pack3d([Box("bar", 10, 150, 10)], (160, 100, 50))
    assert [p.rotation for p in result.placements] == [90] and result.unfitted == []
    assert result.placements[0].size == (150, 10, 10)


def test_a_part_taller_than_the_volume_is_unfitted_and_others_still_go_in():
    boxes = [Box("tower", 10, 10, 400), Box("cube", 20, 20, 20, copies=3)]
    result = pack3d(boxes, (100, 100, 300), spacing=2)
    assert result.unfitted == [(0, 0)]
    assert sorted(p.part for p in result.placements) == [1, 1, 1]
    assert not fits_alone(boxes[0], (100, 100, 300), 2) and fits_alone(boxes[1], (100, 100, 300), 2)


def test_mixed_sizes_never_intersect():
    boxes = [Box("a", 37, 12, 25, copies=15), Box("b", 8, 8, 60, copies=10), Box("c", 50, 30, 9, copies=12)]
    result = pack3d(boxes, (120, 90, 110), spacing=3)
    assert len(result.placements) + len(result.unfitted) == 37
    assert len(result.placements) > 20
    assert_valid(result, (120, 90, 110), 3)


def test_verify_refuses_intersections_and_escapes():
    boxes = [Box("a", 10, 10, 10, copies=2)]
    overlapping = [Placed(0, 0, 0, 0, 0, 0, (10, 10, 10)), Placed(0, 1, 5, 5, 5, 0, (10, 10, 10))]
    with pytest.raises(ValueError, match="intersecting"):
        verify(boxes, (100, 100, 100), 0, overlapping)
    with pytest.raises(ValueError, match="outside"):
        verify(boxes, (100, 100, 100), 0, [Placed(0, 0, 95, 0, 0, 0, (10, 10, 10))])
    touching = [Placed(0, 0, 0, 0, 0, 0, (10, 10, 10)), Placed(0, 1, 10, 0, 0, 0, (10, 10, 10))]
    verify(boxes, (100, 100, 100), 0, touching)  # touching is allowed


def test_matrix_moves_the_turned_bounding_box_to_its_place():
    bounds = (-5, 2, 1, 15, 12, 31)  # minx, miny, minz, maxx, maxy, maxz
    for rotation in (0, 90):
        m = matrix(rotation, 40, 50, 60, bounds)
        corners = [(x, y, z) for x in (bounds[0], bounds[3]) for y in (bounds[1], bounds[4]) for z in (bounds[2],
                                                                                                        bounds[5])]
        moved = [[sum(m[r][c] * v for c, v in enumerate((*p, 1))) for r in range(3)] for p in corners]
        assert [min(c[i] for c in moved) for i in range(3)] == pytest.approx([40, 50, 60])


def test_the_packing_child_stacks_real_meshes(tmp_path):
    """The worker's pack3d job on the 20 mm cube of ../shared/data/stl: every position, applied to the mesh read here
    with trimesh, lands inside the volume and apart from every other copy by the spacing."""
    import io
    from pathlib import Path

    import numpy as np
    import trimesh

    from services.production.packing.worker import run_job

    cube = Path("/work/shared/data/stl/20mm-xyz-cube.stl")
    job = {"packer": "pack3d", "plate": {"kind": "rectangle", "x": 50, "y": 50, "z": 50}, "spacing": 2,
           "models": [{"key": "/model/cube/", "path": str(cube), "unit": "mm", "name": "cube"}],
           "copies": ["/model/cube/"] * 10, "png": str(tmp_path / "l.png"), "svg": str(tmp_path / "l.svg")}
    result = run_job(job, io.StringIO())
    assert len(result["positions"]) == 8 and [u["index"] for u in result["unfitted"]] == [8, 9]
    assert result["unfitted"][0]["reason"] == "It did not fit in the build volume."
    mesh = trimesh.load(str(cube), file_type="stl", force="mesh")
    assert result["fill_percentage"] == pytest.approx(8 * mesh.volume / 125000 * 100, rel=1e-3)  # the mesh's own volume
    vertices = np.asarray(mesh.vertices)
    placed = []
    for p in result["positions"]:
        m = np.asarray(p["matrix"])
        moved = vertices @ m[:3, :3].T + m[:3, 3]
        low, high = moved.min(axis=0), moved.max(axis=0)
        assert (low >= 1 - 1e-6).all() and (high <= 49 + 1e-6).all()
        placed.append((low, high))
    assert len({round(float(low[2]), 3) for low, _ in placed}) == 2  # two layers
    for (a0, a1), (b0, b1) in itertools.combinations(placed, 2):
        gap = np.maximum(b0 - a1, a0 - b1).max()  # the largest separating distance along an axis
        assert gap >= 2 - 1e-6
    assert (tmp_path / "l.png").stat().st_size > 0 and "<svg" in (tmp_path / "l.svg").read_text()
