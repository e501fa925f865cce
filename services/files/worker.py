"""Mesh analysis and rendering in a child process, so that a crash, a runaway loop or a memory blow-up on a hostile
or huge file takes down only the child, never the service.

Child (prints exactly one JSON line on stdout):
    python -m services.files.worker analyze <path> <file_unit or ->
        → {"ok": true, "result": {...services.files.mesh.analyze...}} | {"ok": false, "status": ..., "reason": ...}
    python -m services.files.worker render <path> <out.png> <width> <height> <color> <file_unit or ->
        → {"ok": true} | {"ok": false, "status": ..., "reason": ...}

Parent: run(args, timeout) starts the child and always returns one of those dicts.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 8 << 30  # bytes of address space, by default: analysis peaks near 550 bytes per triangle
MEMORY_ENV = "STRATUM_ANALYSIS_MEMORY_MB"  # how the parent passes the deployment's setting to the child
CPU_LIMIT = 300  # seconds; SIGXCPU at the soft limit, SIGKILL a few seconds later
USAGE = ("usage: python -m services.files.worker analyze <path> <file_unit|->  |  "
         "render <path> <out.png> <width> <height> <color> <file_unit|->")


def failure(reason, status="error"):
    return {"ok": False, "status": status, "reason": reason}


# -- child ----------------------------------------------------------------------------------------------------------

def limit_resources():
    import resource

    for limit, value, hard_grace in ((resource.RLIMIT_AS, memory_limit(), 0), (resource.RLIMIT_CPU, CPU_LIMIT, 5)):
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:  # an unprivileged process may only lower its hard limit
            value = min(value, hard)
            hard_grace = 0
        resource.setrlimit(limit, (value, value + hard_grace))


def handle(argv):
    # Imported only here, after the limits are in place: numpy, trimesh and Pillow are the memory users.
    from services.files.mesh import MeshError

    try:
        if len(argv) == 3 and argv[0] == "analyze":
            from services.files.mesh import analyze

            return {"ok": True, "result": analyze(argv[1], unit_arg(argv[2]))}
        if len(argv) == 7 and argv[0] == "render":
            from services.files.render import render_png

            _, path, out, width, height, color, unit = argv
            render_png(path, out, int(width), int(height), color, unit_arg(unit))
            return {"ok": True}
    except MeshError as error:
        return failure(error.reason, error.status)
    return failure(f"Bad worker arguments {argv!r}; {USAGE}")


def unit_arg(value):
    return None if value == "-" else value


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = sys.stdout
    sys.stdout = sys.stderr  # a stray print from a library must not corrupt our one JSON line
    try:
        limit_resources()
        reply = json.dumps(handle(argv), allow_nan=False)
    except MemoryError:
        reply = json.dumps(failure(f"The mesh needs more than the {memory_limit() >> 20:,} MB of memory allowed "
                                   f"({MEMORY_ENV})."))
    except BaseException as error:  # noqa: BLE001 - whatever happens, the parent gets an answer, not a traceback
        reply = json.dumps(failure(f"The mesh could not be processed: {type(error).__name__}: {error}"))
    out.write(reply + "\n")
    out.flush()
    return 0


# -- parent ---------------------------------------------------------------------------------------------------------

def memory_limit():
    return int(os.environ.get(MEMORY_ENV) or 0) << 20 or MEMORY_LIMIT


def run(args, timeout, memory_mb=None):
    """Run the worker on args (as on its command line) and return its answer; never raises for what the child does.
    Under eventlet's monkey patching subprocess is green, so this blocks only the calling green thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if memory_mb:
        env[MEMORY_ENV] = str(int(memory_mb))
    command = [sys.executable, "-m", "services.files.worker", *map(str, args)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, env=env, cwd=ROOT)
    except OSError as error:
        return failure(f"The mesh worker could not be started: {error}.")
    except Exception as error:
        if not _is_timeout(error):
            raise
        return failure(f"Processing the mesh took longer than {timeout:g} s and was stopped.")  # and was killed
    if done.returncode < 0:
        return failure(_death(-done.returncode))
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        reply = json.loads(lines[-1])
    except (IndexError, ValueError):
        reply = None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return failure(f"The mesh worker exited with code {done.returncode} without a readable answer"
                       f"{_last_words(done.stderr)}.")
    return reply


def _is_timeout(error):
    # Under eventlet's monkey patching, the green Popen raises the TimeoutExpired of eventlet's private copy of the
    # subprocess module: a different class from subprocess.TimeoutExpired, with the same name.
    return isinstance(error, subprocess.TimeoutExpired) or type(error).__name__ == "TimeoutExpired"


def _death(number):
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGXCPU:
        return f"Processing the mesh used more than {CPU_LIMIT} s of CPU time and was stopped ({name})."
    if number == signal.SIGKILL:
        return f"The mesh worker was killed ({name}), most likely for using too much memory."
    return f"The mesh worker died from {name}."


def _last_words(stderr):
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return f" (its last error output: {lines[-1][:200]})" if lines else ""


if __name__ == "__main__":
    sys.exit(main())
