"""pack3d (production.md §4.14): parts stacked in a powder-bed build volume (SLS, MJF), where nothing needs support
and parts may float above each other in the powder.

Each part is its axis-aligned bounding box (the mesh as it rests on the plate, in mm), grown by the minimum spacing,
so two placed boxes that touch keep the full spacing between the parts (and half of it to the walls, as pack2d
does). Boxes turn 0° or 90° about Z only: the Z axis is the part's manufacturing orientation, which packing keeps.

The heuristic is extreme-point first-fit decreasing (Crainic, Perboli & Tadei, "Extreme Point-Based Heuristics for
Three-Dimensional Bin Packing", INFORMS J. Computing 20(3), 2008): the largest boxes go first, each to the candidate
corner that is lowest, then nearest the back-left, where it stays inside the volume and overlaps no placed box.
Every answer is checked again (`verify`) before it is returned: a box that leaves the volume or intersects another is
an error, never a position.

The library route was weighed: the registry's 3-D bin packers (3d-bin-packer 0.0.5, 3dbinpacking 0.1.0) are
single-author releases without a spacing notion or a check of their own answers, so the ~100 lines here are easier
to trust than to adapt.
"""
from dataclasses import dataclass

TOLERANCE = 1e-6  # mm: touching boxes do not intersect


@dataclass(frozen=True)
class Box:
    key: str  # what the copies are of (a model's URI)
    dx: float  # bounding box of the part, mm (not grown)
    dy: float
    dz: float
    copies: int = 1
    volume: float = 0.0  # the mesh's own volume, mm³, for the fill (0: the box's)


@dataclass(frozen=True)
class Placed:
    part: int  # index into the boxes
    copy: int
    x: float  # the part's own bounding box's lowest corner in the volume (mm), after the turn
    y: float
    z: float
    rotation: int  # 0 or 90 degrees about Z
    size: tuple  # (dx, dy, dz) of the part after the turn, not grown


@dataclass
class Result3d:
    placements: list
    unfitted: list  # [(part index, copy)]


def _overlaps(a, b):
    """Axis-aligned boxes (x0, y0, z0, x1, y1, z1) share volume (touching is not overlapping)."""
    return all(a[i] < b[i + 3] - TOLERANCE and b[i] < a[i + 3] - TOLERANCE for i in range(3))


def _inside(a, volume):
    return all(a[i] >= -TOLERANCE and a[i + 3] <= volume[i] + TOLERANCE for i in range(3))


def fits_alone(box, volume, spacing):
    """Whether one copy fits the empty volume in either turn."""
    return any(_inside((0, 0, 0, dx + spacing, dy + spacing, box.dz + spacing), volume)
               for dx, dy in ((box.dx, box.dy), (box.dy, box.dx)))


def pack3d(boxes, volume, spacing=0.0):
    """Place as many copies of `boxes` as fit in `volume` (X, Y, Z mm), keeping `spacing` mm between parts."""
    spacing = max(float(spacing), 0.0)
    half = spacing / 2
    order = sorted(((i, c) for i, b in enumerate(boxes) for c in range(b.copies)),
                   key=lambda ic: (-(boxes[ic[0]].dx * boxes[ic[0]].dy * boxes[ic[0]].dz), -boxes[ic[0]].dz, ic))
    points = {(0.0, 0.0, 0.0)}
    grown, placements, unfitted = [], [], []
    for part, copy in order:
        box = boxes[part]
        best = None
        for rotation, (dx, dy) in ((0, (box.dx, box.dy)), (90, (box.dy, box.dx))):
            size = (dx + spacing, dy + spacing, box.dz + spacing)
            for point in points:
                candidate = (*point, point[0] + size[0], point[1] + size[1], point[2] + size[2])
                rank = (point[2], point[1] + point[0], point[0], rotation)
                if best is not None and rank >= best[0]:
                    continue
                if _inside(candidate, volume) and not any(_overlaps(candidate, g) for g in grown):
                    best = (rank, candidate, rotation, (dx, dy, box.dz))
        if best is None:
            unfitted.append((part, copy))
            continue
        _, placed, rotation, size = best
        grown.append(placed)
        placements.append(Placed(part, copy, placed[0] + half, placed[1] + half, placed[2] + half, rotation, size))
        points.discard(placed[:3])
        x0, y0, z0, x1, y1, z1 = placed
        points |= {(x1, y0, z0), (x0, y1, z0), (x0, y0, z1)}
    verify(boxes, volume, spacing, placements)
    return Result3d(placements, sorted(unfitted))


def verify(boxes, volume, spacing, placements):
    """Every placed part, grown by half the spacing, is inside the volume and intersects no other; else ValueError."""
    half = spacing / 2
    grown = [(p.x - half, p.y - half, p.z - half, p.x + p.size[0] + half, p.y + p.size[1] + half,
              p.z + p.size[2] + half) for p in placements]
    for index, (p, g) in enumerate(zip(placements, grown)):
        if not _inside(g, volume):
            raise ValueError(f"pack3d placed copy {p.copy} of {boxes[p.part].key} outside the build volume.")
        for other in grown[index + 1:]:
            if _overlaps(g, other):
                raise ValueError(f"pack3d placed copy {p.copy} of {boxes[p.part].key} intersecting another part.")


def fill_percentage(boxes, volume, placements):
    """Σ volumes of the placed parts (the mesh's own, else its box's) / build volume × 100."""
    total = volume[0] * volume[1] * volume[2]
    used = sum(boxes[p.part].volume or (p.size[0] * p.size[1] * p.size[2]) for p in placements)
    return used / total * 100 if total else 0.0


def matrix(rotation, x, y, z, bounds):
    """The 4×4 row-major model → build-volume transform of a placement: turn `rotation` degrees about Z, then move so
    the turned bounding box (`bounds` = (minx, miny, minz) of the model) starts at (x, y, z)."""
    minx, miny, minz = bounds[:3]
    maxx, maxy = bounds[3], bounds[4]
    if rotation == 90:  # (x, y) → (-y, x): the turned box starts at (-maxy, minx)
        return [[0.0, -1.0, 0.0, x + maxy], [1.0, 0.0, 0.0, y - minx], [0.0, 0.0, 1.0, z - minz],
                [0.0, 0.0, 0.0, 1.0]]
    return [[1.0, 0.0, 0.0, x - minx], [0.0, 1.0, 0.0, y - miny], [0.0, 0.0, 1.0, z - minz], [0.0, 0.0, 0.0, 1.0]]
