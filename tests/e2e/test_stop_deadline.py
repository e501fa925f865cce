"""A service stops within runtime.serve.STOP_GRACE of SIGTERM, even while a worker waits on an RPC to a service that
cannot answer (one stopping at the same moment, as when a whole stack or a node goes down).

Before, the stop waited for that worker until its RPC timeout (30 s by default; 60 s here), past docker compose's
10 s grace, and the orchestrator's SIGKILL came first. The wait is made deterministic: orders is frozen (SIGSTOP, its
RPC queue stays, unanswered) and notifications' catch-up timer pulls the orders feed over RPC every
CATCH_UP_INTERVAL, so after two intervals one of its workers is inside that call."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.serve import STOP_GRACE
from services.notifications.service import CATCH_UP_INTERVAL
from tests.kit.plugin import AMQP_BASE, _rabbitmqctl, eventually, throwaway_vhost

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RPC_TIMEOUT = 60  # far past the grace: a stop that waited for the RPC would show


@pytest.fixture
def vhost():
    with throwaway_vhost("stratum-test-stop") as name:
        yield name


def consumers(vhost, queue):
    result = _rabbitmqctl("-q", "list_queues", "-p", vhost, "name", "consumers")
    rows = dict(line.split()[:2] for line in result.stdout.splitlines() if len(line.split()) >= 2)
    return int(rows.get(queue, "0")) if rows.get(queue, "0").isdigit() else 0


def test_a_service_waiting_on_a_frozen_service_stops_within_its_grace(vhost, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    env.update(PYTHONPATH=str(ROOT), AMQP_URI=AMQP_BASE.rstrip("/") + "/" + vhost, STRATUM_DATA_DIR=str(tmp_path),
               STRATUM_RPC_TIMEOUT=str(RPC_TIMEOUT), STRATUM_LOG_LEVEL="WARNING")
    subprocess.run([sys.executable, "-m", "runtime.migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    processes, logs = {}, {}
    try:
        for name in ("orders", "notifications"):
            logs[name] = tmp_path / f"{name}.log"
            with open(logs[name], "w") as out:  # the child keeps its own copy of the descriptor
                processes[name] = subprocess.Popen([sys.executable, "-m", "runtime.serve", name], env=env, cwd=ROOT,
                                                   stdout=out, stderr=subprocess.STDOUT)
        eventually(lambda: consumers(vhost, "rpc-orders") and consumers(vhost, "rpc-notifications"), timeout=60)
        processes["orders"].send_signal(signal.SIGSTOP)
        time.sleep(2 * CATCH_UP_INTERVAL + 1)  # a catch-up pass is now waiting on orders' feed
        stopping = time.monotonic()
        processes["notifications"].send_signal(signal.SIGTERM)
        try:
            processes["notifications"].wait(timeout=STOP_GRACE + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"notifications still running {STOP_GRACE + 10} s after SIGTERM (RPC timeout {RPC_TIMEOUT} s)")
        took = time.monotonic() - stopping
        log = logs["notifications"].read_text()
        assert "killing active worker" in log, log[-3000:]  # a worker was inside the call: the grace was needed
        assert took >= STOP_GRACE - 1, took  # and it was given its grace first
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
