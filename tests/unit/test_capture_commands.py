"""A5 /modeler-command/ (services.capture.commands) on an in-memory store: its validation, the status the machine side
writes (new → processing → complete | error, 409 otherwise), publication on `nautilus.command`, and production
following a completed start_job (run in-progress) or cancel_job (run cancelled), once."""
import uuid as uuidlib

import pytest

from services.capture import commands
from services.capture.commands import ModelerCommand
from shared.errors import Conflict, InvalidPayload
from shared.uris import uuid_of
from tests.kit.apps import command_ctx
from tests.unit.test_capture_domain import OTHER_BUREAU, app, new_modeler  # noqa: F401
from tests.unit.test_production_builds import Capture, floor  # noqa: F401
from tests.unit.test_production_planning import apps, uuid  # noqa: F401

FILE = "/machine-job-file/55555555-5555-5555-5555-555555555555/"


def issue(app, **fields):  # noqa: F811
    return app.create("modeler-command", fields, command_ctx())["uri"]


def test_a_command_is_issued_new_with_its_rules(app):  # noqa: F811
    modeler = new_modeler(app)
    uri = issue(app, modeler=modeler, type="start_job", machine_job_file=FILE)
    assert app.read("modeler-command", uuid_of(uri), command_ctx())["status"] == "new"
    with pytest.raises(InvalidPayload) as refused:
        issue(app, modeler=modeler, type="start_job")
    assert refused.value.title == commands.NEEDS_FILE
    with pytest.raises(InvalidPayload) as refused:
        issue(app, modeler=modeler, type="cancel_job")
    assert refused.value.field == "job_external_id"
    with pytest.raises(InvalidPayload) as refused:
        issue(app, modeler=modeler, type="check_configuration", status="complete")
    assert refused.value.title == commands.NEW_STATUS
    with pytest.raises(InvalidPayload) as refused:
        app.create("modeler-command", {"modeler": modeler, "type": "check_configuration"},
                   command_ctx(bureau=OTHER_BUREAU))
    assert refused.value.field == "modeler"


def test_the_machine_side_moves_its_status_along_the_table(app):  # noqa: F811
    uri = issue(app, modeler=new_modeler(app), type="start_job", machine_job_file=FILE)
    with pytest.raises(Conflict):
        app.update("modeler-command", uuid_of(uri), {"status": "complete"}, command_ctx())  # not picked up yet
    app.update("modeler-command", uuid_of(uri), {"status": "processing"}, command_ctx())
    app.update("modeler-command", uuid_of(uri), {"status": "complete", "response": '{"job_external_id": "3041"}',
                                                 "job_external_id": "3041"}, command_ctx())
    with pytest.raises(Conflict):
        app.update("modeler-command", uuid_of(uri), {"status": "processing"}, command_ctx())
    with pytest.raises(InvalidPayload):
        app.update("modeler-command", uuid_of(uri), {"type": "cancel_job"}, command_ctx())
    names = [n for e in app.feed(1, 500)["events"] if e["resource"] == "modeler-command" for n in e["names"]]
    assert {"ModelerCommandPickedUp", "ModelerCommandCompleted"} <= set(names)


def test_an_issued_command_is_published_on_nautilus_command():
    published = ModelerCommand.follow_ups("create", {"uri": "/modeler-command/1/"}, {"type": "start_job"})
    assert published == [("nautilus.command", {"type": "start_job", "uri": "/modeler-command/1/", "status": "new"})]
    assert ModelerCommand.follow_ups("update", {"uri": "/modeler-command/1/"}, {"status": "processing"}) == []


def command_events(capture, command_id, kind, run, at, **fields):
    capture.events.append({"position": len(capture.events) + 1, "application": "capture",
                           "resource": "modeler-command", "uuid": str(command_id), "kind": kind,
                           "fields": dict(fields, run=run) if kind == "created" else fields, "timestamp": at})


def test_a_completed_start_job_starts_its_run_and_cancel_job_cancels_it_once(floor):  # noqa: F811
    run = floor.run(0, printer=floor.printer)
    capture, start = Capture(floor.production), uuidlib.uuid4()
    command_events(capture, start, "created", run, "2026-11-30T08:00:00+00:00", type="start_job", status="new")
    command_events(capture, start, "updated", run, "2026-11-30T08:00:01+00:00", status="processing")
    capture.follow()
    assert floor.status(run) == "queued"  # not done yet
    command_events(capture, start, "updated", run, "2026-11-30T08:00:02+00:00", status="complete")
    capture.follow()
    assert floor.status(run) == "in-progress"
    cancel = uuidlib.uuid4()
    command_events(capture, cancel, "created", run, "2026-11-30T08:30:00+00:00", type="cancel_job", status="new",
                   job_external_id="3041")
    command_events(capture, cancel, "updated", run, "2026-11-30T08:30:02+00:00", status="complete")
    capture.follow()
    assert floor.status(run) == "cancelled"
    assert {p["status"] for p in floor.prints(0)} == {"created"}


def test_a_machines_answer_moves_its_command_once_and_only_its_own(app):  # noqa: F811
    import json

    from services.capture import telemetry

    modeler = new_modeler(app)
    other = new_modeler(app, name="Printer 2")
    uri = issue(app, modeler=modeler, type="check_configuration")
    key = telemetry.command_routing_key(uuid_of(modeler)) + "-status"
    answer = json.dumps({"command": uri, "status": "processing"}).encode()
    assert telemetry.take_command_status(app, key, answer) is not None
    assert telemetry.take_command_status(app, key, answer) is not None  # redelivered: the same receipt
    assert app.read("modeler-command", uuid_of(uri), command_ctx())["status"] == "processing"
    foreign = telemetry.command_routing_key(uuid_of(other)) + "-status"
    assert telemetry.take_command_status(app, foreign, json.dumps({"command": uri, "status": "error"})) is None
    assert telemetry.take_command_status(app, key, b"not json") is None
    telemetry.take_command_status(app, key, {"command": uri, "status": "complete", "response": "{}"})
    assert app.read("modeler-command", uuid_of(uri), command_ctx())["status"] == "complete"
    assert telemetry.take_command_status(app, key, {"command": uri, "status": "processing"}) is None  # late
    with pytest.raises(Conflict):  # the table holds for the machine too (the service logs and drops it)
        telemetry.take_command_status(app, key, {"command": uri, "status": "error"})


def test_a_completion_that_overtakes_its_pickup_walks_the_command_through_processing(app):  # noqa: F811
    from services.capture import telemetry

    modeler = new_modeler(app)
    uri = issue(app, modeler=modeler, type="check_configuration")
    key = telemetry.command_routing_key(uuid_of(modeler)) + "-status"
    telemetry.take_command_status(app, key, {"command": uri, "status": "complete", "response": "{}"})
    telemetry.take_command_status(app, key, {"command": uri, "status": "processing"})  # the overtaken one
    assert app.read("modeler-command", uuid_of(uri), command_ctx())["status"] == "complete"
    statuses = [e["fields"]["status"] for e in app.feed(1, 500)["events"]
                if e["resource"] == "modeler-command" and "status" in e["fields"]]
    assert statuses == ["new", "processing", "complete"]
