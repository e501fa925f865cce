"""psycopg (the event stores' driver) runs its C implementation but must never block eventlet's hub: a service
process waiting on PostgreSQL still answers its other green threads (heartbeats, RPC replies, timers).

Each case runs in a fresh interpreter, started the way a service process starts (`import runtime.serve`:
monkey-patching, then the driver's settings, before psycopg is imported), because psycopg picks its wait function
once, at import. With psycopg's own C wait (the default of psycopg-binary) the ticker below gets about one tick in
half a second; cooperative, about fifty."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.kit.plugin import PG_ADMIN_DSN

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import time
    import runtime.serve  # noqa: F401  (what a service process runs first)
    import eventlet
    import psycopg

    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            eventlet.sleep(0.01)

    eventlet.spawn(ticker)
    eventlet.sleep(0)
    with psycopg.connect({dsn!r}) as conn:
        conn.execute("SELECT pg_sleep(0.5)")
    print(psycopg.pq.__impl__, len(ticks))
""")


def _probe(**env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PSYCOPG_")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE.format(dsn=PG_ADMIN_DSN)], env=environ,
                            capture_output=True, text=True, timeout=60, check=True)
    implementation, ticks = result.stdout.split()
    return implementation, int(ticks)


def test_a_service_process_decodes_in_c_and_yields_while_waiting_on_postgresql():
    implementation, ticks = _probe()
    assert implementation == "binary"  # rows decoded in C (psycopg-binary installed and chosen)
    assert ticks >= 20  # the hub ran other green threads during the 0.5 s query


def test_the_probe_sees_a_blocking_wait():
    """The probe can fail: with psycopg's C wait forced, the hub is starved for the whole query."""
    _implementation, ticks = _probe(PSYCOPG_WAIT_FUNC="wait_c")
    assert ticks < 10
