"""Snapshot thumbnails of a mesh without OpenGL or a display: a small numpy software renderer drawing into Pillow.

Fixed isometric-style camera (z up, seen from the front-right, above), orthographic, fitted to the image. Faces
turned away are culled, the rest are flat-shaded (Lambert plus ambient) and painted far to near. Beyond
POLYGON_BUDGET visible faces the farther ones are rasterised as pixels in numpy (nearest wins per pixel) so that a
multi-million-triangle mesh still renders in seconds; they are painted first, so the painter's order holds.
"""
import numpy as np
from PIL import Image, ImageColor, ImageDraw

from services.files.mesh import load_triangles

SUPERSAMPLE = 2  # draw at twice the size, then downscale with LANCZOS: cheap antialiasing
MARGIN = 0.06  # of the shorter image side, on each edge
POLYGON_BUDGET = 200_000  # ImageDraw.polygon calls are Python-speed; past this, splat pixels instead
SPLAT_CHUNK = 4_000_000  # pixel tests per numpy batch in _splat: bounds its memory
AMBIENT = 0.3
BACKGROUND = (255, 255, 255)

_EYE = np.array([1.0, -1.0, 1.0]) / np.sqrt(3.0)  # towards the camera: front (-y), right (+x), above (+z)
_RIGHT = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
_UP = np.cross(_EYE, _RIGHT)  # (-1, 1, 2)/√6: world z points up on screen; right × up = eye keeps handedness
_VIEW = np.stack([_RIGHT, _UP, _EYE])  # world → (screen x, screen y, depth towards the camera)
_LIGHT = np.array([-0.35, 0.55, 1.0]) / np.linalg.norm([-0.35, 0.55, 1.0])  # in view space: over the left shoulder


def render_png(mesh_path, out_path, width=640, height=480, color="#FF7F00", file_unit="mm"):
    """Write a PNG snapshot of the mesh at mesh_path. Raises MeshError for files that cannot be loaded."""
    triangles = load_triangles(mesh_path, file_unit).triangles
    image = _draw(triangles, width * SUPERSAMPLE, height * SUPERSAMPLE, np.array(ImageColor.getrgb(color)[:3]))
    image.resize((width, height), Image.LANCZOS).save(out_path, format="PNG")


def _draw(triangles, width, height, rgb):
    centre = (triangles.min(axis=(0, 1)) + triangles.max(axis=(0, 1))) / 2
    view = (triangles - centre) @ _VIEW.T  # (n, 3, 3): x, y, depth
    normals = np.cross(view[:, 1] - view[:, 0], view[:, 2] - view[:, 0])
    # Fit every vertex (not only the visible ones) so the framing does not depend on culling.
    reach_x = max(float(np.abs(view[..., 0]).max()), 1e-9)
    reach_y = max(float(np.abs(view[..., 1]).max()), 1e-9)
    margin = MARGIN * min(width, height)
    scale = min((width / 2 - margin) / reach_x, (height / 2 - margin) / reach_y)

    visible = np.flatnonzero(normals[:, 2] > 0)  # counter-clockwise seen from outside ⇒ normal towards the camera
    view, normals = view[visible], normals[visible]
    unit_normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    light = AMBIENT + (1 - AMBIENT) * np.clip(unit_normals @ _LIGHT, 0, 1)
    colours = np.clip(rgb[None, :] * light[:, None], 0, 255).astype(np.uint8)
    screen = np.empty(view.shape[:2] + (2,))
    screen[..., 0] = width / 2 + view[..., 0] * scale
    screen[..., 1] = height / 2 - view[..., 1] * scale  # image rows grow downwards
    order = np.argsort(view[..., 2].mean(axis=1), kind="stable")  # far (small depth) first
    polygons, splats = order[-POLYGON_BUDGET:], order[:-POLYGON_BUDGET]

    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    if len(splats):
        _splat(pixels, screen[splats], view[splats, :, 2], colours[splats])
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for points, fill in zip(screen[polygons].reshape(-1, 6).tolist(), map(tuple, colours[polygons].tolist())):
        draw.polygon(points, fill=fill)
    return image


def _splat(pixels, screen, depth, colours):
    """Rasterise the faces beyond the polygon budget in numpy: every pixel whose centre lies inside a face, plus the
    pixel under its centroid (a face smaller than a pixel may hold no centre), at the face's mean depth; nearest to
    the camera wins. Faces are grouped by on-screen size so each group tests a fixed square of pixels."""
    height, width = pixels.shape[:2]
    face_depth = depth.mean(axis=1)
    centroid = np.floor(screen.mean(axis=1)).astype(np.int64)
    found = [(centroid[:, 0], centroid[:, 1], np.arange(len(screen)))]
    low = np.floor(screen.min(axis=1)).astype(np.int64)
    span = (np.floor(screen.max(axis=1)).astype(np.int64) - low).max(axis=1) + 1
    side = 2 ** np.ceil(np.log2(np.minimum(span, max(width, height)))).astype(np.int64)
    for size in np.unique(side):
        members = np.flatnonzero(side == size)
        grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1).reshape(-1, 2)
        step = max(1, SPLAT_CHUNK // (size * size))
        for start in range(0, len(members), step):
            chunk = members[start:start + step]
            pixel = low[chunk, None, :] + grid[None]  # (m, size², 2)
            inside = _covers(screen[chunk], pixel + 0.5)
            which, _ = np.nonzero(inside)
            found.append((pixel[..., 0][inside], pixel[..., 1][inside], chunk[which]))
    x, y, face = (np.concatenate(parts) for parts in zip(*found))
    keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    target, face = y[keep] * width + x[keep], face[keep]
    order = np.lexsort((face_depth[face], target))  # by pixel, then far → near
    target, face = target[order], face[order]
    nearest = np.append(target[1:] != target[:-1], True)  # the last entry of each pixel's run
    pixels.reshape(-1, 3)[target[nearest]] = colours[face[nearest]]


def _covers(corners, points):
    """(m, k) bool: which of the k points (m, k, 2) lie inside each of the m triangles (m, 3, 2), either winding."""
    signs = []
    for i in range(3):
        a, b = corners[:, None, i], corners[:, None, (i + 1) % 3]
        signs.append((b[..., 0] - a[..., 0]) * (points[..., 1] - a[..., 1])
                     - (b[..., 1] - a[..., 1]) * (points[..., 0] - a[..., 0]))
    s0, s1, s2 = signs
    return ((s0 >= 0) & (s1 >= 0) & (s2 >= 0)) | ((s0 <= 0) & (s1 <= 0) & (s2 <= 0))
