"""Snapshot rendering: real PNGs, checked by their pixels."""
import numpy as np
import pytest
import trimesh
from PIL import Image

from services.files.mesh import MeshError
from services.files.render import POLYGON_BUDGET, render_png
from tests.kit.meshes import box_stl, icosphere_stl, mesh_stl

WHITE = (255, 255, 255)


def pixels(path):
    with Image.open(path) as image:
        image.load()
        return image.format, image.size, np.asarray(image.convert("RGB")).astype(int)


def is_orange(rgb):
    """Shades of #FF7F00: red leads, green about half of it, no blue."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r > 60) & (abs(g - r / 2) < 0.1 * r + 8) & (b < 20)


@pytest.mark.parametrize("write, size", [
    (lambda p: box_stl(p), (320, 240)),
    (lambda p: icosphere_stl(p, subdivisions=3, radius=15), (200, 260)),
])
def test_a_mesh_renders_in_colour_on_a_white_background(tmp_path, write, size):
    out = tmp_path / "snapshot.png"
    render_png(write(tmp_path / "part.stl"), out, *size)
    fmt, got_size, rgb = pixels(out)
    assert fmt == "PNG" and got_size == size
    width, height = size
    centre = rgb[height * 2 // 5: height * 3 // 5, width * 2 // 5: width * 3 // 5]
    assert is_orange(centre).mean() > 0.95
    for corner in (rgb[:8, :8], rgb[:8, -8:], rgb[-8:, :8], rgb[-8:, -8:]):
        assert (corner == WHITE).all()


def test_the_colour_is_the_requested_one(tmp_path):
    out = tmp_path / "snapshot.png"
    render_png(box_stl(tmp_path / "box.stl"), out, 160, 120, color="#2050FF")
    _, _, rgb = pixels(out)
    centre = rgb[50:70, 70:90]
    assert (centre[..., 2] > centre[..., 0]).all() and (centre[..., 2] > centre[..., 1]).all()


def test_a_large_mesh_is_drawn_without_holes(tmp_path):
    """Past the polygon budget the far faces are rasterised in numpy; the sphere must still be solid."""
    sphere = trimesh.creation.uv_sphere(radius=50, count=[230, 460])
    assert len(sphere.faces) / 2 > POLYGON_BUDGET  # about half the faces face the camera
    out = tmp_path / "ball.png"
    render_png(mesh_stl(tmp_path / "ball.stl", sphere), out, 200, 200)
    _, _, rgb = pixels(out)
    y, x = np.mgrid[:200, :200]
    disc = (x - 99.5) ** 2 + (y - 99.5) ** 2 < 86 ** 2  # the sphere: radius ~88 px, rim splatted
    assert is_orange(rgb[disc]).all()


def test_a_file_that_is_not_a_mesh_raises(tmp_path):
    (tmp_path / "noise.stl").write_bytes(bytes(range(256)) * 20)
    with pytest.raises(MeshError) as error:
        render_png(tmp_path / "noise.stl", tmp_path / "out.png")
    assert error.value.status == "error"
    assert not (tmp_path / "out.png").exists()
