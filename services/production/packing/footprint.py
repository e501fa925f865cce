"""A model's footprint: its mesh projected on the plate (the XY plane), in the model's own coordinates and in mm.

The projection is the union of the projected triangles, so it is as non-convex as the part is (an L-bracket is an
L, a ring keeps its hole). For packing it is grown by half the minimum spacing, so two grown footprints that touch
leave the full spacing between the parts, and simplified. The simplification is made conservative: the simplified
outline is grown again by the tolerance, so it always covers the exact grown footprint (Douglas-Peucker keeps every
dropped point within the tolerance of the kept segment).
"""
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

MITRE = {"join_style": "mitre", "mitre_limit": 2.0}  # a mitred offset covers the round one and adds no arc points
MAX_VERTICES = 120  # per outline, after simplification: the engines' cost grows with the vertex count


def outline(triangles):
    """The exact projection on XY of (N, 3, 3) triangles (mm) as a shapely Polygon (holes kept), in model
    coordinates. Triangles seen edge-on (vertical faces) cover nothing and are skipped; a mesh of several bodies
    whose projections do not touch is joined by its convex hull (the parts print as one)."""
    tri = np.asarray(triangles, dtype=np.float64)[:, :, :2]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    doubled = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    extent = float(np.ptp(tri.reshape(-1, 2), axis=0).max()) if len(tri) else 0.0
    keep = np.abs(doubled) > (extent * 1e-9) ** 2
    if not keep.any():
        raise ValueError("The mesh has no extent on the plate (every facet is seen edge-on).")
    rings = np.concatenate([tri[keep], tri[keep][:, :1]], axis=1)  # closed rings
    union = shapely.union_all(shapely.polygons(rings), grid_size=None)
    union = shapely.make_valid(union)
    polygons = [g for g in getattr(union, "geoms", [union]) if isinstance(g, Polygon) and g.area > 0]
    if isinstance(union, Polygon):
        polygons = [union]
    if not polygons:
        raise ValueError("The mesh has no extent on the plate.")
    if len(polygons) == 1:
        return _without_slivers(polygons[0])
    return MultiPolygon(polygons).convex_hull  # separate bodies: packed as one part, conservatively


def _without_slivers(polygon):
    """Holes smaller than a thousandth of the part (numerical slivers between facets) are filled."""
    keep = [r for r in polygon.interiors if Polygon(r).area > max(polygon.area * 1e-3, 1e-2)]
    return Polygon(polygon.exterior, keep)


def grown(shape, spacing, tolerance=None):
    """`shape` grown by spacing / 2 and simplified conservatively (see the module's note)."""
    half = max(float(spacing), 0.0) / 2
    base = shape.buffer(half, **MITRE) if half > 0 else shape
    base = _largest(base)
    size = max(base.bounds[2] - base.bounds[0], base.bounds[3] - base.bounds[1])
    tolerance = max(size * 0.002, 0.02) if tolerance is None else tolerance
    simple = base.simplify(tolerance, preserve_topology=True)
    while _vertices(simple) > MAX_VERTICES:
        tolerance *= 2
        simple = base.simplify(tolerance, preserve_topology=True)
    if _vertices(simple) == _vertices(base):
        return base  # nothing dropped: keep it exact (a cube stays a square)
    covering = _largest(simple.buffer(tolerance, **MITRE))
    return covering if covering.covers(base) else _largest(covering.union(base))


def _largest(geometry):
    if isinstance(geometry, Polygon):
        return geometry
    return max(getattr(geometry, "geoms", []), key=lambda g: g.area)


def _vertices(polygon):
    return len(polygon.exterior.coords) + sum(len(r.coords) for r in polygon.interiors)


def mesh_footprint(path, file_unit=None):
    """(outline polygon, z offset that rests the part on the plate, height mm) of a mesh file."""
    from services.files.mesh import load_triangles

    loaded = load_triangles(path, file_unit)
    zs = loaded.triangles[:, :, 2]
    return outline(loaded.triangles), -float(zs.min()), float(zs.max() - zs.min())
