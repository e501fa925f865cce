"""A layout's packing in a child process: footprints from the meshes, the nesting, the exact check and the
pictures. A huge mesh or a runaway search takes down only the child, never the production service.

    python -m services.production.packing.worker <job.json>

The job file: {"plate": {kind, x, y | diameter, z}, "spacing": mm, "rotations": [deg], "time_limit": s,
"check_height": bool, "models": [{"key": uri, "path": mesh file, "unit": unit or null, "name": str}], "copies":
[model key per copy, in the order asked], "png": path, "svg": path}.
The child prints JSON lines on stdout: {"progress": {...}} while it works, then one {"ok": true, "result": {...}} or
{"ok": false, "reason": ...} last.
"""
import json
import os
import resource
import sys
import time

PROGRESS_EVERY = 1.0  # seconds between two progress lines at most once per improvement


def emit(out, message):
    out.write(json.dumps(message, allow_nan=False) + "\n")
    out.flush()


def plate_polygon(plate):
    from services.production.packing.engine import Plate

    if plate["kind"] == "circle":
        return Plate.circle(plate["diameter"])
    return Plate.rectangle(plate["x"], plate["y"])


def run_job(job, out):
    if job.get("packer") == "pack3d":
        return run_job_3d(job, out)
    return run_job_2d(job, out)


def run_job_3d(job, out):
    """pack3d: each model's bounding box as it rests on the plate, stacked in the volume
    (services.production.packing.pack3d); the picture shows the placed boxes from above."""
    import numpy as np
    from shapely.geometry import Polygon, box

    from services.files.mesh import MeshError, load_triangles
    from services.production.packing import picture
    from services.production.packing.pack3d import Box, fill_percentage, fits_alone, matrix, pack3d

    started = time.monotonic()
    plate = job["plate"]
    volume = (plate["x"], plate["y"], plate["z"])
    copies = job["copies"]
    emit(out, {"progress": {"phase": "footprints", "copies": len(copies), "placed": 0}})
    bounds, problems = {}, {}
    for model in job["models"]:
        if not model.get("path"):
            problems[model["key"]] = model.get("error") or "The model has no mesh."
            continue
        try:
            triangles = load_triangles(model["path"], model.get("unit")).triangles
        except (MeshError, ValueError) as error:
            problems[model["key"]] = getattr(error, "reason", str(error))
            continue
        low, high = triangles.reshape(-1, 3).min(axis=0), triangles.reshape(-1, 3).max(axis=0)
        solid = abs(float(np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2])).sum())
                    / 6)
        bounds[model["key"]] = ([float(v) for v in (*low, *high)], solid, model.get("name") or "")
    keys = list(bounds)
    boxes = [Box(key, b[3] - b[0], b[4] - b[1], b[5] - b[2], copies.count(key), solid)
             for key, (b, solid, _) in ((k, bounds[k]) for k in keys)]
    emit(out, {"progress": {"phase": "packing", "engine": "pack3d", "copies": len(copies), "placed": 0}})
    result = pack3d(boxes, volume, job["spacing"])
    entries = {}
    for index, key in enumerate(copies):
        entries.setdefault(key, []).append(index)
    positions, drawn, unfitted = [], [], []
    for p in sorted(result.placements, key=lambda p: entries[boxes[p.part].key][p.copy]):
        key = boxes[p.part].key
        index = entries[key][p.copy]
        m = matrix(p.rotation, round(p.x, 6), round(p.y, 6), round(p.z, 6), bounds[key][0])
        positions.append({"model": key, "index": index, "x": m[0][3], "y": m[1][3], "z": m[2][3],
                          "rotation_z": float(p.rotation), "matrix": m,
                          "box": [round(v, 6) for v in (p.x, p.y, p.z, p.x + p.size[0], p.y + p.size[1],
                                                        p.z + p.size[2])]})
        label = f"{index + 1}" + (f" {bounds[key][2][:18]}" if bounds[key][2] else "")
        drawn.append((label, key, box(p.x, p.y, p.x + p.size[0], p.y + p.size[1])))
    for part, copy in result.unfitted:
        key = boxes[part].key
        why = "It did not fit in the build volume." if fits_alone(boxes[part], volume, job["spacing"]) else (
            "It is larger than the build volume.")
        unfitted.append({"model": key, "index": entries[key][copy], "reason": why})
    for key, why in problems.items():
        unfitted += [{"model": key, "index": i, "reason": why} for i in entries.get(key, [])]
    unfitted.sort(key=lambda u: u["index"])
    fill = fill_percentage(boxes, volume, result.placements)
    outline = Polygon([(0, 0), (volume[0], 0), (volume[0], volume[1]), (0, volume[1])])
    title = f"{len(positions)} of {len(copies)} copies in {volume[2]:g} mm, {fill:.1f} % of the volume filled"
    if job.get("svg"):
        with open(job["svg"], "w", encoding="utf-8") as handle:
            handle.write(picture.svg(outline, drawn, title))
    if job.get("png"):
        picture.png(outline, drawn, job["png"])
    return {"positions": positions, "unfitted": unfitted, "fill_percentage": round(fill, 4), "engine": "pack3d",
            "stats": {}, "seconds": round(time.monotonic() - started, 2)}


def run_job_2d(job, out):
    from services.files.mesh import MeshError
    from services.production.packing import picture
    from services.production.packing.engine import Part, fill_percentage, matrix, pack, placed_shape
    from services.production.packing.footprint import grown, mesh_footprint

    started = time.monotonic()
    plate = plate_polygon(job["plate"])
    copies = job["copies"]
    total = len(copies)
    emit(out, {"progress": {"phase": "footprints", "copies": total, "placed": 0}})
    shapes, unfitted = {}, []
    for model in job["models"]:
        if not model.get("path"):
            shapes[model["key"]] = (None, model.get("error") or "The model has no mesh.")
            continue
        try:
            outline, rest_z, height = mesh_footprint(model["path"], model.get("unit"))
        except (MeshError, ValueError) as error:
            shapes[model["key"]] = (None, getattr(error, "reason", str(error)))
            continue
        if job.get("check_height") and job["plate"].get("z") and height > job["plate"]["z"] + 1e-9:
            shapes[model["key"]] = (None, f"The part is {height:.2f} mm tall; the build volume is "
                                          f"{job['plate']['z']:g} mm.")
            continue
        shapes[model["key"]] = ((outline, grown(outline, job["spacing"]), rest_z, model.get("name") or ""), None)
    keys = [m["key"] for m in job["models"] if shapes[m["key"]][0] is not None]
    parts = [Part(key, shapes[key][0][1], copies.count(key), shapes[key][0][0].area, shapes[key][0][3])
             for key in keys]
    last = [0.0]

    def report(engine, placements):
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            emit(out, {"progress": {"phase": "packing", "engine": engine, "copies": total, "placed": len(placements),
                                    "fill_percentage": round(fill_percentage(plate, parts, placements), 2),
                                    "elapsed_s": round(now - started, 1)}})

    emit(out, {"progress": {"phase": "packing", "copies": total, "placed": 0, "elapsed_s":
                            round(time.monotonic() - started, 1)}})
    result = pack(plate, parts, job["rotations"], job["time_limit"], seed=job.get("seed", 0), report=report)
    # each copy is one entry of the request's `models`: the n-th copy of a model is its n-th entry
    entries = {}
    for index, key in enumerate(copies):
        entries.setdefault(key, []).append(index)
    positions, drawn = [], []
    for p in sorted(result.placements, key=lambda p: entries[parts[p.part].key][p.copy]):
        key = parts[p.part].key
        index = entries[key][p.copy]
        rest_z = shapes[key][0][2]
        positions.append({"model": key, "index": index, "x": round(p.x, 6), "y": round(p.y, 6),
                          "z": round(rest_z, 6), "rotation_z": p.rotation,
                          "matrix": matrix(p.rotation, round(p.x, 6), round(p.y, 6), round(rest_z, 6))})
        label = f"{index + 1}" + (f" {shapes[key][0][3][:18]}" if shapes[key][0][3] else "")
        drawn.append((label, key, placed_shape(shapes[key][0][0], p.rotation, p.x, p.y)))
    for part_index, copy in result.unfitted:
        key = parts[part_index].key
        unfitted.append({"model": key, "index": entries[key][copy], "reason": "It did not fit on the plate."})
    for key, (shape, why) in shapes.items():
        if shape is None:
            unfitted += [{"model": key, "index": i, "reason": why} for i in entries.get(key, [])]
    unfitted.sort(key=lambda u: u["index"])
    title = f"{len(positions)} of {total} copies, {fill_percentage(plate, parts, result.placements):.1f} % filled"
    if job.get("svg"):
        with open(job["svg"], "w", encoding="utf-8") as handle:
            handle.write(picture.svg(plate.polygon, drawn, title))
    if job.get("png"):
        picture.png(plate.polygon, drawn, job["png"])
    return {"positions": positions, "unfitted": unfitted,
            "fill_percentage": round(fill_percentage(plate, parts, result.placements), 4),
            "engine": result.engine, "stats": result.stats, "seconds": round(time.monotonic() - started, 2)}


def limit_resources(time_limit):
    cpu = int(time_limit * (os.cpu_count() or 1) + 600)
    for limit, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, 8 << 30)):
        soft, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, hard))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = sys.stdout
    sys.stdout = sys.stderr  # a library's stray print must not corrupt the JSON lines
    try:
        with open(argv[0], encoding="utf-8") as handle:
            job = json.load(handle)
        limit_resources(float(job.get("time_limit", 20)))
        reply = {"ok": True, "result": run_job(job, out)}
    except MemoryError:
        reply = {"ok": False, "reason": "Packing needed more memory than allowed."}
    except BaseException as error:  # noqa: BLE001 - the parent always gets an answer
        reply = {"ok": False, "reason": f"Failed to create layout: {type(error).__name__}: {error}"}
    emit(out, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
