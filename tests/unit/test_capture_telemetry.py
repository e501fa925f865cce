"""Live telemetry (services.capture.telemetry) and the device simulator (services.capture.simulator) on an in-memory
store: the topic per modeler, a report off the broker taken exactly like an uploaded status capture (same parser,
same effects), a redelivered message changing nothing, and the simulator's job read by the real Bambu parser."""
from datetime import datetime, timezone
from uuid import uuid4

from services.capture import parsers, simulator, telemetry
from services.capture.domain import Capture as CaptureRecord
from shared.uris import uuid_of
from tests.kit.apps import command_ctx
from tests.unit.test_capture_domain import ULTIMAKER_S5, app, blobs, modeler, new_modeler  # noqa: F401
from tests.unit.test_capture_parsers import BAMBU


def test_one_topic_per_modeler_the_same_over_mqtt_and_amqp():
    modeler_id = uuid4()
    key = telemetry.routing_key(modeler_id)
    assert telemetry.mqtt_topic(modeler_id).replace("/", ".") == key  # what RabbitMQ's MQTT plugin routes it as
    assert telemetry.modeler_of_routing_key(key) == modeler_id
    for other in ("stratum.modeler.nope.status", f"stratum.modeler.{modeler_id}.log", "device.x.report", None):
        assert telemetry.modeler_of_routing_key(other) is None


def take(app, blobs, modeler_uri, body, message_id=None):  # noqa: F811
    news = []
    taken = telemetry.Telemetry(app, blobs, news.append, lambda run, bureau: None).take(
        telemetry.routing_key(uuid_of(modeler_uri)), body, message_id)
    return taken, news


def captures(app):  # noqa: F811
    return [a for a in (app.repository.get(n.originator_id) for n in app.recorder.select_notifications(1, 10000))
            if isinstance(a, CaptureRecord)]


def test_a_report_is_taken_like_an_uploaded_status_capture_once(app, blobs):  # noqa: F811
    printer = new_modeler(app)
    taken, news = take(app, blobs, printer, BAMBU.read_bytes())
    capture = app.read("capture", uuid_of(taken), command_ctx())
    assert capture["status"] == "complete" and capture["capture_type_name"] == "bambu.modeler.status"
    assert capture["meta"]["source"] == "mqtt" and capture["modeler"] == printer and news
    assert modeler(app, printer)["status"] == "idle" and modeler(app, printer)["latest_upload"]
    assert take(app, blobs, printer, BAMBU.read_bytes())[0] == taken  # redelivered: the same capture
    assert take(app, blobs, printer, BAMBU.read_bytes().decode())[0] == taken  # however kombu decoded it
    assert len({c.id for c in captures(app)}) == 1
    other, _ = take(app, blobs, printer, BAMBU.read_bytes(), message_id="m-2")  # a publisher's own message id
    assert other != taken and take(app, blobs, printer, b"{}", message_id="m-2")[0] == other


def test_reports_of_an_unknown_modeler_or_one_with_no_status_kind_are_dropped(app, blobs):  # noqa: F811
    assert take(app, blobs, f"/modeler/{uuid4()}/", BAMBU.read_bytes())[0] is None
    cluster = new_modeler(app, type=ULTIMAKER_S5)  # its type's only capture kind is a log
    assert take(app, blobs, cluster, BAMBU.read_bytes())[0] is None
    assert captures(app) == []


def test_a_broken_report_ends_failed_and_moves_nothing(app, blobs):  # noqa: F811
    printer = new_modeler(app)
    taken, _ = take(app, blobs, printer, b'{"print": {"gcode_state": "RUNN')
    capture = app.read("capture", uuid_of(taken), command_ctx())
    assert capture["status"] == "failed" and "cut short" in capture["error"]
    assert modeler(app, printer)["status"] == "unknown"  # a report came, none told a state


def test_the_simulated_job_is_read_by_the_bambu_parser():
    run = str(uuid4())
    played = [parsers.parse("bambu.modeler.status", simulator.json.dumps(r).encode())
              for r in simulator.reports(run, layers=3, started=1796025600)]
    assert [o.jobs[0].status for o in played] == ["preheat", "processing", "processing", "processing", "complete"]
    assert [o.state for o in played] == ["printing"] * 4 + ["print_finished"]
    assert {o.jobs[0].name for o in played} == {run} and len({o.jobs[0].key for o in played}) == 1
    assert [o.jobs[0].current_layer for o in played] == [0, 1, 2, 3, 3] and played[0].jobs[0].layers == 3
    assert played[0].jobs[0].start_time == datetime.fromtimestamp(1796025600, timezone.utc).isoformat()
    failed = [parsers.parse("bambu.modeler.status", simulator.json.dumps(r).encode())
              for r in simulator.reports(run, layers=5, fail_at=2)]
    assert [o.jobs[0].status for o in failed] == ["preheat", "processing", "failed"] and failed[-1].state == "error"
    sequence = [r["print"]["sequence_id"] for r in simulator.reports(run, layers=2)]
    assert len(set(sequence)) == len(sequence)  # each report its own message, as the printer numbers them


def test_a_report_parsed_after_a_newer_one_does_not_move_its_build_back(app, blobs):  # noqa: F811
    """Captures parse in any order (HTTP uploads side by side): the older report tells the build nothing."""
    import io

    from services.capture.domain import Build
    from services.capture.processing import Pipeline
    from tests.unit.test_capture_domain import new_capture

    printer = new_modeler(app)
    run = str(uuid4())
    running, finished = [simulator.json.dumps(r).encode() for r in simulator.reports(run, layers=1)][1:]
    landed = []
    for data in (running, finished):  # taken in this order…
        uuid = uuid_of(new_capture(app, printer, "bambu.modeler.status")["uri"])
        blob = blobs.receive(io.BytesIO(data).read, float("inf"))
        app.receive(uuid, blob.as_dict(), f"upload:{uuid}")
        landed.append((uuid, blob.sha256))
    for uuid, sha256 in reversed(landed):  # …parsed the other way round
        Pipeline(app, blobs, lambda result: result).process(uuid, sha256)
    [build] = [a for a in (app.repository.get(n.originator_id) for n in app.recorder.select_notifications(1, 10000))
               if isinstance(a, Build)][:1]
    assert build.fields["status"] == "complete" and build.fields["current_layer"] == 1
    assert modeler(app, printer)["status"] == "print_finished"
