"""Issue 13, "Done when": production is killed (SIGKILL, as the OS or an operator would) between a line item's
confirmation and its pieces; on restart the pieces and their prints appear exactly once.

The stack is started the `make run` way (runtime.launch supervises every process; embedded SQLite, then PostgreSQL;
a throwaway broker vhost). The kill lands in the window deterministically: the line item has a model, so planning asks the files
service for the model's name before it commits the pieces; the files process is frozen (SIGSTOP) before the
confirmation, so production cannot commit the batch however far it got (pulled, planning, waiting on files). Once
the confirmation is committed and production has had more than its catch-up interval to act, production is killed
and files thawed; the supervisor starts production again, which plans from its own tracked position."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.follower import CATCH_UP_INTERVAL
from tests.e2e.test_line_item_models import upload
from tests.e2e.test_production_http import Shop, created, of_line_item
from tests.kit.meshes import box_stl
from tests.kit.plugin import ADMIN_EMAIL, ADMIN_PASSWORD, AMQP_BASE, eventually, free_port, login, throwaway_vhost

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
QUANTITY = 3


@pytest.fixture(scope="module")
def vhost():
    with throwaway_vhost("stratum-test-crash") as name:
        yield name


class Stack:
    """`make run` in a subprocess (its own session, so the whole group can be stopped)."""

    def __init__(self, data, vhost, storage):
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
        env.update(storage)  # embedded SQLite, or a throwaway PostgreSQL database (STRATUM_POSTGRES_DSN)
        # nine processes on PostgreSQL: small pools, so the stack stays well inside the server's connections
        env.update(STRATUM_PG_POOL_SIZE="1", STRATUM_PG_MAX_OVERFLOW="2", STRATUM_READ_POOL_SIZE="1",
                   STRATUM_READ_MAX_OVERFLOW="2")
        env.update(PYTHONPATH=str(ROOT), AMQP_URI=AMQP_BASE.rstrip("/") + "/" + vhost, STRATUM_PORT=str(free_port()),
                   STRATUM_DATA_DIR=str(data), STRATUM_ADMIN_EMAIL=ADMIN_EMAIL, STRATUM_ADMIN_PASSWORD=ADMIN_PASSWORD,
                   STRATUM_LOG_LEVEL="WARNING")
        self.base_url = f"http://127.0.0.1:{env['STRATUM_PORT']}"
        self.log_path = data / "launch.log"
        self.log = open(self.log_path, "w+")
        self.launcher = subprocess.Popen([sys.executable, "-m", "runtime.launch"], env=env, cwd=ROOT, text=True,
                                         stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_up(self, timeout=180):
        deadline = time.monotonic() + timeout
        while "stratum: up at" not in self.log_path.read_text():
            assert self.launcher.poll() is None and time.monotonic() < deadline, self.log_path.read_text()[-3000:]
            time.sleep(0.5)

    def pid_of(self, name):
        """The pid of the launcher's `python -m runtime.serve <name>` child."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().decode().split("\0")
                status = (entry / "status").read_text()
            except OSError:
                continue
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if ppid == self.launcher.pid and argv[1:4] == ["-m", "runtime.serve", name]:
                return int(entry.name)
        return None

    def stop(self):
        if self.launcher.poll() is None:
            os.killpg(self.launcher.pid, signal.SIGCONT)  # nothing left frozen
            self.launcher.send_signal(signal.SIGTERM)
            try:
                self.launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.launcher.pid, signal.SIGKILL)
                self.launcher.wait()
        self.log.close()


@pytest.fixture(scope="module")
def stack(vhost, storage, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("crash"), vhost, storage)
    try:
        running.wait_up()
        yield running
    finally:
        running.stop()


def counts(api, item):
    return len(of_line_item(api, "piece", item)), len(of_line_item(api, "print", item))


def test_production_killed_between_confirmation_and_pieces_plans_them_exactly_once(stack, tmp_path):
    api = login(stack.base_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    shop = Shop(api)
    workflow = shop.workflow()  # printing → post-processing → shipping: 3 prints a piece
    model = upload(api, box_stl(tmp_path / "hinge.stl", dims=(10, 10, 10)))
    order = created(api, "/order/", {"name": "crash"})
    product = created(api, "/product/", {"order": order})
    item = created(api, "/line-item/", {"product": product, "model": model, "quantity": QUANTITY,
                                        "workflow": workflow})
    eventually(lambda: api.get(item).json()["status"] == "pending", timeout=60, interval=0.2)

    files, production = stack.pid_of("files"), stack.pid_of("production")
    assert files and production
    os.kill(files, signal.SIGSTOP)  # planning's call for the model's name waits: nothing can be committed
    try:
        response = api.put(item, json={"status": "confirmed"})  # orders asks production (alive) for the workflow
        assert response.status_code == 204, response.text
        assert api.get(item).json()["status"] == "confirmed"
        time.sleep(3 * CATCH_UP_INTERVAL)  # production has pulled the confirmation (doorbell or timer) by now
        assert counts(api, item) == (0, 0)  # … and has not committed its pieces: the window
        os.kill(production, signal.SIGKILL)
    finally:
        os.kill(files, signal.SIGCONT)
    eventually(lambda: "production exited with code -9" in stack.log_path.read_text(), timeout=30)
    eventually(lambda: stack.pid_of("production") not in (None, production), timeout=30)

    eventually(lambda: counts(api, item) == (QUANTITY, 3 * QUANTITY), timeout=90, interval=0.5)
    time.sleep(3 * CATCH_UP_INTERVAL)  # settled: nothing more comes
    pieces = of_line_item(api, "piece", item)
    prints = of_line_item(api, "print", item)
    assert sorted(p["copy"] for p in pieces) == list(range(1, QUANTITY + 1))
    assert {p["name"] for p in pieces} == {f"hinge.stl {n}" for n in range(1, QUANTITY + 1)}  # named from the model
    assert sorted((p["piece"], p["process_step_position"]) for p in prints) == sorted(
        (piece["uri"], position) for piece in pieces for position in range(3))
    assert {(p["status"], p["run"]) for p in prints} == {("created", None)}

    # killed again once planned: the restart replays nothing
    os.kill(stack.pid_of("production"), signal.SIGKILL)
    eventually(lambda: "production restarted (restart #2" in stack.log_path.read_text(), timeout=60)
    eventually(lambda: api.get(workflow).status_code == 200 and api.put(
        workflow, json={"description": "after the second crash"}).status_code == 204, timeout=60, interval=0.5)
    time.sleep(3 * CATCH_UP_INTERVAL)
    assert counts(api, item) == (QUANTITY, 3 * QUANTITY)
    api.close()
