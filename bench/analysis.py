"""Mesh-analysis benchmark: how fast the files service analyses and renders a large binary STL, and how close that
is to trimesh alone.

    python -m bench.analysis [--triangles 1000000] [--repeats 3]

One run builds a UV sphere of about --triangles triangles, writes it as binary STL to a temporary directory, then:

(a) the ceiling: trimesh alone, in this process: trimesh.load + .volume + .area + .extents — the least any analysis
    of the file must do (parse, weld, three figures);
(b) ours: services.files.worker.run(["analyze", path, "mm"]) — a fresh child process, as the service runs it, so it
    includes the interpreter start, the imports, the format checks and every analysis (topology, bodies, inverted
    and degenerate facets). For reading (b), the child's fixed start-up cost and analyze() in-process are measured
    too;
(c) the renderer: worker.run(["render", path, out.png, 640, 480, ...]), also a child process.

Each is the best of --repeats runs, reported as seconds per million triangles; (a)/(b) is the share of the ceiling
our pipeline keeps. No timing is asserted: this prints a report and writes it as JSON to bench/results/.
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy
import PIL
import scipy
import trimesh

from services.files.mesh import analyze
from services.files.worker import run as run_worker

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
WORKER_TIMEOUT = 600
RADIUS = 50.0  # mm


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def sphere(triangles):
    """A UV sphere with about `triangles` faces: rows × 2·rows quads, two triangles each, so 4·rows² quads' worth."""
    rows = max(3, round(math.sqrt(triangles / 8)))
    return trimesh.creation.uv_sphere(radius=RADIUS, count=[rows, 2 * rows])


def best_of(repeats, action):
    """(best seconds, every run's seconds, the last result)."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return min(times), times, result


def ceiling(path):
    mesh = trimesh.load(path)
    return {"volume": float(mesh.volume), "area": float(mesh.area), "extents": [float(e) for e in mesh.extents]}


def worker_call(args):
    reply = run_worker(args, timeout=WORKER_TIMEOUT)
    if not reply["ok"]:
        raise RuntimeError(f"worker {args[0]} failed: {reply}")
    return reply


def figure(best, times, triangles):
    return {"best_s": best, "runs_s": times, "s_per_million_triangles": best / (triangles / 1e6)}


def measure(args, workdir):
    mesh = sphere(args.triangles)
    path = Path(workdir) / "sphere.stl"
    mesh.export(path, file_type="stl")
    triangles = len(mesh.faces)
    log(f"wrote a UV sphere of {triangles:,} triangles ({path.stat().st_size / 1e6:.1f} MB)")

    log(f"(a) ceiling: trimesh alone, best of {args.repeats}")
    a_best, a_times, trimesh_figures = best_of(args.repeats, lambda: ceiling(path))
    log(f"(b) ours: worker analyze, best of {args.repeats}")
    b_best, b_times, reply = best_of(args.repeats, lambda: worker_call(["analyze", path, "mm"]))
    startup_best, startup_times, _ = best_of(args.repeats, lambda: run_worker(["start-up only"], timeout=60))
    inproc_best, inproc_times, _ = best_of(args.repeats, lambda: analyze(path, "mm"))
    log(f"(c) render: worker render 640×480, best of {args.repeats}")
    out = Path(workdir) / "sphere.png"
    c_best, c_times, _ = best_of(args.repeats, lambda: worker_call(["render", path, out, 640, 480, "#FF7F00", "mm"]))

    ours = reply["result"]
    return {
        "mesh": {"kind": "uv sphere", "radius_mm": RADIUS, "triangles": triangles, "file_bytes": path.stat().st_size},
        "ceiling": figure(a_best, a_times, triangles),
        "ours": figure(b_best, b_times, triangles),
        "worker_startup": {"best_s": startup_best, "runs_s": startup_times},
        "analyze_in_process": figure(inproc_best, inproc_times, triangles),
        "render": {**figure(c_best, c_times, triangles), "width": 640, "height": 480},
        "ceiling_vs_ours": a_best / b_best,
        "agreement": {  # the two pipelines must agree, or the comparison means nothing
            "volume_mm": [trimesh_figures["volume"], ours["volume_mm"]],
            "surface_area_mm": [trimesh_figures["area"], ours["surface_area_mm"]],
            "size": [trimesh_figures["extents"], list(ours["size"].values())],
        },
        "analyses": ours["analyses"],
    }


def machine_facts():
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "trimesh": trimesh.__version__,
        "pillow": PIL.__version__,
    }


def report_lines(report):
    facts, mesh = report["machine"], report["mesh"]
    a, b, c = report["ceiling"], report["ours"], report["render"]
    repeats = report["settings"]["repeats"]
    agree = report["agreement"]
    indent = " " * 16
    return [
        f"Stratum mesh analysis — {report['timestamp']}",
        f"machine: nproc {facts['nproc']} · Python {facts['python']} · numpy {facts['numpy']} · scipy "
        f"{facts['scipy']} · trimesh {facts['trimesh']} · Pillow {facts['pillow']}",
        f"mesh:    {mesh['kind']}, {mesh['triangles']:,} triangles, binary STL {mesh['file_bytes'] / 1e6:.1f} MB",
        "",
        f"(a) ceiling   {a['s_per_million_triangles']:6.2f} s/Mtri   trimesh.load + volume + area + extents, "
        f"in-process ({a['best_s']:.2f} s, best of {repeats})",
        f"(b) ours      {b['s_per_million_triangles']:6.2f} s/Mtri   worker.run analyze: child process, every "
        f"check and analysis ({b['best_s']:.2f} s)",
        f"{indent}of which the child's start-up is {report['worker_startup']['best_s']:.2f} s; analyze() "
        f"in-process: {report['analyze_in_process']['s_per_million_triangles']:.2f} s/Mtri",
        f"(c) render    {c['s_per_million_triangles']:6.2f} s/Mtri   worker.run render {c['width']}×{c['height']} "
        f"({c['best_s']:.2f} s)",
        "",
        f"(a)/(b)       {report['ceiling_vs_ours']:6.3f}   our pipeline runs at {report['ceiling_vs_ours']:.1%} of "
        "trimesh's bare speed",
        f"{indent}volume {agree['volume_mm'][1]:,.1f} mm³ (trimesh {agree['volume_mm'][0]:,.1f}), "
        f"area {agree['surface_area_mm'][1]:,.1f} mm² (trimesh {agree['surface_area_mm'][0]:,.1f})",
    ]


def write_json(report):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"analysis-{report['timestamp'].replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__.split("\n")[0])
    parser.add_argument("--triangles", type=int, default=1_000_000, help="about this many triangles in the mesh")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the best one counts")
    args = parser.parse_args(argv)
    if args.triangles < 100 or args.repeats < 1:
        parser.error("--triangles must be at least 100 and --repeats at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(prefix="stratum-bench-") as workdir:
        figures = measure(args, workdir)
    report = {"timestamp": timestamp, "machine": machine_facts(), **figures,
              "settings": {"triangles": args.triangles, "repeats": args.repeats}}
    print("", *report_lines(report), "", sep="\n")
    print(f"results: {write_json(report).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
