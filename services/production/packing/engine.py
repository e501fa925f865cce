"""Nesting footprints on a build plate: the engines and the exact check of what they answer.

A *part* is one footprint (a shapely Polygon in the model's own coordinates, already grown by half the spacing) with
a number of copies; a *placement* puts one copy on the plate: rotated by `rotation` degrees counter-clockwise about
the model's origin, then moved by (x, y) — the convention of the ESICUP instances, of sparrow and of `/layout/`.

Two engines, run one after the other within the time limit (`pack`):
* `raster`: bottom-left fill on a grid. The plate's free cells and each rotated footprint are rasterised
  conservatively (every cell a shape touches counts), and one FFT correlation gives every feasible position of a
  footprint at once; the left-most, then lowest, wins. Any plate shape (circles), any footprint (holes kept). Then
  a local search over the order of the copies (anytime) while copies are left over.
* `sparrow` (spyrrow, the Python binding of sparrow / jagua-rs, the state of the art in strip packing): rectangular
  plates. The copies are strip-packed with the plate's depth as the strip width; when the strip comes out longer
  than the plate, the copies beyond it are dropped and the rest packed again with what else may fit (a bin-packing
  driver over a strip packer).
The better answer (more area placed, then the more compact) is kept, and checked exactly with shapely before it is
returned (`verify`): a copy that leaves the plate or overlaps another is moved to the unfitted list, never answered.
"""
import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy import fft
from shapely import affinity
from shapely.geometry import Point, Polygon, box
from shapely.strtree import STRtree

AREA_TOLERANCE = 1e-6  # relative: touching is allowed, overlapping is not (intersection area / smaller area)
EDGE_TOLERANCE = 1e-6  # mm: how far outside the plate a vertex may be (floating-point rounding of rotations)
GRID_CELLS = 320  # raster resolution: cells along the plate's longer side
MITRE = {"join_style": "mitre", "mitre_limit": 2.0}


@dataclass
class Part:
    key: str  # what the copies are of (a model's URI)
    shape: Polygon  # the grown footprint, model coordinates
    copies: int = 1
    area: float | None = None  # the model's own footprint area (fill); the grown shape's when not given
    label: str = ""

    def __post_init__(self):
        if self.area is None:
            self.area = self.shape.area


@dataclass(frozen=True)
class Placement:
    part: int
    copy: int
    x: float
    y: float
    rotation: float


@dataclass
class Plate:
    polygon: Polygon  # the usable plate, plate coordinates (mm)
    kind: str  # rectangle | circle
    width: float  # x extent (a circle's diameter)
    depth: float  # y extent

    @classmethod
    def rectangle(cls, x, y):
        return cls(box(0, 0, float(x), float(y)), "rectangle", float(x), float(y))

    @classmethod
    def circle(cls, diameter):
        r = float(diameter) / 2
        # the inscribed 256-gon: its vertices are on the circle, so what is inside it is inside the plate
        return cls(Point(r, r).buffer(r, quad_segs=64), "circle", 2 * r, 2 * r)


@dataclass
class Result:
    placements: list
    unfitted: list  # [(part index, copy index)]
    engine: str
    stats: dict = field(default_factory=dict)


def placed_shape(shape, rotation, x, y):
    """The footprint as placed: rotated about the model's origin, then moved."""
    turned = affinity.rotate(shape, rotation, origin=(0, 0)) if rotation % 360 else shape
    return affinity.translate(turned, x, y)


def matrix(rotation, x, y, z=0.0):
    """The placement as a 4×4 row-major matrix from model to plate coordinates."""
    a = math.radians(rotation)
    c, s = _clean(math.cos(a)), _clean(math.sin(a))
    return [[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]]


def _clean(value):
    return 0.0 if abs(value) < 1e-15 else value


# -- the exact check ------------------------------------------------------------------------------------------------

def verify(plate, parts, placements):
    """The placements that are inside the plate and overlap no earlier kept one, and those that are not."""
    inside = plate.buffer(EDGE_TOLERANCE, **MITRE)
    kept, kept_shapes, refused = [], [], []
    for p in placements:
        shape = placed_shape(parts[p.part].shape, p.rotation, p.x, p.y)
        if not shape.is_valid or not inside.covers(shape):
            refused.append(p)
            continue
        clash = False
        if kept_shapes:
            tree = STRtree(kept_shapes)
            for i in tree.query(shape):
                other = kept_shapes[i]
                if shape.intersection(other).area > AREA_TOLERANCE * min(shape.area, other.area):
                    clash = True
                    break
        if clash:
            refused.append(p)
        else:
            kept.append(p)
            kept_shapes.append(shape)
    return kept, refused


def score(parts, placements):
    """What a plate answer is worth: the area placed first, then compactness (the smaller extent)."""
    area = sum(parts[p.part].area for p in placements)
    if not placements:
        return (0.0, 0.0)
    shapes = [placed_shape(parts[p.part].shape, p.rotation, p.x, p.y) for p in placements]
    minx, miny, maxx, maxy = shapely.total_bounds(shapes)
    return (round(area, 6), -(maxx - minx) * (maxy - miny))


# -- the raster engine ----------------------------------------------------------------------------------------------

def cover(shape, x0, y0, cell, nx, ny):
    """Mask (ny × nx) of the cells [x0 + j·cell, …] × [y0 + i·cell, …] whose interior meets the shape's interior: a
    cell whose centre is inside certainly does; cells within half a diagonal of it are tested exactly (area of the
    intersection). Two shapes whose interiors overlap mark a common cell, so disjoint masks ⇒ disjoint shapes."""
    xs = x0 + (np.arange(nx) + 0.5) * cell
    ys = y0 + (np.arange(ny) + 0.5) * cell
    cx, cy = np.meshgrid(xs, ys)
    marked = shapely.contains_xy(shape, cx, cy)
    near = shapely.contains_xy(shape.buffer(cell * 0.7072, **MITRE), cx, cy) & ~marked
    if near.any():
        i, j = np.nonzero(near)
        cells = shapely.box(x0 + j * cell, y0 + i * cell, x0 + (j + 1) * cell, y0 + (i + 1) * cell)
        marked[i, j] = shapely.area(shapely.intersection(cells, shape)) > 1e-7 * cell * cell
    return marked


class Raster:
    """A conservative grid over a container: a cell is free only if it lies wholly inside the container and no
    placed shape's interior meets it; a footprint's mask marks every cell its interior meets. Disjoint masks ⇒
    disjoint shapes; a footprint whose size is a whole number of cells fills exactly that many (tight fits fit)."""

    def __init__(self, container, cells=GRID_CELLS):
        self.container = container
        minx, miny, maxx, maxy = container.bounds
        self.cell = max(maxx - minx, maxy - miny) / cells
        self.origin = (minx, miny)
        self.nx = max(1, int(math.ceil((maxx - minx) / self.cell - 1e-9)))
        self.ny = max(1, int(math.ceil((maxy - miny) / self.cell - 1e-9)))
        xs = minx + (np.arange(self.nx) + 0.5) * self.cell
        ys = miny + (np.arange(self.ny) + 0.5) * self.cell
        self.cx, self.cy = np.meshgrid(xs, ys)
        # free: cells wholly inside; centres deep inside are, those near the edge are tested exactly
        deep = container.buffer(-self.cell * 0.7072, quad_segs=16)
        free = shapely.contains_xy(deep, self.cx, self.cy) if not deep.is_empty else np.zeros_like(self.cx, bool)
        edge = shapely.contains_xy(container, self.cx, self.cy) & ~free
        if edge.any():
            i, j = np.nonzero(edge)
            cells = shapely.box(minx + j * self.cell, miny + i * self.cell, minx + (j + 1) * self.cell,
                                miny + (i + 1) * self.cell)
            free[i, j] = shapely.covers(container, cells)
        self.blocked = ~free
        self._masks = {}

    def touched(self, shape):
        """Cells of the container grid that a placed shape's interior meets."""
        out = np.zeros((self.ny, self.nx), dtype=bool)
        minx, miny, maxx, maxy = shape.bounds
        j0, j1 = self._span(minx, maxx, self.origin[0], self.nx)
        i0, i1 = self._span(miny, maxy, self.origin[1], self.ny)
        if j0 < j1 and i0 < i1:
            out[i0:i1, j0:j1] = cover(shape, self.origin[0] + j0 * self.cell, self.origin[1] + i0 * self.cell,
                                      self.cell, j1 - j0, i1 - i0)
        return out

    def _span(self, low, high, origin, n):
        return max(0, int(math.floor((low - origin) / self.cell)) - 1), \
            min(n, int(math.ceil((high - origin) / self.cell)) + 1)

    def mask(self, key, shape, rotation):
        """(mask, (bx, by)) of a rotated footprint, anchored at its bounds' lower-left corner."""
        cached = self._masks.get((key, rotation))
        if cached is None:
            turned = placed_shape(shape, rotation, 0, 0)
            bx, by, maxx, maxy = turned.bounds
            w = max(1, int(math.ceil((maxx - bx) / self.cell - 1e-9)))
            h = max(1, int(math.ceil((maxy - by) / self.cell - 1e-9)))
            cached = self._masks[(key, rotation)] = (cover(turned, bx, by, self.cell, w, h), (bx, by))
        return cached

    def prepare(self, masks):
        """Fix the FFT size for these masks: one transform of the occupied grid then serves every mask."""
        mh = max([m.shape[0] for m, _ in masks] + [1])
        mw = max([m.shape[1] for m, _ in masks] + [1])
        self.fft_shape = (fft.next_fast_len(self.ny + mh - 1, real=True),
                          fft.next_fast_len(self.nx + mw - 1, real=True))
        self._spectra = {}

    def spectrum(self, occupied):
        return fft.rfft2(occupied.astype(np.float32), s=self.fft_shape, workers=-1)

    def best_offset(self, occupied, m, spectrum=None):
        """The left-most, then lowest, free offset (u, v) for mask m, or None. `spectrum`: the occupied grid's
        transform (Raster.spectrum), when several masks are tried against the same grid."""
        mh, mw = m.shape
        if mh > self.ny or mw > self.nx:
            return None
        shape = getattr(self, "fft_shape", None)
        if shape is None or shape[0] < self.ny + mh - 1 or shape[1] < self.nx + mw - 1:
            self.prepare([(m, None)])
            spectrum = None
        if spectrum is None:
            spectrum = self.spectrum(occupied)
        key = (id(m), self.fft_shape)
        flipped = self._spectra.get(key)
        if flipped is None:
            flipped = self._spectra[key] = (fft.rfft2(m[::-1, ::-1].astype(np.float32), s=self.fft_shape,
                                                      workers=-1), m)
        full = fft.irfft2(spectrum * flipped[0], s=self.fft_shape, workers=-1)
        clash = full[mh - 1:self.ny, mw - 1:self.nx]
        free = clash < 0.5
        if not free.any():
            return None
        columns = np.flatnonzero(free.any(axis=0))
        u = int(columns[0])
        v = int(np.flatnonzero(free[:, u])[0])
        return u, v

    def position(self, u, v, anchor):
        return self.origin[0] + u * self.cell - anchor[0], self.origin[1] + v * self.cell - anchor[1]


def raster_fill(raster, parts, order, rotations, deadline=None):
    """One bottom-left fill of the copies in `order` ([(part, copy)]): (placements, unfitted)."""
    occupied = raster.blocked.copy()
    placements, unfitted = [], []
    if getattr(raster, "fft_shape", None) is None:
        raster.prepare([raster.mask(i, parts[i].shape, r) for i in {pc[0] for pc in order} for r in rotations])
    spectrum = None
    for part_index, copy in order:
        if deadline is not None and time.monotonic() > deadline:
            unfitted.append((part_index, copy))
            continue
        part = parts[part_index]
        best = None
        if spectrum is None:
            spectrum = raster.spectrum(occupied)
        for rotation in rotations:
            m, anchor = raster.mask(part_index, part.shape, rotation)
            found = raster.best_offset(occupied, m, spectrum)
            if found is not None and (best is None or found < best[0]):
                best = (found, rotation, anchor)
        if best is None:
            unfitted.append((part_index, copy))
            continue
        (u, v), rotation, anchor = best
        x, y = raster.position(u, v, anchor)
        placements.append(Placement(part_index, copy, x, y, rotation))
        occupied |= raster.touched(placed_shape(part.shape, rotation, x, y))
        spectrum = None
    return placements, unfitted


def raster_pack(plate, parts, rotations, deadline, rng, report=None):
    """Bottom-left fill by decreasing area, then (while copies are left over and time is left) a local search over
    the order: a random swap or a left-over copy moved earlier, kept when it places at least as much area."""
    raster = Raster(plate)
    order = sorted(_copies(parts), key=lambda pc: -parts[pc[0]].shape.area)
    best_order = order
    placements, unfitted = raster_fill(raster, parts, order, rotations)
    best = (score(parts, placements), placements, unfitted)
    if report:
        report("raster", placements)
    tries = 0
    while best[2] and time.monotonic() < deadline:
        tries += 1
        candidate = list(best_order)
        if best[2] and rng.random() < 0.5:
            left = rng.choice(best[2])
            candidate.remove(left)
            candidate.insert(rng.randrange(len(candidate) + 1), left)
        else:
            i, j = rng.randrange(len(candidate)), rng.randrange(len(candidate))
            candidate[i], candidate[j] = candidate[j], candidate[i]
        placements, unfitted = raster_fill(raster, parts, candidate, rotations, deadline)
        s = score(parts, placements)
        if s >= best[0]:
            if s > best[0] and report:
                report("raster", placements)
            best, best_order = (s, placements, unfitted), candidate
    return Result(best[1], best[2], "raster", {"raster_tries": tries, "cell_mm": raster.cell})


def _copies(parts):
    return [(i, c) for i, part in enumerate(parts) for c in range(part.copies)]


# -- the sparrow engine (spyrrow) -----------------------------------------------------------------------------------

def strip_pack(parts, strip_width, rotations, seconds, seed=0, workers=None, progress=None):
    """Strip packing with sparrow: every copy inside 0 ≤ y ≤ strip_width, the length (max x) minimised.
    Returns (length, placements). `seconds` is a whole number ≥ 1 (the binding's unit)."""
    import spyrrow

    items = [spyrrow.Item(str(i), _ring(part.shape), part.copies, [float(r) for r in rotations])
             for i, part in enumerate(parts) if part.copies > 0]
    instance = spyrrow.StripPackingInstance("stratum", float(strip_width), items)
    config = spyrrow.StripPackingConfig(early_termination=False, total_computation_time=max(1, int(seconds)),
                                        num_workers=workers, seed=seed)
    solution = instance.solve(config, progress) if progress is not None else instance.solve(config)
    counters = {}
    placements = []
    for placed in solution.placed_items:
        index = int(placed.id)
        copy = counters.get(index, 0)
        counters[index] = copy + 1
        x, y = placed.translation
        placements.append(Placement(index, copy, float(x), float(y), float(placed.rotation) % 360))
    return float(solution.width), placements


def _ring(shape):
    """The outer boundary, counter-clockwise, without the closing point (sparrow packs no holes)."""
    ring = shapely.geometry.polygon.orient(Polygon(shape.exterior), 1.0).exterior.coords[:-1]
    return [(float(x), float(y)) for x, y in ring]


def sparrow_plate(plate, parts, rotations, deadline, rng, workers=None, report=None, known=()):
    """A rectangular plate filled by the strip packer (strip as deep as the plate; a set fits when its strip is no
    longer than the plate is wide). First every copy; if they do not all fit, from the best set known to fit (the
    copies within the plate, or `known`, the raster engine's answer) copies are added a kind at a time, smallest
    first, as many as the free area suggests, halving on failure, until nothing more fits or time is up."""
    minx, miny, _, _ = plate.polygon.bounds

    def attempt(counts, seconds):
        trial = [Part(p.key, p.shape, n, p.area, p.label) for p, n in zip(parts, counts)]
        _, placements = strip_pack(trial, plate.depth, rotations, seconds, seed=rng.randrange(1 << 30),
                                   workers=workers)
        moved = [Placement(p.part, p.copy, p.x + minx, p.y + miny, p.rotation) for p in placements]
        inside = [p for p in moved if placed_shape(parts[p.part].shape, p.rotation, p.x, p.y).bounds[2]
                  <= minx + plate.width + 1e-9]
        return _renumber(inside), len(inside) == len(moved)

    def counted(placements):
        counts = [0] * len(parts)
        for p in placements:
            counts[p.part] += 1
        return counts

    rounds = 0
    best = _renumber(list(known))
    if deadline - time.monotonic() >= 1:
        rounds += 1
        placements, everything = attempt([p.copies for p in parts], max(1, int((deadline - time.monotonic()) * 0.4)))
        if score(parts, placements) > score(parts, best):
            best = placements
            if report:
                report("sparrow", best)
        if everything:
            return Result(best, [], "sparrow", {"sparrow_rounds": rounds})
    counts = counted(best)
    batch = {i: max(1, (part.copies - counts[i]) // 2) for i, part in enumerate(parts)}
    while deadline - time.monotonic() >= 1.5:  # a 1 s round of sparrow takes a little more than 1 s
        room = plate.polygon.area - sum(parts[i].shape.area * n for i, n in enumerate(counts))
        kinds = sorted((i for i, part in enumerate(parts) if counts[i] < part.copies and batch[i] > 0
                        and part.shape.area <= room), key=lambda i: parts[i].shape.area)
        if not kinds:
            break
        kind = kinds[0]
        add = max(1, min(batch[kind], parts[kind].copies - counts[kind], int(room * 0.9 // parts[kind].shape.area)))
        trial = list(counts)
        trial[kind] += add
        rounds += 1
        placements, everything = attempt(trial, max(1, int((deadline - time.monotonic()) * 0.2)))
        if everything:
            counts, best = trial, placements
            if report:
                report("sparrow", best)
        elif add > 1:
            batch[kind] = add // 2
        else:
            batch[kind] = 0  # not even one more of this kind: try the next kind
    final = counted(best)
    unfitted = [(i, c) for i, part in enumerate(parts) for c in range(final[i], part.copies)]
    return Result(best, unfitted, "sparrow", {"sparrow_rounds": rounds})


def _renumber(placements):
    counters, out = {}, []
    for p in placements:
        copy = counters.get(p.part, 0)
        counters[p.part] = copy + 1
        out.append(Placement(p.part, copy, p.x, p.y, p.rotation))
    return out


# -- the plate packer -----------------------------------------------------------------------------------------------

def fits_alone(plate, part, rotations, raster=None):
    """Whether one copy fits the empty plate in one of the rotations (on the grid, or centred)."""
    raster = raster or Raster(plate.polygon)
    for rotation in rotations:
        m, anchor = raster.mask(0, part.shape, rotation)
        if raster.best_offset(raster.blocked, m) is not None:
            return True
        turned = placed_shape(part.shape, rotation, 0, 0)
        c = plate.polygon.centroid
        t = turned.centroid
        if plate.polygon.covers(affinity.translate(turned, c.x - t.x, c.y - t.y)):
            return True
    return False


def pack(plate, parts, rotations=(0, 90, 180, 270), time_limit=20.0, seed=0, workers=None, report=None):
    """Place as many copies (by area) as fit: the raster engine first (fast, any plate; it stops as soon as
    every copy is placed), then, when copies are left over on a rectangular plate, sparrow for the rest of the time.
    Every answer is checked exactly (`verify`)."""
    start = time.monotonic()
    deadline = start + max(float(time_limit), 0.5)
    rng = random.Random(seed)
    rotations = [float(r) % 360 for r in rotations] or [0.0]
    # copies that cannot fit an empty plate are left out before the search
    grid = Raster(plate.polygon)
    fitting = [fits_alone(plate, part, rotations, grid) for part in parts]
    usable = [Part(p.key, p.shape, p.copies if ok else 0, p.area, p.label) for p, ok in zip(parts, fitting)]
    candidates = []
    raster_deadline = deadline if plate.kind != "rectangle" else start + max(0.5, (deadline - start) * 0.25)
    first = raster_pack(plate.polygon, usable, rotations, raster_deadline, rng, report)
    candidates.append(first)
    if plate.kind == "rectangle" and first.unfitted and deadline - time.monotonic() >= 1:
        try:
            known, _ = verify(plate.polygon, usable, first.placements)
            candidates.append(sparrow_plate(plate, usable, rotations, deadline, rng, workers, report, known))
        except Exception as error:  # the raster answer stands; say why sparrow gave none
            first.stats["sparrow_error"] = f"{type(error).__name__}: {error}"
    ranked = []
    for candidate in candidates:
        kept, refused = verify(plate.polygon, usable, candidate.placements)
        ranked.append((score(usable, kept), candidate, kept, refused))
    ranked.sort(key=lambda r: r[0], reverse=True)
    _, chosen, kept, refused = ranked[0]
    counts = {}
    for p in kept:
        counts[p.part] = counts.get(p.part, 0) + 1
    unfitted = [(i, c) for i, part in enumerate(parts) for c in range(counts.get(i, 0), part.copies)]
    stats = dict(chosen.stats, seconds=round(time.monotonic() - start, 2), refused_by_check=len(refused),
                 engines={c.engine: score(usable, verify(plate.polygon, usable, c.placements)[0])[0]
                          for c in candidates})
    return Result(_renumber(kept), unfitted, chosen.engine, stats)


def fill_percentage(plate, parts, placements):
    return 100.0 * sum(parts[p.part].area for p in placements) / plate.polygon.area
