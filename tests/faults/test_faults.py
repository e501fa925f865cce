"""The fault suite (`make test-faults`): a real deployment as `make run` starts it (every process supervised by
runtime.launch, on PostgreSQL and a throwaway RabbitMQ vhost) takes orders from careful clients while it is hurt
in every way an operator meets: each process killed with SIGKILL, the broker's connections cut, PostgreSQL's
backends terminated, and poison requests sent. It asserts that no acknowledged order is lost or doubled, that the
read side converges, and that service comes back within RECOVERY_LIMIT seconds of each fault.

Careful clients are what the API asks of a client: an Idempotency-Key per order, and a retry of the same request
on a connection error, a 5xx or a 429 until it is acknowledged (201).

Figures are printed and written to bench/results/faults-<timestamp>.json. Only the broker connections of the
suite's own vhost and the backends of its own database are cut: nothing else on the machine is disturbed.
"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
import requests

from bench.write_path import (ADMIN_EMAIL, ADMIN_PASSWORD, PG_ADMIN_DSN, ROOT, AMQP_BASE, free_port,
                              print_log_tails, rabbitmqctl, run_migrate, service_env, throwaway_database,
                              throwaway_vhost)
from runtime.topology import PROCESSES

pytestmark = pytest.mark.faults

CLIENTS = 6
RECOVERY_LIMIT = 60.0  # seconds from a fault until a new order is acknowledged again
STARTUP_LIMIT = 120.0
PAUSE_BETWEEN_FAULTS = 2.0
RESULTS_DIR = ROOT / "bench" / "results"


class Deployment:
    def __init__(self, env, log_path):
        self.env = env
        self.base_url = f"http://127.0.0.1:{env['STRATUM_PORT']}"
        self.log = open(log_path, "wb")
        self.launcher = subprocess.Popen([sys.executable, "-m", "runtime.launch"], env=env, cwd=ROOT,
                                         stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def pid_of(self, name):
        """The pid of the running `python -m runtime.serve <name>` child of this deployment's launcher."""
        wanted = ["-m", "runtime.serve", name]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                status = (entry / "status").read_text()
            except OSError:
                continue
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if ppid == self.launcher.pid and [c.decode() for c in cmdline[1:4]] == wanted:
                return int(entry.name)
        return None

    def stop(self):
        if self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGTERM)
            try:
                self.launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.launcher.pid, signal.SIGKILL)
                self.launcher.wait()
        self.log.close()


def session_for(base_url, deadline):
    """A logged-in session (retried: the system may still be starting or recovering)."""
    while True:
        session = requests.Session()
        try:
            response = session.post(base_url + "/sessions/", timeout=10,
                                    json={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            if response.status_code == 201:
                return session
        except requests.RequestException:
            pass
        session.close()
        if time.monotonic() > deadline:
            raise AssertionError("the bootstrap administrator could not log in")
        time.sleep(0.5)


class CarefulClients:
    """CLIENTS threads creating orders as the API asks: one Idempotency-Key per order, the same request retried
    until it is acknowledged. Counts every attempt, every 5xx, and what was acknowledged."""

    def __init__(self, base_url, cookies, prefix):
        self.base_url, self.cookies, self.prefix = base_url, cookies, prefix
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}  # name → Location
        self.attempts = 0
        self.server_errors = Counter()
        self.given_up = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=RECOVERY_LIMIT * 2)

    def _run(self, index):
        session = requests.Session()
        session.cookies.update(self.cookies)
        number = 0
        while not self.stop.is_set():
            number += 1
            name = f"{self.prefix}-{index}-{number}"
            location = self._create(session, name)
            if location:
                with self.lock:
                    self.acked[name] = location
            else:
                with self.lock:
                    self.given_up.append(name)

    def _create(self, session, name):
        key = str(uuid.uuid4())
        deadline = time.monotonic() + RECOVERY_LIMIT * 3
        delay = 0.1
        while time.monotonic() < deadline:
            with self.lock:
                self.attempts += 1
            try:
                response = session.post(self.base_url + "/order/", json={"name": name}, timeout=30,
                                        headers={"Idempotency-Key": key})
                if response.status_code == 201:
                    return response.headers["Location"]
                if response.status_code == 401:  # the session's credential was lost with a rebuilt read side
                    session.cookies.update(session_for(self.base_url, deadline).cookies)
                elif response.status_code < 500 and response.status_code != 429:
                    raise AssertionError(f"order {name} refused: {response.status_code} {response.text[:200]}")
                else:
                    with self.lock:
                        self.server_errors[response.status_code] += 1
            except requests.RequestException:
                pass  # the gateway itself is restarting: try again
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 2.0)
        return None


def recovery_seconds(base_url, cookies, started):
    """Seconds from the fault until a fresh order (its own key) is acknowledged."""
    session = requests.Session()
    session.cookies.update(cookies)
    key = str(uuid.uuid4())
    while time.monotonic() - started < RECOVERY_LIMIT * 2:
        try:
            response = session.post(base_url + "/order/", json={"name": f"probe-{key[:8]}"}, timeout=10,
                                    headers={"Idempotency-Key": key})
            if response.status_code == 201:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return float("inf")


def kill(deployment, name):
    pid = deployment.pid_of(name)
    assert pid, f"no running {name} process"
    os.kill(pid, signal.SIGKILL)


def cut_broker(vhost):
    result = rabbitmqctl("close_all_connections", "--vhost", vhost, "fault suite: broker connections cut")
    assert result.returncode == 0, result.stderr


def cut_database(dbname):
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))


POISON = [
    ("/api_tokens/", '{"name": "x\\u0000y"}', 400),
    ("/payment/", '{"sub_total": NaN}', 400),
    ("/order/", '{"name": "' + "x" * (10 * 1024 * 1024) + '"}', 413),
    ("/order/", '{"name": "n", "shipping": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}", 400),
]


def send_poison(base_url, cookies):
    session = requests.Session()
    session.cookies.update(cookies)
    for path, body, status in POISON:
        response = session.post(base_url + path, data=body, headers={"Content-Type": "application/json"},
                                timeout=60)
        assert response.status_code == status, (path, response.status_code, response.text[:200])


def test_no_acknowledged_order_is_lost_or_doubled_under_faults():
    figures = {"faults": []}
    with tempfile.TemporaryDirectory() as data_dir, throwaway_database(PG_ADMIN_DSN) as dsn, \
            throwaway_vhost(AMQP_BASE) as amqp_uri:
        vhost = amqp_uri.rsplit("/", 1)[-1]
        dbname = dsn.rsplit("/", 1)[-1]
        env = dict(service_env(dsn, amqp_uri, free_port(), data_dir), STRATUM_RPC_TIMEOUT="10",
                   STRATUM_LOG_LEVEL="WARNING")
        run_migrate(env)
        deployment = Deployment(env, Path(data_dir) / "launch.log")
        try:
            admin = session_for(deployment.base_url, time.monotonic() + STARTUP_LIMIT)
            clients = CarefulClients(deployment.base_url, admin.cookies, f"fault-{uuid.uuid4().hex[:6]}")
            clients.start()
            time.sleep(PAUSE_BETWEEN_FAULTS)
            faults = [(f"kill -9 {name}", lambda n=name: kill(deployment, n)) for name in PROCESSES]
            faults += [("broker connections cut", lambda: cut_broker(vhost)),
                       ("database backends terminated", lambda: cut_database(dbname)),
                       ("poison requests", lambda: send_poison(deployment.base_url, admin.cookies))]
            for label, fault in faults:
                started = time.monotonic()
                fault()
                seconds = recovery_seconds(deployment.base_url, admin.cookies, started)
                figures["faults"].append({"fault": label, "recovery_seconds": round(seconds, 2)})
                time.sleep(PAUSE_BETWEEN_FAULTS)
            clients.finish()
            # every acknowledged order is there exactly once, and the read side shows each (converged)
            reader = session_for(deployment.base_url, time.monotonic() + RECOVERY_LIMIT)
            listed = Counter()
            for offset in range(0, 10 ** 6, 1000):
                page = reader.get(deployment.base_url + "/order/", timeout=30,
                                  params={"page[limit]": 1000, "page[offset]": offset}).json()
                listed.update(o["name"] for o in page["resources"] if o["name"].startswith(clients.prefix))
                if offset + 1000 >= page["total_count"]:
                    break
            lost = [name for name in clients.acked if listed[name] == 0]
            doubled = [name for name, count in listed.items() if count > 1]
            figures.update(requests_sent=clients.attempts, acknowledged=len(clients.acked), lost=len(lost),
                           doubled=len(doubled), given_up=len(clients.given_up),
                           server_errors=dict(clients.server_errors),
                           max_recovery_seconds=max(f["recovery_seconds"] for f in figures["faults"]))
        except BaseException:
            deployment.stop()
            print_log_tails(data_dir, lines=60)
            raise
        deployment.stop()
    _report(figures)
    assert figures["acknowledged"] > 0
    assert (figures["lost"], figures["doubled"], figures["given_up"]) == (0, 0, 0), figures
    slow = [f for f in figures["faults"] if f["recovery_seconds"] > RECOVERY_LIMIT]
    assert not slow, slow


def _report(figures):
    figures["when"] = datetime.now(timezone.utc).isoformat()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"faults-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(figures, indent=2))
    print("\nfault suite:", json.dumps(figures, indent=2))
