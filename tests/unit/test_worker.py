"""The analysis subprocess: real child processes, answers as the service will read them."""
from PIL import Image

from services.files.worker import run
from tests.kit.meshes import box_stl, reference_figures


def test_a_good_stl_is_analysed(tmp_path):
    path = box_stl(tmp_path / "box.stl", unit_scale=1 / 25.4)
    reply = run(["analyze", path, "in"], timeout=60)
    assert reply["ok"] is True
    result, reference = reply["result"], reference_figures(path, 25.4)
    assert result["volume_mm"] == reference["volume"] and result["surface_area_mm"] == reference["area"]
    assert tuple(result["size"].values()) == reference["extents"] and result["polygons"] == reference["facets"]
    assert result["analyses"]["unit"] == "in" and result["analyses"]["manifold"] is True


def test_autodetected_units_are_asked_for_with_a_dash(tmp_path):
    reply = run(["analyze", box_stl(tmp_path / "box.stl", header=b"UNITS=mm"), "-"], timeout=60)
    assert reply["result"]["analyses"]["unit_source"] == "header"


def test_a_garbage_file_is_a_failure_not_a_crash(tmp_path):
    (tmp_path / "noise.stl").write_bytes(bytes(range(256)) * 20)
    reply = run(["analyze", tmp_path / "noise.stl", "mm"], timeout=60)
    assert reply["ok"] is False and reply["status"] == "error"
    assert "binary STL" in reply["reason"]


def test_an_empty_file_is_inoperable(tmp_path):
    (tmp_path / "empty.stl").write_bytes(b"")
    assert run(["analyze", tmp_path / "empty.stl", "mm"], timeout=60)["status"] == "inoperable"


def test_a_render(tmp_path):
    out = tmp_path / "snapshot.png"
    reply = run(["render", box_stl(tmp_path / "box.stl"), out, 120, 90, "#FF7F00", "mm"], timeout=60)
    assert reply == {"ok": True}
    with Image.open(out) as image:
        assert image.size == (120, 90)


def test_bad_arguments_are_a_failure(tmp_path):
    reply = run(["render", tmp_path / "box.stl", "out.png", "wide", "90", "#FF7F00", "mm"], timeout=60)
    assert reply["ok"] is False and reply["status"] == "error" and reply["reason"]


def test_a_timeout_is_a_failure_with_a_reason(tmp_path):
    reply = run(["analyze", box_stl(tmp_path / "box.stl"), "mm"], timeout=0.01)
    assert reply["ok"] is False and reply["status"] == "error"
    assert "longer than 0.01 s" in reply["reason"]


def test_a_mesh_larger_than_the_memory_allowed_fails_its_own_job_clearly(tmp_path):
    import trimesh

    path = tmp_path / "big.stl"
    trimesh.creation.uv_sphere(radius=50, count=[400, 400]).export(path)  # ~640k triangles
    reply = run(["analyze", str(path), "mm"], timeout=120, memory_mb=400)
    assert reply["ok"] is False and reply["status"] == "error"
    assert "400 MB of memory" in reply["reason"] and "STRATUM_ANALYSIS_MEMORY_MB" in reply["reason"]
    assert run(["analyze", str(path), "mm"], timeout=120)["ok"] is True  # the default leaves room for it
