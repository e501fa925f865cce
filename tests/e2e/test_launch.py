"""`make run` (runtime.launch) as an operator meets it, on a fresh PostgreSQL database and broker vhost: it prints
the connection budget, says "up at" only once the bootstrap administrator can log in (D12), restarts a process
killed with SIGKILL while the others keep serving (D3), and stops everything on SIGTERM."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.kit.plugin import ADMIN_EMAIL, ADMIN_PASSWORD, AMQP_BASE, ApiSession, eventually, free_port, throwaway_vhost

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vhost():
    with throwaway_vhost("stratum-test-launch") as name:
        yield name


@pytest.fixture(scope="module")
def launched(postgres_dsn, vhost, tmp_path_factory):
    data = tmp_path_factory.mktemp("launch")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PSYCOPG_WAIT_FUNC="wait_select", STRATUM_POSTGRES_DSN=postgres_dsn,
               AMQP_URI=AMQP_BASE.rstrip("/") + "/" + vhost, STRATUM_PORT=str(free_port()),
               STRATUM_DATA_DIR=str(data), STRATUM_ADMIN_EMAIL=ADMIN_EMAIL, STRATUM_ADMIN_PASSWORD=ADMIN_PASSWORD,
               STRATUM_RPC_TIMEOUT="10", STRATUM_LOG_LEVEL="WARNING")
    errors = open(data / "stderr.log", "w+")
    launcher = subprocess.Popen([sys.executable, "-m", "runtime.launch"], env=env, cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=errors, start_new_session=True)
    yield launcher, f"http://127.0.0.1:{env['STRATUM_PORT']}", data / "stderr.log"
    if launcher.poll() is None:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    errors.close()


def children(launcher):
    """{process name: pid} of the launcher's `python -m runtime.serve NAME` children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
        if ppid == launcher.pid and argv[1:3] == ["-m", "runtime.serve"]:
            found[argv[3]] = int(entry.name)
    return found


def test_up_means_the_administrator_can_log_in_and_a_killed_process_comes_back(launched):
    launcher, base_url, stderr = launched
    lines = []
    deadline = time.monotonic() + 180
    while not any(line.startswith("stratum: up at") for line in lines):
        assert launcher.poll() is None and time.monotonic() < deadline, (lines, stderr.read_text()[-3000:])
        lines.append(launcher.stdout.readline().strip())
    assert any("PostgreSQL connection budget: at most 51, 20 kept at rest" in line for line in lines), lines

    # "up" means a client can log in at once: never a 401 for the bootstrap administrator
    api = ApiSession(base_url)
    response = api.post("/sessions/", json={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert response.status_code == 201, response.text

    # a crashed process is restarted; the rest keeps serving meanwhile
    before = children(launcher)
    assert set(before) >= {"orders", "gateway", "identity", "projector"}
    os.kill(before["orders"], signal.SIGKILL)
    assert requests.get(base_url + "/about/", timeout=10).status_code == 200
    eventually(lambda: "orders restarted (restart #1" in stderr.read_text(), timeout=30)
    assert "orders exited with code -9" in stderr.read_text()
    eventually(lambda: api.post("/order/", json={"name": "after the crash"}, timeout=15).status_code == 201,
               timeout=60, interval=0.5)
    after = children(launcher)
    assert after["orders"] != before["orders"]
    assert {name: pid for name, pid in after.items() if name != "orders"} == \
        {name: pid for name, pid in before.items() if name != "orders"}

    # SIGTERM stops everything, cleanly
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=60) == 0
    assert children(launcher) == {}
    for pid in after.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
