"""Mesh analysis for uploaded models: format detection, units, and the figures the model resource reports
(spec/domain/files.md §1.1, "Mesh numbers"; guides/reliability.md S5 zip bombs, S6 binary STL).

Pure functions, no service machinery: the files service runs them in a child process (services.files.worker) so that
a hostile or huge file can only take that child down.
"""
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

UNIT_SCALE = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4, "feet": 304.8}
# 3MF may declare microns, which the API's file_unit cannot express; only a file's own declaration can select it.
_DECLARED_SCALE = {**UNIT_SCALE, "micron": 0.001}
INCH_BELOW = 2.0  # autodetect: a part whose largest extent is under 2 file units is taken to be in inches

HEAD_BYTES = 64 * 1024  # enough to see an STL/PLY/OBJ preamble; the rest of a file is never needed to tell formats
TAIL_BYTES = 4 * 1024
STL_HEADER = 80
STL_RECORD = 50  # 12 floats + a uint16 attribute
WELD_DIGITS = 4  # vertices closer than ~0.1 µm (after scaling to mm) are one vertex: far above float32 noise
DEGENERATE_AREA = 1e-12  # twice-area below this × (largest extent)² counts as zero area

ZIP_MAX_ENTRIES = 10_000
ZIP_MAX_TOTAL = 1 << 30  # uncompressed bytes, counted while streaming
ZIP_MAX_RATIO = 100
ZIP_RATIO_FLOOR = 1 << 20  # a member under 1 MiB cannot be a bomb whatever its ratio (tiny XML parts compress well)
ZIP_CHUNK = 1 << 20
ARCHIVE_SUFFIXES = (".zip", ".3mf", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar", ".zst")
ARCHIVE_MAGICS = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"Rar!",
                  b"\x28\xb5\x2f\xfd")  # zip, gzip, bzip2, xz, 7z, rar, zstd


class MeshError(Exception):
    """A file we cannot analyse. status is the model status it leads to: "error" (unreadable, corrupt, hostile) or
    "inoperable" (readable but with nothing printable in it); reason is a sentence for the user."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Loaded:
    triangles: np.ndarray  # (n, 3, 3) float64, in mm
    stored_normals: np.ndarray | None  # (n, 3) facet normals as written in the file (STL only), zeros = none given
    facets: int  # facets in the file, before any cleanup
    format: str
    unit: str
    unit_source: str  # "declared" | "header" | "size"
    file_size: int


# -- format detection ---------------------------------------------------------------------------------------------

def _head_and_tail(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        f.seek(max(0, size - TAIL_BYTES))
        tail = f.read()
    return size, head, tail


def _binary_stl_count(head):
    return struct.unpack_from("<I", head, STL_HEADER)[0]


def _is_text(data):
    # ASCII formats never hold NULs or C0 controls other than whitespace; binary data and noise almost always do.
    return not re.search(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]", data)


def _is_3mf(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.lower().startswith("3d/") and n.lower().endswith(".model") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _looks_like_obj(head, tail):
    # Vertices come first, faces often only at the end of a large file: look for "v" lines in the head and "f"
    # lines in either end.
    return bool(re.search(rb"(?m)^[ \t]*v[ \t]", head) and re.search(rb"(?m)^[ \t]*f[ \t]", head + b"\n" + tail))


def detect_format(path):
    """"stl-binary", "stl-ascii", "obj", "ply", "3mf", or None. Reads the head and tail of the file only."""
    size, head, tail = _head_and_tail(path)
    # Exact size first: a binary STL whose header happens to start with "solid" is still binary (S6).
    if size >= STL_HEADER + 4 and size == STL_HEADER + 4 + STL_RECORD * _binary_stl_count(head):
        return "stl-binary"
    if head.startswith(b"PK\x03\x04"):
        return "3mf" if _is_3mf(path) else None
    if head.startswith((b"ply\n", b"ply\r\n")):
        return "ply"
    if not _is_text(head):
        return None
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:5].lower() == b"solid" and (
            b"facet" in head.lower() or b"endsolid" in tail.lower()):
        return "stl-ascii"
    if _looks_like_obj(head, tail):
        return "obj"
    return None


def _unrecognised(size, head):
    if _is_text(head):
        if head.lstrip()[:5].lower() == b"solid":
            return MeshError("error", "The file starts like an ASCII STL ('solid') but holds no facets and no "
                                      "'endsolid': it is not a valid STL.")
        return MeshError("error", "The file is text but not a mesh format we read (ASCII STL, OBJ or PLY).")
    if size < STL_HEADER + 4:
        return MeshError("error", f"The file is not a mesh format we read: {size:,} bytes is too short even for "
                                  "a binary STL header (84 bytes).")
    count = _binary_stl_count(head)
    return MeshError("error", f"The file is not a valid binary STL: {size:,} bytes for {count:,} facets "
                              f"(expected {STL_HEADER + 4 + STL_RECORD * count:,}), and not another format we read "
                              "(ASCII STL, OBJ, PLY, 3MF).")


# -- archives (3MF is a zip) ----------------------------------------------------------------------------------------

def _unsafe_name(name):
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts


def check_archive(path):
    """Refuse zip bombs, nested archives and path traversal before any zip reader acts on the file (S5).
    Sizes are counted by decompressing every member, since the sizes in the zip directory are whatever the
    author wrote there."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise MeshError("error", f"The file looks like a zip archive (3MF) but cannot be read: {error}.") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > ZIP_MAX_ENTRIES:
            raise MeshError("error", f"The archive has {len(infos):,} entries, more than the {ZIP_MAX_ENTRIES:,} "
                                     "allowed.")
        for info in infos:
            if _unsafe_name(info.filename):
                raise MeshError("error", f"The archive contains an unsafe member name {info.filename!r} (absolute "
                                         "or with '..').")
            if info.filename.lower().endswith(ARCHIVE_SUFFIXES):
                raise MeshError("error", f"The archive contains another archive ({info.filename!r}); nested "
                                         "archives are not accepted.")
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            produced = 0
            try:
                with archive.open(info) as member:
                    while chunk := member.read(ZIP_CHUNK):
                        if produced == 0 and chunk.startswith(ARCHIVE_MAGICS):
                            raise MeshError("error", f"The archive member {info.filename!r} is itself an archive; "
                                                     "nested archives are not accepted.")
                        produced += len(chunk)
                        total += len(chunk)
                        if total > ZIP_MAX_TOTAL:
                            raise MeshError("error", "The archive expands to more than 1 GiB; it is refused as a "
                                                     "possible zip bomb.")
                        if produced > ZIP_RATIO_FLOOR and produced > ZIP_MAX_RATIO * max(info.compress_size, 1):
                            raise MeshError("error", f"The archive member {info.filename!r} expands more than "
                                                     f"{ZIP_MAX_RATIO} times its compressed size; it is refused "
                                                     "as a possible zip bomb.")
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
                raise MeshError("error", f"The archive member {info.filename!r} cannot be read: {error}.") from None


# -- units --------------------------------------------------------------------------------------------------------

_UNIT_KEYED = re.compile(r"\bunits?\s*[=:]\s*[\"']?([a-z]+)", re.I)
# Free-text unit words. Bare "in", "m" and "ft" only count after UNITS=: as words they are far too common.
_UNIT_WORD = re.compile(r"\b(millimet\w*|mm|centimet\w*|cm|met(?:er|re)s?|inch(?:es)?|feet|foot)\b", re.I)


def _unit_name(word):
    word = word.lower()
    if word == "mm" or word.startswith("millim"):
        return "mm"
    if word == "cm" or word.startswith("centim"):
        return "cm"
    if word in ("m", "meter", "metre", "meters", "metres"):
        return "m"
    if word in ("in", "inch", "inches"):
        return "in"
    if word in ("ft", "feet", "foot"):
        return "feet"
    if word in ("micron", "microns", "um"):
        return "micron"
    return None


def header_unit(text):
    """The unit a header or solid name names ("UNITS=in", "inch", "mm", "millimetres"...), or None."""
    if match := _UNIT_KEYED.search(text):
        if unit := _unit_name(match.group(1)):
            return unit
    if match := _UNIT_WORD.search(text):
        return _unit_name(match.group(1))
    return None


def _choose_unit(file_unit, declared, raw_extent):
    if file_unit is not None:
        if file_unit not in _DECLARED_SCALE:  # "micron" too: a renderer may be handed a 3MF's analysed unit back
            raise MeshError("error", f"Unknown file unit {file_unit!r}; expected one of {', '.join(UNIT_SCALE)}.")
        return file_unit, "declared"
    if declared is not None:
        return declared, "header"
    return ("in" if raw_extent < INCH_BELOW else "mm"), "size"


# -- loading --------------------------------------------------------------------------------------------------------

def _load_binary_stl(path, head):
    count = _binary_stl_count(head)
    if count == 0:
        raise MeshError("inoperable", "The STL file contains no facets.")
    with open(path, "rb") as f:
        data = trimesh.exchange.stl.load_stl_binary(f)  # reads the file once; arrays are views on those bytes
    header = head[:STL_HEADER].split(b"\x00", 1)[0].decode("latin-1")
    return data["vertices"].reshape(-1, 3, 3), data["face_normals"], header_unit(header)


def _load_ascii_stl(path, head, tail):
    if b"endsolid" not in tail.lower():
        raise MeshError("error", "The ASCII STL is truncated: it does not end with 'endsolid'.")
    try:
        with open(path, "rb") as f:
            data = trimesh.exchange.stl.load_stl_ascii(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise MeshError("error", f"The ASCII STL cannot be parsed: {error}.") from None
    solids = list(data["geometry"].values()) if "geometry" in data else [data]
    solids = [s for s in solids if len(s["vertices"])]
    if not solids:
        raise MeshError("inoperable", "The STL file contains no facets.")
    triangles = np.concatenate([s["vertices"].reshape(-1, 3, 3) for s in solids])
    normals = np.concatenate([s["face_normals"] if s["face_normals"] is not None
                              else np.zeros((len(s["faces"]), 3)) for s in solids])
    first_line = head.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0][5:].decode("utf-8", "replace")
    return triangles, normals, header_unit(first_line)


def _load_with_trimesh(path, fmt):
    try:
        mesh = trimesh.load(path, file_type=fmt, force="mesh", process=False)
    except Exception as error:  # trimesh's loaders raise anything from KeyError to lxml errors on bad input
        raise MeshError("error", f"The {fmt.upper()} file cannot be read: {type(error).__name__}: {error}.") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise MeshError("inoperable", f"The {fmt.upper()} file contains no triangles.")
    units = _unit_name(mesh.units) if getattr(mesh, "units", None) else None
    return mesh.vertices[mesh.faces], None, units


def load_triangles(path, file_unit=None):
    """Read any supported mesh file into a Loaded (triangles in mm). Raises MeshError for what cannot be used.

    Units: file_unit (a UNIT_SCALE key) is what the uploader declared and always wins ("declared"). file_unit=None
    asks for autodetection: a unit named in the file itself wins ("header": the STL header or ASCII solid name,
    e.g. "UNITS=in", "inch", "mm", "millimetres"; a 3MF's model unit); otherwise the size decides ("size"): a part
    whose largest extent is under 2 file units is taken to be in inches (a 2 mm part is rare, a 2 inch one is not),
    anything larger in mm, the bureau default.
    """
    size, head, tail = _head_and_tail(path)
    if size == 0:
        raise MeshError("inoperable", "The file is empty (0 bytes).")
    fmt = detect_format(path)
    if head.startswith(b"PK\x03\x04") and fmt in ("3mf", None):
        check_archive(path)  # before trimesh, or anything else, opens it
        if fmt is None:
            raise MeshError("error", "The file is a zip archive but not a 3MF: it has no 3D/*.model part.")
    if fmt is None:
        raise _unrecognised(size, head)
    if fmt == "stl-binary":
        raw, normals, declared = _load_binary_stl(path, head)
    elif fmt == "stl-ascii":
        raw, normals, declared = _load_ascii_stl(path, head, tail)
    else:
        raw, normals, declared = _load_with_trimesh(path, fmt)
    facets = len(raw)
    if not np.isfinite(raw).all():
        bad = int((~np.isfinite(raw)).any(axis=(1, 2)).sum())
        raise MeshError("error", f"The file has {bad:,} facets with non-finite vertex coordinates (NaN or "
                                 "infinity).")
    raw_extent = float((raw.max(axis=(0, 1)) - raw.min(axis=(0, 1))).max())
    unit, source = _choose_unit(file_unit, declared, raw_extent)
    triangles = np.multiply(raw, _DECLARED_SCALE[unit], dtype=np.float64)  # the one full-size float64 copy
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64)
    return Loaded(triangles, normals, facets, fmt, unit, source, size)


# -- analysis -------------------------------------------------------------------------------------------------------

def _topology(triangles):
    """Weld vertices and look at the edges: the manifold, watertight and winding flags, a body label per face (-1 for
    faces that welding collapses to an edge or a point: they have no edges of their own), and which faces touch an
    edge not shared by exactly two faces. Zero-area faces with three distinct vertices stay: their neighbours share
    their edges, so dropping them would open the surface."""
    _, inverse = trimesh.grouping.unique_rows(triangles.reshape(-1, 3), digits=WELD_DIGITS)
    faces = inverse.reshape(-1, 3)
    collapsed = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    index = np.flatnonzero(~collapsed)
    faces = faces[index].astype(np.int64)
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    owner = np.repeat(np.arange(len(faces)), 3)
    low, high = directed.min(axis=1), directed.max(axis=1)
    key = low * (int(inverse.max()) + 1) + high
    _, edge, counts = np.unique(key, return_inverse=True, return_counts=True)
    # +1 when a face walks the edge low→high, -1 otherwise: a consistently wound surface walks each shared edge
    # once each way, so the sum over its faces is zero.
    walk = np.bincount(edge, weights=np.where(directed[:, 0] < directed[:, 1], 1.0, -1.0))
    shared = counts >= 2
    flags = {
        "manifold": bool(len(counts)) and bool((counts == 2).all()),
        "watertight": bool(len(counts)) and bool(shared.all()),  # no boundary edge, though maybe non-manifold
        "winding_consistent": bool((walk[shared] == 0).all()),
    }
    # Faces sharing an edge are neighbours: link each to the next one on the same edge, then take components.
    order = np.argsort(edge, kind="stable")
    same = edge[order][1:] == edge[order][:-1]
    a, b = owner[order][:-1][same], owner[order][1:][same]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(faces), len(faces)))
    bodies, labels = connected_components(graph, directed=False)
    open_face = np.bincount(owner, weights=(counts[edge] != 2).astype(float), minlength=len(faces)) > 0
    all_labels = np.full(len(triangles), -1)
    all_labels[index] = labels
    open_all = np.zeros(len(triangles), dtype=bool)
    open_all[index] = open_face
    return flags, int(bodies), all_labels, open_all


def analyze(path, file_unit=None):
    """The figures of the model resource for one mesh file, all in mm (see load_triangles for the units rules):

    {"volume_mm", "surface_area_mm", "size": {"x", "y", "z"}, "polygons", "file_size",
     "analyses": {"manifold", "watertight", "winding_consistent", "inverted_triangles", "degenerate_triangles",
                  "bodies", "format", "unit", "unit_source"}}

    manifold: every edge (after welding vertices) has exactly two faces. watertight: no edge has fewer than two
    (closed, but maybe with edges shared by four faces). winding_consistent: every shared edge is walked equally
    often in both directions. inverted_triangles: STL facets whose stored normal points against their winding, plus
    every face of a closed body with negative signed volume. polygons is the facet count of the file (for OBJ, PLY
    and 3MF: triangles after trimesh splits polygons). Raises MeshError.
    """
    loaded = load_triangles(path, file_unit)
    tri = loaded.triangles
    v0, v1, v2 = tri[:, 0], tri[:, 1], tri[:, 2]
    winding = np.cross(v1 - v0, v2 - v0)  # twice the area, along the normal the vertex order gives
    double_area = np.linalg.norm(winding, axis=1)
    # Signed tetrahedra against the origin, as the spec defines it: only meaningful for closed, consistently
    # oriented meshes, but reported for every mesh (an open one still gets its other figures).
    signed6 = np.einsum("ij,ij->i", v0, np.cross(v1, v2))
    low, high = tri.min(axis=(0, 1)), tri.max(axis=(0, 1))
    extents = high - low
    degenerate = double_area <= DEGENERATE_AREA * max(float(extents.max()), 1e-9) ** 2
    if degenerate.all():
        raise MeshError("inoperable", f"All {loaded.facets:,} facets have zero area: the mesh has no surface.")
    flags, bodies, labels, open_face = _topology(tri)
    degenerate |= labels < 0  # collapsed by welding

    inverted = np.zeros(len(tri), dtype=bool)
    if loaded.stored_normals is not None:
        stored = loaded.stored_normals
        has_normal = np.abs(stored).sum(axis=1) > 0
        inverted |= has_normal & ~degenerate & (np.einsum("ij,ij->i", stored, winding) < 0)
    live = labels >= 0
    body_volume = np.bincount(labels[live], weights=signed6[live], minlength=bodies)
    body_open = np.bincount(labels[live], weights=open_face[live].astype(float), minlength=bodies) > 0
    inside_out = ~body_open & (body_volume < 0)
    inverted[live] |= inside_out[labels[live]]

    return {
        "volume_mm": float(abs(signed6.sum()) / 6.0),
        "surface_area_mm": float(double_area.sum() / 2.0),
        "size": {"x": float(extents[0]), "y": float(extents[1]), "z": float(extents[2])},
        "polygons": int(loaded.facets),
        "file_size": int(loaded.file_size),
        "analyses": {
            **flags,
            "inverted_triangles": int(inverted.sum()),
            "degenerate_triangles": int(degenerate.sum()),
            "bodies": bodies,
            "format": loaded.format,
            "unit": loaded.unit,
            "unit_source": loaded.unit_source,
        },
    }
