"""Mesh files for tests, and an independent reference for the figures the files service reports.

The writers use trimesh to make shapes; reference_figures() reads STL bytes with struct / plain text parsing and
computes with plain numpy, so a bug in (or a change of) trimesh cannot make the service and its tests agree on a
wrong answer.
"""
import struct

import numpy as np
import trimesh

STL_HEADER = 80
STL_RECORD = struct.Struct("<12fH")


def mesh_stl(path, mesh, ascii=False, unit_scale=1.0, header=b""):
    """Write a trimesh mesh as STL with its coordinates multiplied by unit_scale (e.g. 1/25.4 for a file in inches);
    header goes into the 80-byte binary header, or after "solid" in an ASCII file."""
    mesh = mesh.copy()
    mesh.apply_scale(unit_scale)
    if ascii:
        text = mesh.export(file_type="stl_ascii")
        _, rest = text.split("\n", 1)
        data = f"solid {header.decode()}\n{rest}".encode() if header else text.encode()
    else:
        data = mesh.export(file_type="stl")
        data = header.ljust(STL_HEADER, b"\x00")[:STL_HEADER] + data[STL_HEADER:]
    with open(path, "wb") as f:
        f.write(data)
    return path


def box_stl(path, dims=(10, 20, 30), ascii=False, unit_scale=1.0, header=b""):
    return mesh_stl(path, trimesh.creation.box(extents=dims), ascii, unit_scale, header)


def icosphere_stl(path, subdivisions=2, radius=10.0, ascii=False, unit_scale=1.0, header=b""):
    return mesh_stl(path, trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius), ascii, unit_scale,
                    header)


def write_stl(path, triangles, normals=None, ascii=False, header=b""):
    """Write facets exactly as given: triangles (n, 3, 3), normals (n, 3) or None for zero normals. For files no
    exporter would write (inverted normals, NaN, degenerate facets)."""
    triangles = np.asarray(triangles, dtype=float).reshape(-1, 3, 3)
    normals = np.zeros((len(triangles), 3)) if normals is None else np.asarray(normals, dtype=float)
    with open(path, "wb") as f:
        if ascii:
            lines = [f"solid {header.decode()}"]
            for (a, b, c), n in zip(triangles, normals):
                lines += [f"facet normal {_xyz(n)}", "outer loop", *(f"vertex {_xyz(v)}" for v in (a, b, c)),
                          "endloop", "endfacet"]
            lines.append(f"endsolid {header.decode()}")
            f.write(("\n".join(lines) + "\n").encode())
        else:
            f.write(header.ljust(STL_HEADER, b"\x00")[:STL_HEADER] + struct.pack("<I", len(triangles)))
            for tri, n in zip(triangles, normals):
                f.write(STL_RECORD.pack(*n, *tri.ravel(), 0))
    return path


def _xyz(vector):
    return " ".join(repr(float(x)) for x in vector)  # repr: round-trips exactly; "nan" and "inf" included


def read_stl(path):
    """(triangles (n, 3, 3), normals (n, 3)) parsed without trimesh: binary when the size fits 84 + 50·n."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) >= 84:
        count = struct.unpack_from("<I", data, STL_HEADER)[0]
        if len(data) == 84 + STL_RECORD.size * count:
            records = [STL_RECORD.unpack_from(data, 84 + i * STL_RECORD.size) for i in range(count)]
            values = np.array([r[:12] for r in records], dtype=float).reshape(-1, 12)
            return values[:, 3:].reshape(-1, 3, 3), values[:, :3]
    vertices, normals = [], []
    for line in data.decode().splitlines():
        words = line.split()
        if words[:1] == ["vertex"]:
            vertices.append([float(w) for w in words[1:4]])
        elif words[:2] == ["facet", "normal"]:
            normals.append([float(w) for w in words[2:5]])
    return np.array(vertices, dtype=float).reshape(-1, 3, 3), np.array(normals, dtype=float).reshape(-1, 3)


def reference_figures(path, scale_to_mm):
    """{"volume", "area", "extents": (x, y, z), "facets"} in mm, by the formulas of spec/domain/files.md §1.1."""
    triangles, _ = read_stl(path)
    triangles = triangles * scale_to_mm
    v0, v1, v2 = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    points = triangles.reshape(-1, 3)
    return {
        "volume": abs(float(np.sum(v0 * np.cross(v1, v2)))) / 6,
        "area": float(np.sum(np.linalg.norm(np.cross(v1 - v0, v2 - v0), axis=1))) / 2,
        "extents": tuple(float(e) for e in points.max(axis=0) - points.min(axis=0)),
        "facets": len(triangles),
    }


def l_bracket(arm=40.0, width=10.0, height=10.0):
    """An L-bracket (no L-bracket STL is in ../shared/data/stl, so the tests make one): two arms `arm` long and
    `width` wide meeting at the origin corner, extruded `height`, watertight (three rectangles per cap, no
    T-junctions). Its footprint is the L: (0,0) (arm,0) (arm,width) (width,width) (width,arm) (0,arm)."""
    a, w = float(arm), float(width)
    outline = [(0, 0), (w, 0), (a, 0), (a, w), (w, w), (w, a), (0, a), (0, w)]
    index = {p: i for i, p in enumerate(outline)}
    rectangles = [((0, 0), (w, 0), (w, w), (0, w)), ((w, 0), (a, 0), (a, w), (w, w)),
                  ((0, w), (w, w), (w, a), (0, a))]
    n = len(outline)
    vertices = [(x, y, 0.0) for x, y in outline] + [(x, y, float(height)) for x, y in outline]
    faces = []
    for p0, p1, p2, p3 in rectangles:
        i0, i1, i2, i3 = (index[p] for p in (p0, p1, p2, p3))
        faces += [(i0, i2, i1), (i0, i3, i2)]  # bottom, facing down
        faces += [(i0 + n, i1 + n, i2 + n), (i0 + n, i2 + n, i3 + n)]  # top, facing up
    for i in range(n):
        j = (i + 1) % n
        faces += [(i, j, j + n), (i, j + n, i + n)]
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=True)
    trimesh.repair.fix_normals(mesh)
    return mesh


def l_bracket_stl(path, arm=40.0, width=10.0, height=10.0):
    return mesh_stl(path, l_bracket(arm, width, height))
