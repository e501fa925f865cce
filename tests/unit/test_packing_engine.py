"""The plate packer: every answer is re-checked here independently (shapely, from the positions alone): inside the
plate, no overlap, allowed rotations only, and the matrix is the same transform as (rotation_z, x, y)."""
import math

import numpy as np
import pytest
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from services.production.packing import plates
from services.production.packing.engine import Part, Placement, Plate, matrix, pack, placed_shape, verify
from shared.errors import InvalidPayload

L_SHAPE = Polygon([(0, 0), (40, 0), (40, 10), (10, 10), (10, 40), (0, 40)])
SQUARE = box(-10, -10, 10, 10)


def placed(shape, p):
    """Independent of the engine: rotate about the origin, then move."""
    return affinity.translate(affinity.rotate(shape, p.rotation, origin=(0, 0)), p.x, p.y)


def check_layout(plate_polygon, parts, placements, rotations):
    shapes = [placed(parts[p.part].shape, p) for p in placements]
    slack = plate_polygon.buffer(1e-6, join_style="mitre")
    for p, shape in zip(placements, shapes):
        assert slack.covers(shape), f"{p} leaves the plate"
        assert any(math.isclose(p.rotation % 360, r % 360, abs_tol=1e-9) for r in rotations), p
    for i in range(len(shapes)):
        for j in range(i + 1, len(shapes)):
            overlap = shapes[i].intersection(shapes[j]).area
            assert overlap <= 1e-6 * min(shapes[i].area, shapes[j].area), (placements[i], placements[j], overlap)


def test_squares_on_a_rectangle_all_fit_without_overlap():
    plate = Plate.rectangle(100, 60)
    parts = [Part("sq", SQUARE, 15)]
    result = pack(plate, parts, time_limit=2)
    assert len(result.placements) == 15 and not result.unfitted  # 5 × 3 places for 20 mm squares, none to spare
    check_layout(plate.polygon, parts, result.placements, [0, 90, 180, 270])


def test_what_does_not_fit_is_reported_not_squeezed_in():
    plate = Plate.rectangle(50, 50)
    parts = [Part("sq", SQUARE, 7)]
    result = pack(plate, parts, time_limit=2)
    assert len(result.placements) == 4 and len(result.unfitted) == 3
    check_layout(plate.polygon, parts, result.placements, [0, 90, 180, 270])


def test_a_part_larger_than_the_plate_is_unfitted_at_once():
    result = pack(Plate.rectangle(30, 30), [Part("big", box(0, 0, 40, 10), 2), Part("sq", SQUARE, 1)], time_limit=2)
    assert sorted(result.unfitted) == [(0, 0), (0, 1)] and len(result.placements) == 1


def test_a_circular_plate_keeps_every_part_inside_the_circle():
    plate = Plate.circle(100)
    parts = [Part("sq", SQUARE, 30)]
    result = pack(plate, parts, time_limit=2)
    circle = Point(50, 50).buffer(50, quad_segs=256)
    for p in result.placements:
        corners = np.asarray(placed(SQUARE, p).exterior.coords)
        assert (np.hypot(corners[:, 0] - 50, corners[:, 1] - 50) <= 50 + 1e-6).all()
    check_layout(circle, parts, result.placements, [0, 90, 180, 270])
    # 20 mm squares in a 100 mm circle: at least the 3×3 grid that fits the inscribed 70.7 mm square… and more
    assert 12 <= len(result.placements) < 30


def test_only_the_allowed_rotations_are_used():
    plate = Plate.rectangle(120, 45)
    parts = [Part("L", L_SHAPE, 4)]
    for rotations in ([0], [90], [0, 180]):
        result = pack(plate, parts, rotations=rotations, time_limit=2)
        assert result.placements
        check_layout(plate.polygon, parts, result.placements, rotations)


def test_l_shapes_nest_more_copies_than_their_bounding_boxes_allow():
    plate = Plate.rectangle(100, 100)
    parts = [Part("L", L_SHAPE, 12)]
    box_bound = int(plate.polygon.area // box(*L_SHAPE.bounds).area)  # 6 boxes of 40 × 40 at the very most
    result = pack(plate, parts, time_limit=4)
    check_layout(plate.polygon, parts, result.placements, [0, 90, 180, 270])
    assert len(result.placements) > box_bound


def test_a_ring_hole_is_used_on_any_plate():
    ring = Point(0, 0).buffer(30, quad_segs=16).difference(Point(0, 0).buffer(20, quad_segs=16))
    small = box(-5, -5, 5, 5)
    plate = Plate.rectangle(62, 62)
    parts = [Part("ring", ring, 1), Part("small", small, 4)]
    result = pack(plate, parts, time_limit=2)
    assert not result.unfitted  # the squares can only go in the corners (4 × 1 does not fit) or in the hole
    check_layout(plate.polygon, parts, result.placements, [0, 90, 180, 270])


@pytest.mark.parametrize("rotation", [0, 90, 180, 270, 30, 137.5])
def test_the_matrix_is_the_same_transform_as_rotation_and_move(rotation):
    m = np.array(matrix(rotation, 12.5, -3.0, 7.0))
    points = np.asarray(L_SHAPE.exterior.coords)
    homogeneous = np.c_[points, np.zeros(len(points)), np.ones(len(points))]
    moved = (m @ homogeneous.T).T
    expected = np.asarray(placed_shape(L_SHAPE, rotation, 12.5, -3.0).exterior.coords)
    assert np.allclose(moved[:, :2], expected) and np.allclose(moved[:, 2], 7.0)
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3)) and np.isclose(np.linalg.det(m[:3, :3]), 1.0)


def test_the_check_refuses_overlaps_and_parts_off_the_plate():
    parts = [Part("sq", SQUARE, 3)]
    plate = box(0, 0, 100, 100)
    kept, refused = verify(plate, parts, [Placement(0, 0, 10, 10, 0), Placement(0, 1, 15, 15, 0),
                                          Placement(0, 2, 95, 50, 0), Placement(0, 3, 30, 10, 0)])
    assert [(p.x, p.y) for p in kept] == [(10, 10), (30, 10)]  # touching is allowed
    assert [(p.x, p.y) for p in refused] == [(15, 15), (95, 50)]


def test_plates_and_options_from_the_build_object():
    assert plates.plate_of({"type": "rectangle", "x": 250, "y": 200}) == {"kind": "rectangle", "x": 250.0,
                                                                       "y": 200.0, "z": None}
    assert plates.plate_of({"type": "circle", "diameter": 120, "z": 80})["diameter"] == 120.0
    pt = {"build_plate_shape": "circular", "build_volume": {"x": 300, "z": 400}}
    assert plates.plate_of({"printer_type": "/printer-type/x/"}, pt) == {"kind": "circle", "diameter": 300.0,
                                                                        "z": 400.0}
    assert plates.options({"type": "rectangle"}) == ([0.0, 90.0, 180.0, 270.0], 20.0)
    assert plates.options({"rotations": [0, 360, -90], "time_limit_s": 3}) == ([0.0, 270.0], 3.0)
    for build in ({"type": "triangle", "x": 1}, {"type": "rectangle", "x": -1, "y": 2},
                  {"type": "circle"}, {"type": "rectangle", "x": "wide", "y": 2}):
        with pytest.raises(InvalidPayload, match="The build parameters are invalid."):
            plates.plate_of(build)
    for build in ({"packer_type": "pack3d"}, {"rotations": []}, {"rotations": ["a"]}, {"time_limit_s": 0},
                  "rectangle"):
        with pytest.raises(InvalidPayload, match="The build parameters are invalid."):
            plates.options(build)
    for spacing in (-1, "far", float("nan"), True):
        with pytest.raises(InvalidPayload, match="The model spacing is an invalid value."):
            plates.spacing(spacing)
    assert plates.spacing("5") == 5.0
