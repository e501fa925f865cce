"""Two gateway processes on one port (STRATUM_GATEWAY_PROCESSES=2, runtime.launch): both take connections (the
kernel's SO_REUSEPORT spreads them), a write answered by one is read at once through the other (they share the read
store), the same Idempotency-Key sent to both at once makes one order, and a killed gateway leaves the other serving
while the launcher starts it again."""
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.test_launch import children
from tests.kit.plugin import ADMIN_EMAIL, ADMIN_PASSWORD, AMQP_BASE, ApiSession, eventually, free_port, throwaway_vhost

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
GATEWAYS = {"gateway", "gateway-2"}
TRIES = 200  # new connections to find each gateway by: the kernel picks one per connection, by its addresses and ports


@pytest.fixture(scope="module")
def launched(postgres_dsn, tmp_path_factory):
    data = tmp_path_factory.mktemp("gateways")
    with throwaway_vhost("stratum-test-gateways") as vhost:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PSYCOPG_WAIT_FUNC="wait_select",
                   STRATUM_POSTGRES_DSN=postgres_dsn, AMQP_URI=AMQP_BASE.rstrip("/") + "/" + vhost,
                   STRATUM_PORT=str(free_port()), STRATUM_DATA_DIR=str(data), STRATUM_ADMIN_EMAIL=ADMIN_EMAIL,
                   STRATUM_ADMIN_PASSWORD=ADMIN_PASSWORD, STRATUM_RPC_TIMEOUT="10", STRATUM_LOG_LEVEL="WARNING",
                   STRATUM_GATEWAY_PROCESSES="2")
        with open(data / "stderr.log", "w+") as errors:
            launcher = subprocess.Popen([sys.executable, "-m", "runtime.launch"], env=env, cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=errors, start_new_session=True)
            try:
                lines = []
                while not any(line.startswith("stratum: up at") for line in lines):
                    assert launcher.poll() is None, (lines, (data / "stderr.log").read_text()[-3000:])
                    lines.append(launcher.stdout.readline().strip())
                yield launcher, f"http://127.0.0.1:{env['STRATUM_PORT']}", data / "stderr.log"
            finally:
                launcher.send_signal(signal.SIGTERM)
                try:
                    launcher.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(launcher.pid, signal.SIGKILL)
                    launcher.wait()


def dead(pid):
    """Gone, or a zombie its parent has not reaped yet: either way its sockets are closed."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def answering(session, base_url):
    """The gateway process that answers on this session's kept-alive connection (its readiness body names it)."""
    return session.get(base_url + "/health/ready", timeout=15).json()["gateway"]


def pinned(base_url, login):
    """{gateway name: a logged-in session whose connection that gateway holds}, one for each gateway."""
    sessions = {}
    for _ in range(TRIES):
        session = ApiSession(base_url)
        session.cookies.update(login.cookies)
        name = answering(session, base_url)
        if name in sessions:
            session.close()
        else:
            sessions[name] = session
        if set(sessions) == GATEWAYS:
            return sessions
    raise AssertionError(f"only {sorted(sessions)} answered {TRIES} new connections")


def test_two_gateways_share_the_port_and_the_read_side(launched):
    launcher, base_url, stderr = launched
    assert GATEWAYS <= set(children(launcher))
    login = ApiSession(base_url)
    assert login.post("/sessions/", json={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).status_code == 201
    sessions = pinned(base_url, login)
    one, two = sessions["gateway"], sessions["gateway-2"]

    # read-your-writes across processes: what one answered is read through the other at once, both ways
    for writer, reader in ((one, two), (two, one)):
        name = f"across-{uuid.uuid4().hex[:8]}"
        created = writer.post("/order/", json={"name": name})
        assert created.status_code == 201, created.text
        read = reader.get(created.headers["Location"])
        assert read.status_code == 200 and read.json()["name"] == name
        assert reader.get("/order/", params={"filter[name]": name}).json()["total_count"] == 1
    assert {answering(one, base_url), answering(two, base_url)} == GATEWAYS  # still the connections we think

    # the same Idempotency-Key sent to both gateways at once: one order
    key, name = str(uuid.uuid4()), f"keyed-{uuid.uuid4().hex[:8]}"
    answers = {}
    start = threading.Barrier(2)

    def send(gateway):
        start.wait()
        answers[gateway] = sessions[gateway].post("/order/", json={"name": name}, headers={"Idempotency-Key": key})

    threads = [threading.Thread(target=send, args=(gateway,)) for gateway in GATEWAYS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {answer.status_code for answer in answers.values()} == {201}, [a.text for a in answers.values()]
    assert len({answer.headers["Location"] for answer in answers.values()}) == 1
    for session in (one, two):
        assert session.get("/order/", params={"filter[name]": name}).json()["total_count"] == 1


def test_a_killed_gateway_leaves_the_other_serving_and_comes_back(launched):
    launcher, base_url, stderr = launched
    before = children(launcher)
    os.kill(before["gateway-2"], signal.SIGKILL)
    eventually(lambda: dead(before["gateway-2"]), timeout=10)
    # every new connection meanwhile is the other gateway's (a socket closed leaves the kernel's group with it)
    for _ in range(20):
        response = requests.get(base_url + "/about/", timeout=10)
        assert response.status_code == 200
    eventually(lambda: "gateway-2 restarted (restart #1" in stderr.read_text(), timeout=30)
    assert "gateway-2 exited with code -9" in stderr.read_text()
    after = children(launcher)
    assert after["gateway-2"] != before["gateway-2"]
    assert {name: pid for name, pid in after.items() if name != "gateway-2"} == \
        {name: pid for name, pid in before.items() if name != "gateway-2"}
    # the new copy takes connections again, and serves them
    eventually(lambda: "gateway-2" in {requests.get(base_url + "/health/ready", timeout=15).json()["gateway"]
                                       for _ in range(20)}, timeout=60, interval=0.5)
