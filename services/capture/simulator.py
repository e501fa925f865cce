"""A device simulator: a Bambu Lab printer playing one print job for a run, over MQTT through RabbitMQ's MQTT plugin
(services.capture.telemetry), in the printer's own report format.

Each message is the cited `print.push_status` report (tests/fixtures/capture/bambu/push_status_idle.json, from
Doridian/OpenBambuAPI) with the fields a printing job changes set as the printer sets them: `gcode_state` along
GCODE_STATE_OPTIONS (PREPARE → RUNNING → FINISH, or FAILED), `task_id` / `subtask_id`, `subtask_name` (the job's
name: the run's uuid, the way a job sent from Stratum is named, which links the build to the run), `gcode_file`,
`gcode_start_time` (epoch seconds), `layer_num` / `total_layer_num`, `mc_percent`, `mc_remaining_time` (minutes),
`sequence_id`. Nothing else is made up: a failure is the FAILED state alone (no vendor error code is invented).

    python -m services.capture.simulator --modeler <modeler uuid> --run <run uuid> [--layers 20] [--fail-at 7]
        [--host 127.0.0.1] [--port 1884] [--vhost /] [--username guest] [--password guest] [--interval 0.5]

It publishes on stratum/modeler/<modeler uuid>/status, QoS 1, and prints each state it sends.

With --obey instead of --run it is a printer waiting for commands (A5) on stratum/modeler/<modeler uuid>/command: it
answers each on …/command-status (processing, then complete, with the job id it gave the job), and a start_job
command's job it then plays for the command's run. It stops after --commands commands (or --wait seconds idle).
"""
import argparse
import copy
import json
import os
import queue
import threading
import time
import uuid as uuidlib

from services.capture.telemetry import command_status_topic, command_topic, mqtt_topic

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "capture", "bambu",
                       "push_status_idle.json")
MINUTES_PER_LAYER = 2  # what the simulated printer says each layer takes (mc_remaining_time)


def idle_report():
    with open(FIXTURE, "rb") as fixture:
        return json.load(fixture)


def reports(run_uuid, layers=20, fail_at=None, started=None, task_id=None):
    """The reports of one job, in order: preheat (PREPARE), one RUNNING per layer, then FINISH (or FAILED at
    layer `fail_at`)."""
    started = int(started if started is not None else time.time())
    task_id = str(task_id or uuidlib.UUID(str(run_uuid)).int % 10 ** 9)
    base = idle_report()
    sequence = int(base["print"]["sequence_id"])

    def report(state, layer):
        nonlocal sequence
        sequence += 1
        message = copy.deepcopy(base)
        message["print"].update(
            gcode_state=state, task_id=task_id, subtask_id=task_id, subtask_name=str(run_uuid),
            gcode_file=f"/data/Metadata/{run_uuid}.gcode", gcode_start_time=str(started), layer_num=layer,
            total_layer_num=layers, mc_percent=round(layer * 100 / layers),
            mc_remaining_time=(layers - layer) * MINUTES_PER_LAYER if state in ("PREPARE", "RUNNING") else 0,
            sequence_id=str(sequence))
        return message

    yield report("PREPARE", 0)
    for layer in range(1, layers + 1):
        if fail_at is not None and layer >= fail_at:
            yield report("FAILED", layer)
            return
        yield report("RUNNING", layer)
    yield report("FINISH", layers)


class MqttPrinter:
    """An MQTT connection to RabbitMQ's MQTT plugin (paho-mqtt), publishing a modeler's reports."""

    def __init__(self, modeler_uuid, host="127.0.0.1", port=1884, vhost=None, username="guest", password="guest"):
        from paho.mqtt import client as mqtt
        self.topic = mqtt_topic(modeler_uuid)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"stratum-sim-{uuidlib.uuid4().hex[:8]}")
        user = f"{vhost}:{username}" if vhost and vhost != "/" else username
        self.client.username_pw_set(user, password)
        self.client.connect(host, int(port), keepalive=30)
        self.client.loop_start()

    def publish(self, report, topic=None):
        topic = topic or self.topic
        info = self.client.publish(topic, json.dumps(report).encode(), qos=1)
        info.wait_for_publish(timeout=30)
        if not info.is_published():
            raise ConnectionError(f"the broker did not take a message on {topic}")

    def listen(self, topic):
        """Subscribe to `topic` (QoS 1), returning the queue its messages (decoded JSON) arrive in, once the
        broker has confirmed the subscription."""
        inbox, subscribed = queue.Queue(), threading.Event()
        self.client.on_message = lambda client, userdata, message: inbox.put(json.loads(message.payload))
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe(topic, qos=1)
        if not subscribed.wait(30):
            raise ConnectionError(f"the broker did not confirm the subscription to {topic}")
        return inbox

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def play(publish, run_uuid, layers=20, fail_at=None, interval=0.5, say=print):
    """Publish a whole job's reports, `interval` seconds apart. Returns how many were sent."""
    sent = 0
    for report in reports(run_uuid, layers, fail_at):
        publish(report)
        sent += 1
        say(f"{report['print']['gcode_state']:8} layer {report['print']['layer_num']}/{layers}")
        time.sleep(interval)
    return sent


def obey(printer, modeler_uuid, count=1, wait=60, layers=20, fail_at=None, interval=0.5, say=print):
    """Carry out `count` commands as they come: answer each, play each start_job's job. Returns those done."""
    inbox = printer.listen(command_topic(modeler_uuid))
    say(f"listening on {command_topic(modeler_uuid)}", flush=True)
    answers = command_status_topic(modeler_uuid)
    done = 0
    while done < count:
        try:
            command = inbox.get(timeout=wait)
        except queue.Empty:
            break
        say(f"command {command.get('type')} {command.get('uri')}", flush=True)
        printer.publish({"command": command["uri"], "status": "processing"}, answers)
        if command.get("type") == "start_job" and command.get("run"):
            run_uuid = command["run"].rstrip("/").rsplit("/", 1)[-1]
            job = str(uuidlib.UUID(run_uuid).int % 10 ** 9)
            printer.publish({"command": command["uri"], "status": "complete", "job_external_id": job,
                             "response": json.dumps({"job_external_id": job, "accepted": True})}, answers)
            play(printer.publish, run_uuid, layers, fail_at, interval, say=lambda line: say(line, flush=True))
        else:
            printer.publish({"command": command["uri"], "status": "complete",
                             "response": json.dumps({"accepted": True})}, answers)
        done += 1
    return done


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.capture.simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--modeler", required=True, help="the modeler's uuid (its MQTT topic)")
    parser.add_argument("--run", help="the run's uuid: the job's name")
    parser.add_argument("--obey", action="store_true", help="wait for commands instead, and carry them out")
    parser.add_argument("--commands", type=int, default=1, help="with --obey: stop after this many commands")
    parser.add_argument("--wait", type=float, default=60, help="with --obey: stop after this long without one")
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--fail-at", type=int, default=None, help="fail the job at this layer")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between two reports")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STRATUM_MQTT_PORT") or 1884))
    parser.add_argument("--vhost", default=None, help="RabbitMQ vhost (the MQTT user name becomes vhost:user)")
    parser.add_argument("--username", default="guest")
    parser.add_argument("--password", default="guest")
    args = parser.parse_args(argv)
    printer = MqttPrinter(args.modeler, args.host, args.port, args.vhost, args.username, args.password)
    try:
        if args.obey:
            obey(printer, args.modeler, args.commands, args.wait, args.layers, args.fail_at, args.interval)
        elif args.run:
            play(printer.publish, args.run, args.layers, args.fail_at, args.interval)
        else:
            parser.error("give --run (play a job) or --obey (wait for commands)")
    finally:
        printer.close()


if __name__ == "__main__":
    main()
