"""Packing benchmark: the public ESICUP 2D irregular nesting instances (../shared/data/nesting), strip-packed by the
engine `/layout/` uses for rectangular plates (services.production.packing.engine.strip_pack: sparrow through its
binding spyrrow), against the best-known strip length of the literature.

    python -m bench.packing [--seconds 20] [--workers 2] [--instances albano,fu] [--seed 1] [--raster]

For each instance: the strip length reached within --seconds, the density = total item area / (width × length)
and its ratio to the best-known density. The densities are computed here, independently of the engine: item areas
with shapely from the instance's own polygons, and the engine's layout is re-checked here too (every copy placed,
inside the strip, no overlap by intersection area), so a length is reported only for a valid layout.
--raster also runs the raster bottom-left fill (the engine's other half) as a strip packer, for comparison.
No timing is asserted: this prints a table (markdown) and writes the results as JSON to bench/results/.
"""
import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from shapely import affinity
from shapely.geometry import Polygon, box
from shapely.strtree import STRtree

from services.production.packing.engine import Part, Raster, raster_fill, strip_pack

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("STRATUM_NESTING_DIR", ROOT.parent / "shared" / "data" / "nesting"))
RESULTS_DIR = ROOT / "bench" / "results"


def load(path):
    with open(path) as handle:
        return json.load(handle)


def check(instance, placements, length):
    """Independent check of a strip layout: every copy placed once, inside [0, length] × [0, width], no overlap."""
    polygons = {item["id"]: Polygon(item["polygon"]) for item in instance["items"]}
    wanted = {item["id"]: item["quantity"] for item in instance["items"]}
    width = instance["strip_width"]
    strip = box(0, 0, length, width).buffer(1e-6 * max(length, width), join_style="mitre")
    shapes = []
    for item_id, x, y, rotation in placements:
        wanted[item_id] -= 1
        assert rotation % 360 in [r % 360 for r in instance["allowed_rotations"]], rotation
        shape = affinity.translate(affinity.rotate(polygons[item_id], rotation, origin=(0, 0)), x, y)
        assert strip.covers(shape), f"item {item_id} leaves the strip"
        shapes.append(shape)
    assert not any(wanted.values()), f"copies missing: {wanted}"
    tree = STRtree(shapes)
    for i, shape in enumerate(shapes):
        for j in tree.query(shape):
            if j > i:
                overlap = shape.intersection(shapes[j]).area
                assert overlap <= 1e-6 * min(shape.area, shapes[j].area), f"overlap {overlap}"


def run_sparrow(instance, seconds, workers, seed):
    items = instance["items"]
    parts = [Part(str(item["id"]), Polygon(item["polygon"]), item["quantity"]) for item in items]
    started = time.monotonic()
    length, placements = strip_pack(parts, instance["strip_width"], instance["allowed_rotations"], seconds,
                                    seed=seed, workers=workers)
    elapsed = time.monotonic() - started
    found = [(items[p.part]["id"], p.x, p.y, p.rotation) for p in placements]
    # the length as the layout shows it (max x), not as the engine reports it
    length = max(affinity.translate(affinity.rotate(Polygon(items[p.part]["polygon"]), p.rotation, origin=(0, 0)),
                                    p.x, p.y).bounds[2] for p in placements)
    return length, found, elapsed


def run_raster(instance, seconds):
    """Raster bottom-left fill on a strip long enough for everything, by decreasing area (one pass)."""
    items = instance["items"]
    parts = [Part(str(item["id"]), Polygon(item["polygon"]), item["quantity"]) for item in items]
    total = sum(p.shape.area * p.copies for p in parts)
    width = instance["strip_width"]
    started = time.monotonic()
    strip = box(0, 0, 2.2 * total / width, width)
    raster = Raster(strip, cells=int(1200 * max(1.0, strip.bounds[2] / width) ** 0.5))
    order = sorted(((i, c) for i, p in enumerate(parts) for c in range(p.copies)),
                   key=lambda pc: -parts[pc[0]].shape.area)
    placements, unfitted = raster_fill(raster, parts, order, [float(r) for r in instance["allowed_rotations"]],
                                       deadline=started + seconds)
    elapsed = time.monotonic() - started
    if unfitted:
        return None, [], elapsed
    found = [(items[p.part]["id"], p.x, p.y, p.rotation) for p in placements]
    length = max(affinity.translate(affinity.rotate(Polygon(items[p.part]["polygon"]), p.rotation, origin=(0, 0)),
                                    p.x, p.y).bounds[2] for p in placements)
    return length, found, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--instances", default="")
    parser.add_argument("--raster", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.instances.split(",") if n]
    files = sorted(DATA.glob("*.json"))
    if names:
        files = [f for f in files if f.stem in names]
    rows = []
    print(f"| instance | width | items | best-known length | length ({args.seconds} s) | density | best-known density "
          f"| ratio |{' raster length | raster ratio |' if args.raster else ''}")
    print(f"|---|---|---|---|---|---|---|---|{'---|---|' if args.raster else ''}")
    for path in files:
        instance = load(path)
        area = sum(Polygon(item["polygon"]).area * item["quantity"] for item in instance["items"])
        width = instance["strip_width"]
        best_density = area / (width * instance["best_known_length"])
        length, found, elapsed = run_sparrow(instance, args.seconds, args.workers, args.seed)
        check(instance, found, length)
        density = area / (width * length)
        row = {"instance": instance["name"], "width": width, "items": sum(i["quantity"] for i in instance["items"]),
               "best_known_length": instance["best_known_length"], "length": round(length, 4),
               "density": round(density, 4), "best_known_density": round(best_density, 4),
               "ratio": round(density / best_density, 3), "seconds": round(elapsed, 1)}
        extra = ""
        if args.raster:
            r_length, r_found, r_elapsed = run_raster(instance, args.seconds)
            if r_length is not None:
                check(instance, r_found, r_length)
                row["raster_length"] = round(r_length, 4)
                row["raster_ratio"] = round(area / (width * r_length) / best_density, 3)
                row["raster_seconds"] = round(r_elapsed, 1)
            extra = f" {row.get('raster_length', '—')} | {row.get('raster_ratio', '—')} |"
        rows.append(row)
        print(f"| {row['instance']} | {width:g} | {row['items']} | {row['best_known_length']:g} | {row['length']:g} | "
              f"{density:.2%} | {best_density:.2%} | {row['ratio']:.3f} |{extra}", flush=True)
    ratios = [r["ratio"] for r in rows]
    if ratios:
        print(f"\nmin ratio {min(ratios):.3f}, median {sorted(ratios)[len(ratios) // 2]:.3f}; "
              f"{args.seconds} s per instance, {args.workers} worker threads, seed {args.seed}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"packing-{stamp}.json"
    out.write_text(json.dumps({"seconds": args.seconds, "workers": args.workers, "seed": args.seed,
                               "platform": platform.platform(), "cpus": os.cpu_count(), "rows": rows}, indent=1))
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
