"""The plate a layout packs on, and the packing options, from `/layout/`'s `build` object (production.md §4.13,
§4.14) or from a printer type (`build_plate_shape`, `build_volume`).

`build`: `{"type": "rectangle", "x": mm, "y": mm}` or `{"type": "circle", "diameter": mm}`, optionally `"z"` (the
height limit of the build-volume check); or `{"printer_type": "/printer-type/<uuid>/"}`, whose `build_plate_shape`
(`rectangular|circular`) and `build_volume` (`{"x", "y", "z"}`; a circular plate's diameter in `x` or `diameter`)
give the plate. Stratum extensions: `rotations` (degrees about Z allowed for every copy, default [0, 90, 180, 270])
and `time_limit_s` (how long the packer may search, default 20 s). `packer_type` is `pack2d` (the default) or
`pack3d` (parts stacked in the build volume: a rectangular plate with a height `z`, services.production.packing.
pack3d); the other documented packers are not available in this release.
"""
import math

from shared.errors import InvalidPayload

BUILD_INVALID = "The build parameters are invalid."
SPACING_INVALID = "The model spacing is an invalid value."
DEFAULT_ROTATIONS = [0.0, 90.0, 180.0, 270.0]
DEFAULT_TIME_LIMIT = 20.0
MAX_TIME_LIMIT = 600.0
MAX_SIZE_MM = 100_000.0
MAX_ROTATIONS = 72
PACKERS = ("pack2d", "pack3d")
SHAPES = {"rectangle": "rectangle", "rectangular": "rectangle", "circle": "circle", "circular": "circle"}


def _invalid(why):
    return InvalidPayload(f"{BUILD_INVALID} {why}", field="build")


def _size(value, name):
    if isinstance(value, bool):
        raise _invalid(f"'{name}' must be a number of mm.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(f"'{name}' must be a number of mm.") from None
    if not math.isfinite(number) or not 0 < number <= MAX_SIZE_MM:
        raise _invalid(f"'{name}' must be more than 0 and at most {MAX_SIZE_MM:g} mm.")
    return number


def spacing(value):
    """min_packing_distance, checked: a finite number of mm, 0 or more."""
    if isinstance(value, bool):
        raise InvalidPayload(SPACING_INVALID, field="min_packing_distance")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidPayload(SPACING_INVALID, field="min_packing_distance") from None
    if not math.isfinite(number) or not 0 <= number <= MAX_SIZE_MM:
        raise InvalidPayload(SPACING_INVALID, field="min_packing_distance")
    return number


def options(build):
    """The packing options of a build object: (rotations, time limit in s). Raises the documented 400."""
    if not isinstance(build, dict):
        raise _invalid("'build' must be an object.")
    packer(build)
    rotations = build.get("rotations", DEFAULT_ROTATIONS)
    if not isinstance(rotations, list) or not 1 <= len(rotations) <= MAX_ROTATIONS:
        raise _invalid(f"'rotations' must be a list of 1 to {MAX_ROTATIONS} angles in degrees.")
    turned = []
    for angle in rotations:
        if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not math.isfinite(angle):
            raise _invalid("'rotations' must be a list of angles in degrees.")
        angle = float(angle) % 360.0
        if angle not in turned:
            turned.append(angle)
    limit = build.get("time_limit_s", DEFAULT_TIME_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) \
            or not 0 < limit <= MAX_TIME_LIMIT:
        raise _invalid(f"'time_limit_s' must be a number of seconds, more than 0 and at most {MAX_TIME_LIMIT:g}.")
    return turned, float(limit)


def packer(build):
    """The build's packer: pack2d (the default) or pack3d, which stacks in a volume and so needs its height."""
    chosen = build.get("packer_type") or "pack2d"
    if chosen not in PACKERS:
        raise _invalid(f"packer_type {chosen!r} is not available in this release; use 'pack2d' or 'pack3d'.")
    if chosen == "pack3d" and build.get("z") is None and build.get("printer_type") is None:
        raise _invalid("pack3d stacks parts in a build volume: give its height 'z' (mm) or a 'printer_type'.")
    return chosen


def volume_of(plate):
    """(X, Y, Z) of the volume pack3d fills; the documented 400 unless a rectangular plate with a height."""
    if plate["kind"] != "rectangle" or not plate.get("z"):
        raise _invalid("pack3d needs a rectangular build volume with a height 'z'.")
    return plate["x"], plate["y"], plate["z"]


def plate_of(build, printer_type=None):
    """The plate as stored on the layout: {"kind": rectangle|circle, "x", "y" | "diameter", "z" (or None)}.
    `printer_type`: the fields of the printer type the build names (when it names one)."""
    if printer_type is not None:
        shape = SHAPES.get(printer_type.get("build_plate_shape") or "rectangular")
        volume = printer_type.get("build_volume")
        if not isinstance(volume, dict):
            raise _invalid("The printer type has no build_volume.")
        source, kind = volume, shape
    else:
        kind = SHAPES.get(build.get("type"))
        if kind is None:
            raise _invalid("'type' must be 'rectangle' (with x and y in mm) or 'circle' (with diameter in mm), "
                           "or name a 'printer_type'.")
        source = build
    z = _size(source["z"], "z") if source.get("z") is not None else None
    if kind == "circle":
        diameter = source.get("diameter", source.get("x"))
        return {"kind": "circle", "diameter": _size(diameter, "diameter"), "z": z}
    return {"kind": "rectangle", "x": _size(source.get("x"), "x"), "y": _size(source.get("y"), "y"), "z": z}
