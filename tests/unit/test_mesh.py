"""Mesh analysis: every figure against an independent reference (tests.kit.meshes) and the analytic values,
units, topology flags, and the files that must be refused, with the status they lead to."""
import random
import struct
import zipfile

import numpy as np
import pytest
import trimesh

from services.files.mesh import MeshError, analyze, detect_format
from tests.kit.meshes import box_stl, icosphere_stl, mesh_stl, reference_figures, write_stl

INCH = 25.4
BOX = trimesh.creation.box(extents=(10, 20, 30))


def two_boxes():
    other = trimesh.creation.box(extents=(5, 5, 5))
    other.apply_translation((40, 0, 0))
    return trimesh.util.concatenate([BOX, other])


def open_box():
    return trimesh.Trimesh(BOX.vertices, BOX.faces[:-2], process=False)  # one side (two triangles) missing


def flipped_box(path, ascii):
    """Faces 0 and 5 wound backwards while their stored normals still point outwards: inverted triangles."""
    triangles = BOX.triangles.copy()
    triangles[[0, 5]] = triangles[[0, 5]][:, ::-1]
    return write_stl(path, triangles, BOX.face_normals, ascii=ascii)


def inside_out_box(path, ascii):
    """Every face wound backwards, normals agreeing with the winding: a closed body of negative volume."""
    return write_stl(path, BOX.triangles[:, ::-1], -BOX.face_normals, ascii=ascii)


CLOSED = {"manifold": True, "watertight": True, "winding_consistent": True, "inverted_triangles": 0,
          "degenerate_triangles": 0, "bodies": 1}
CASES = {
    # name: (write(path, ascii), file_unit, file unit → mm, expected analyses)
    "box": (lambda p, a: box_stl(p, ascii=a), "mm", 1.0, CLOSED),
    "icosphere": (lambda p, a: icosphere_stl(p, subdivisions=3, radius=12.5, ascii=a), "mm", 1.0, CLOSED),
    "cylinder": (lambda p, a: mesh_stl(p, trimesh.creation.cylinder(radius=4, height=9, sections=48), a),
                 "mm", 1.0, CLOSED),
    "box in inches": (lambda p, a: box_stl(p, ascii=a, unit_scale=1 / INCH), "in", INCH, CLOSED),
    "icosphere in cm": (lambda p, a: icosphere_stl(p, radius=3, ascii=a), "cm", 10.0, CLOSED),
    "two boxes": (lambda p, a: mesh_stl(p, two_boxes(), a), "mm", 1.0, {**CLOSED, "bodies": 2}),
    "open box": (lambda p, a: mesh_stl(p, open_box(), a), "mm", 1.0,
                 {**CLOSED, "manifold": False, "watertight": False}),
    "flipped faces": (flipped_box, "mm", 1.0, {**CLOSED, "winding_consistent": False, "inverted_triangles": 2}),
    "inside out": (inside_out_box, "mm", 1.0, {**CLOSED, "inverted_triangles": 12}),
}


@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
@pytest.mark.parametrize("name", CASES)
def test_figures_match_an_independent_computation(tmp_path, name, ascii):
    write, file_unit, scale, expected = CASES[name]
    path = write(tmp_path / "part.stl", ascii)
    reference = reference_figures(path, scale)
    result = analyze(path, file_unit)
    assert result["volume_mm"] == pytest.approx(reference["volume"], rel=1e-9, abs=1e-9)
    assert result["surface_area_mm"] == pytest.approx(reference["area"], rel=1e-9)
    assert tuple(result["size"].values()) == pytest.approx(reference["extents"], rel=1e-9)
    assert result["polygons"] == reference["facets"]
    assert result["file_size"] == path.stat().st_size
    analyses = result["analyses"]
    assert {key: analyses[key] for key in expected} == expected
    assert analyses["format"] == ("stl-ascii" if ascii else "stl-binary")
    assert (analyses["unit"], analyses["unit_source"]) == (file_unit, "declared")


@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
@pytest.mark.parametrize("file_unit, scale", [("mm", 1.0), ("in", 1 / INCH), ("feet", 1 / 304.8), ("m", 0.001)])
def test_box_matches_the_analytic_values_in_any_unit(tmp_path, ascii, file_unit, scale):
    result = analyze(box_stl(tmp_path / "box.stl", ascii=ascii, unit_scale=scale), file_unit)
    assert result["volume_mm"] == pytest.approx(6000, rel=1e-6)
    assert result["surface_area_mm"] == pytest.approx(2200, rel=1e-6)
    assert result["size"] == pytest.approx({"x": 10, "y": 20, "z": 30}, rel=1e-6)
    assert result["polygons"] == 12


def test_one_facet_per_record_and_no_merging(tmp_path):
    """A sphere's facets share vertices; the count is still the file's facet count, and the surface is closed."""
    path = icosphere_stl(tmp_path / "ball.stl", subdivisions=4, radius=20)
    result = analyze(path, "mm")
    assert result["polygons"] == 20 * 4 ** 4 == reference_figures(path, 1.0)["facets"]
    assert result["analyses"]["manifold"] and result["analyses"]["bodies"] == 1


# -- units ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
@pytest.mark.parametrize("header, unit", [(b"UNITS=in", "in"), (b"part units = mm", "mm"), (b"size in inches", "in"),
                                          (b"Millimetres", "mm"), (b"UNITS=cm", "cm")])
def test_a_unit_named_in_the_header_wins(tmp_path, ascii, header, unit):
    scale = {"in": INCH, "mm": 1.0, "cm": 10.0}[unit]
    path = box_stl(tmp_path / "box.stl", ascii=ascii, unit_scale=1 / scale, header=header)
    result = analyze(path)
    assert (result["analyses"]["unit"], result["analyses"]["unit_source"]) == (unit, "header")
    assert result["volume_mm"] == pytest.approx(6000, rel=1e-6)


@pytest.mark.parametrize("dims, header, unit", [
    ((10, 20, 30), b"", "mm"),
    ((0.5, 1.0, 1.5), b"", "in"),  # under 2 units: inches
    ((10, 20, 30), b"Created in SomeCAD", "mm"),  # the word "in" names no unit
])
def test_without_a_header_unit_the_size_decides(tmp_path, dims, header, unit):
    result = analyze(box_stl(tmp_path / "box.stl", dims=dims, header=header))
    assert (result["analyses"]["unit"], result["analyses"]["unit_source"]) == (unit, "size")
    assert result["size"]["z"] == pytest.approx(dims[2] * (INCH if unit == "in" else 1), rel=1e-6)


def test_a_declared_unit_beats_the_header(tmp_path):
    result = analyze(box_stl(tmp_path / "box.stl", header=b"UNITS=in"), "cm")
    assert (result["analyses"]["unit"], result["analyses"]["unit_source"]) == ("cm", "declared")
    assert result["volume_mm"] == pytest.approx(6_000_000, rel=1e-6)


def test_an_unknown_declared_unit_is_an_error(tmp_path):
    with pytest.raises(MeshError) as error:
        analyze(box_stl(tmp_path / "box.stl"), "furlong")
    assert error.value.status == "error" and "furlong" in error.value.reason


# -- other formats ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("file_type, fmt, source", [("obj", "obj", "size"), ("ply", "ply", "size"),
                                                    ("3mf", "3mf", "header")])
def test_other_formats_of_a_box(tmp_path, file_type, fmt, source):
    path = tmp_path / f"box.{file_type}"
    BOX.export(path, file_type=file_type)
    assert detect_format(path) == fmt
    result = analyze(path)
    assert result["volume_mm"] == pytest.approx(6000)
    assert result["surface_area_mm"] == pytest.approx(2200)
    assert result["size"] == pytest.approx({"x": 10, "y": 20, "z": 30})
    assert result["polygons"] == 12 and result["file_size"] == path.stat().st_size
    assert {key: result["analyses"][key] for key in CLOSED} == CLOSED
    assert (result["analyses"]["format"], result["analyses"]["unit"], result["analyses"]["unit_source"]) == (
        fmt, "mm", source)


def test_a_binary_stl_whose_header_says_solid_is_still_binary(tmp_path):
    path = box_stl(tmp_path / "box.stl", header=b"solid exported by a careless tool")
    assert detect_format(path) == "stl-binary"
    assert analyze(path, "mm")["volume_mm"] == pytest.approx(6000)


def test_an_ascii_stl_with_two_solids(tmp_path):
    one = box_stl(tmp_path / "a.stl", ascii=True).read_text()
    path = tmp_path / "two.stl"
    path.write_text(one + one.replace("solid", "solid other"))
    result = analyze(path, "mm")
    assert result["polygons"] == 24 and result["volume_mm"] == pytest.approx(12000)


def test_zero_normals_are_not_inversions(tmp_path):
    triangles = BOX.triangles.copy()
    triangles[[0, 5]] = triangles[[0, 5]][:, ::-1]
    result = analyze(write_stl(tmp_path / "box.stl", triangles), "mm")
    assert result["analyses"]["inverted_triangles"] == 0
    assert result["analyses"]["winding_consistent"] is False


def test_degenerate_facets_are_counted(tmp_path):
    sliver = [[0, 0, 0], [1, 1, 1], [2, 2, 2]]  # collinear: zero area
    result = analyze(write_stl(tmp_path / "box.stl", np.concatenate([BOX.triangles, [sliver]])), "mm")
    assert result["analyses"]["degenerate_triangles"] == 1 and result["polygons"] == 13


# -- refused files ----------------------------------------------------------------------------------------------------

def refused(path, file_unit="mm"):
    with pytest.raises(MeshError) as error:
        analyze(path, file_unit)
    return error.value.status, error.value.reason


def test_empty_file(tmp_path):
    (tmp_path / "empty.stl").write_bytes(b"")
    status, reason = refused(tmp_path / "empty.stl")
    assert status == "inoperable" and "empty" in reason


def test_binary_stl_without_facets(tmp_path):
    (tmp_path / "none.stl").write_bytes(b"\x00" * 80 + struct.pack("<I", 0))
    status, reason = refused(tmp_path / "none.stl")
    assert status == "inoperable" and "no facets" in reason


def test_ascii_stl_without_facets(tmp_path):
    (tmp_path / "none.stl").write_text("solid nothing\nendsolid nothing\n")
    assert refused(tmp_path / "none.stl")[0] == "inoperable"


def test_truncated_binary_stl(tmp_path):
    path = box_stl(tmp_path / "box.stl")
    path.write_bytes(path.read_bytes()[:-20])
    status, reason = refused(path)
    assert status == "error"
    assert "not a valid binary STL: 664 bytes for 12 facets (expected 684)" in reason


def test_forged_facet_count(tmp_path):
    path = box_stl(tmp_path / "box.stl")
    data = bytearray(path.read_bytes())
    data[80:84] = struct.pack("<I", 2 ** 32 - 1)
    path.write_bytes(bytes(data))
    status, reason = refused(path)
    assert status == "error" and "4,294,967,295 facets" in reason


def test_truncated_ascii_stl(tmp_path):
    path = box_stl(tmp_path / "box.stl", ascii=True)
    path.write_text(path.read_text()[:-200])
    status, reason = refused(path)
    assert status == "error" and "endsolid" in reason


def test_garbage_bytes(tmp_path):
    (tmp_path / "noise.stl").write_bytes(random.Random(7).randbytes(5000))
    status, reason = refused(tmp_path / "noise.stl")
    assert status == "error" and "not a valid binary STL" in reason


def test_text_that_is_not_a_mesh(tmp_path):
    (tmp_path / "notes.stl").write_text("Dear bureau,\nplease print my part.\n" * 20)
    assert detect_format(tmp_path / "notes.stl") is None
    status, reason = refused(tmp_path / "notes.stl")
    assert status == "error" and "text but not a mesh" in reason


@pytest.mark.parametrize("ascii", [False, True], ids=["binary", "ascii"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_vertices(tmp_path, ascii, bad):
    triangles = BOX.triangles.copy()
    triangles[3, 1, 2] = bad
    status, reason = refused(write_stl(tmp_path / "box.stl", triangles, BOX.face_normals, ascii=ascii))
    assert status == "error" and "NaN or infinity" in reason


def test_all_facets_degenerate(tmp_path):
    triangles = np.repeat(BOX.vertices[:, None, :], 3, axis=1)  # every facet is one point
    status, reason = refused(write_stl(tmp_path / "dots.stl", triangles))
    assert status == "inoperable" and "zero area" in reason


# -- archives ----------------------------------------------------------------------------------------------------

def three_mf(path, extra=()):
    """A real 3MF of the box, plus extra (name, bytes) members."""
    BOX.export(path, file_type="3mf")
    with zipfile.ZipFile(path, "a") as archive:
        for name, data in extra:
            archive.writestr(name, data)
    return path


def test_path_traversal_in_a_3mf(tmp_path):
    status, reason = refused(three_mf(tmp_path / "evil.3mf", [("../evil.model", b"<model/>")]))
    assert status == "error" and "../evil.model" in reason


def test_absolute_member_name(tmp_path):
    path = three_mf(tmp_path / "evil.3mf")
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("3D/x.model")
        info.filename = "/etc/evil.model"  # ZipInfo strips a leading slash; the attribute keeps it
        archive.writestr(info, b"<model/>")
    status, reason = refused(path)
    assert status == "error" and "/etc/evil.model" in reason


def test_nested_archive(tmp_path):
    inner = three_mf(tmp_path / "inner.3mf").read_bytes()
    status, reason = refused(three_mf(tmp_path / "outer.3mf", [("3D/Other/parts.bin", inner)]))
    assert status == "error" and "nested" in reason


def test_zip_bomb(tmp_path):
    """200 MB of zeros streamed into one deflated member: about 200 kB on disk."""
    path = three_mf(tmp_path / "bomb.3mf")
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("3D/padding.model", "w") as member:
            for _ in range(200):
                member.write(zeros)
    assert path.stat().st_size < 1_000_000
    status, reason = refused(path)
    assert status == "error" and "zip bomb" in reason


def test_too_many_entries(tmp_path):
    path = three_mf(tmp_path / "many.3mf")
    with zipfile.ZipFile(path, "a") as archive:
        for number in range(10_001):
            archive.writestr(f"Metadata/{number}.txt", b"")
    status, reason = refused(path)
    assert status == "error" and "entries" in reason


def test_a_zip_that_is_not_a_3mf(tmp_path):
    with zipfile.ZipFile(tmp_path / "parts.zip", "w") as archive:
        archive.writestr("readme.txt", b"hello")
    status, reason = refused(tmp_path / "parts.zip")
    assert status == "error" and "not a 3MF" in reason
