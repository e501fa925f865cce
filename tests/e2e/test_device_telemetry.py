"""Live telemetry (issue 17 "Done when", capture-and-platform.md F6), on SQLite and PostgreSQL: a printer with a
modeler runs a job played by the device simulator (`python -m services.capture.simulator`, Bambu Lab `print`
reports) over MQTT through RabbitMQ's MQTT plugin; the run goes in-progress → complete by itself, its actuals
carrying the machine's times; a simulated failure puts the run in `error`. The same reports over AMQP are taken the
same way, and a redelivered message changes nothing. A start_job command is published on nautilus.command, picked up
by the simulator and completed."""
import json
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlparse

import pytest
from kombu import Connection, Exchange, Producer, Queue

from runtime.mqtt import ensure_mqtt_plugin, mqtt_port
from services.capture import telemetry
from tests.e2e.test_builds_drive_runs import actuals_of, new_run, printer, status  # noqa: F401
from tests.e2e.test_shop_floor import status_history
from tests.kit.plugin import eventually
from tests.unit.test_capture_parsers import BAMBU

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mqtt(config):
    assert ensure_mqtt_plugin(), "RabbitMQ's MQTT plugin is off and could not be enabled"
    return {"port": mqtt_port(), "vhost": urlparse(config["AMQP_URI"]).path.lstrip("/") or "/"}


def simulate(mqtt, modeler, run_uuid, *extra):
    command = [sys.executable, "-m", "services.capture.simulator", "--modeler", modeler.rstrip("/").rsplit("/", 1)[-1],
               "--run", run_uuid, "--layers", "4", "--interval", "0.05", "--port", str(mqtt["port"]),
               "--vhost", mqtt["vhost"], *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def captures_of(api, modeler):
    return api.get("/capture/", params={"filter[modeler]": modeler, "page[limit]": 100}).json()["resources"]


def test_a_job_played_over_mqtt_moves_its_run_by_itself(admin, printer, mqtt):  # noqa: F811
    shop, modeler, workflow = printer
    run, run_uuid = new_run(admin, shop, workflow)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    played = simulate(mqtt, modeler, run_uuid)
    assert played.split()[0] == "PREPARE" and "FINISH" in played
    eventually(lambda: status(admin, run) == "complete", timeout=60)
    assert eventually(lambda: status_history(admin, run) == ["queued", "in-progress", "complete"], timeout=30)
    [closed] = eventually(lambda: [a for a in actuals_of(admin, run) if a["end_in_progress_time"]])
    start = datetime.fromisoformat(closed["start_in_progress_time"])
    assert before <= start <= datetime.fromisoformat(closed["end_in_progress_time"])
    assert start.microsecond == 0  # the printer's gcode_start_time (whole seconds), not the server's clock
    builds = admin.get("/build/", params={"filter[modeler]": modeler}).json()["resources"]
    [build] = [b for b in builds if b["name"] == run_uuid]
    assert build["run"] == run and build["status"] == "complete" and build["current_layer"] == 4
    assert eventually(lambda: admin.get(modeler).json()["status"] == "print_finished")
    taken = [c for c in captures_of(admin, modeler) if c["capture_type_name"] == "bambu.modeler.status"]
    assert len(taken) >= 6 and {c["status"] for c in taken} == {"complete"}  # PREPARE, 4 layers, FINISH


def test_a_failure_played_over_mqtt_puts_its_run_in_error(admin, printer, mqtt):  # noqa: F811
    shop, modeler, workflow = printer
    run, run_uuid = new_run(admin, shop, workflow)
    assert "FAILED" in simulate(mqtt, modeler, run_uuid, "--fail-at", "3")
    eventually(lambda: status(admin, run) == "error", timeout=60)
    assert eventually(lambda: admin.get(modeler).json()["status"] == "error")


def test_amqp_reports_are_taken_the_same_way_once(admin, config, printer):  # noqa: F811
    _, modeler, _ = printer
    before = len(captures_of(admin, modeler))
    report = json.loads(BAMBU.read_bytes())
    report["print"]["sequence_id"] = str(time.time_ns())
    with Connection(config["AMQP_URI"]) as connection:
        producer = Producer(connection.channel(), exchange=Exchange("amq.topic", type="topic", no_declare=True))
        for _ in range(2):  # the same message delivered twice
            producer.publish(json.dumps(report).encode(), routing_key=telemetry.routing_key(
                modeler.rstrip("/").rsplit("/", 1)[-1]), message_id="report-1", content_type="application/json")
    eventually(lambda: len(captures_of(admin, modeler)) == before + 1, timeout=30)
    time.sleep(1)
    assert len(captures_of(admin, modeler)) == before + 1
    assert eventually(lambda: admin.get(modeler).json()["status"] == "idle")


def test_a_start_job_command_is_obeyed_by_the_simulator(admin, config, printer, mqtt):  # noqa: F811
    """A5/F7: the command is published on nautilus.command and relayed to its machine's command topic; the
    simulator picks it up (processing), completes it with the job's id, and plays the job: the run starts on the
    completed command and completes on the machine's report."""
    shop, modeler, workflow = printer
    run, run_uuid = new_run(admin, shop, workflow)
    modeler_uuid = modeler.rstrip("/").rsplit("/", 1)[-1]
    simulator = subprocess.Popen(
        [sys.executable, "-m", "services.capture.simulator", "--modeler", modeler_uuid, "--obey", "--commands", "1",
         "--wait", "60", "--layers", "3", "--interval", "0.05", "--port", str(mqtt["port"]), "--vhost",
         mqtt["vhost"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert simulator.stdout.readline().startswith("listening on stratum/modeler/")
        with Connection(config["AMQP_URI"]) as connection:
            bus = Queue(f"test-nautilus-{uuid.uuid4().hex[:8]}", Exchange("capture.events", type="topic"),
                        routing_key="nautilus.command", auto_delete=True)(connection.channel())
            bus.declare()
            job_file = admin.post("/machine-job-file/", json={})
            assert job_file.status_code == 201, job_file.text
            response = admin.post("/modeler-command/", json={
                "modeler": modeler, "type": "start_job", "run": run, "machine_job_file": job_file.headers["Location"]})
            assert response.status_code == 201, response.text
            command = response.headers["Location"]
            published = eventually(lambda: bus.get(no_ack=True), timeout=30)
            assert published.payload["type"] == "start_job" and command.endswith(published.payload["uri"])
        body = eventually(lambda: (b := admin.get(command).json())["status"] == "complete" and b, timeout=60)
        assert body["job_external_id"] and json.loads(body["response"])["accepted"] is True
        assert status_history(admin, command)[:3] == ["new", "processing", "complete"]
        eventually(lambda: status(admin, run) == "complete", timeout=60)
        assert simulator.wait(timeout=60) == 0
    finally:
        if simulator.poll() is None:
            simulator.kill()
        simulator.wait()
    assert eventually(lambda: status_history(admin, run) == ["queued", "in-progress", "complete"], timeout=30)
