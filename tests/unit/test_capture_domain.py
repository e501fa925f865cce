"""Device capture's rules on an in-memory store: the platform machine catalogue, modelers (the IP-address rule, the
status precedence of capture-and-platform.md A3), captures (upload, parse outcome, failure) and the builds they
create, idempotently."""
import io
from uuid import uuid4

import pytest

from services.capture import machines, parsers
from services.capture.application import Capture as CaptureApp
from services.capture.domain import IP_ADDRESS_INVALID, derive_status
from services.capture.processing import Pipeline
from shared import catalogue
from shared.blobstore import BlobStore
from shared.errors import Conflict, InvalidPayload
from shared.uris import uuid_of
from tests.kit.apps import BUREAU, IN_MEMORY, command_ctx
from tests.unit.test_capture_parsers import BAMBU, FORMLABS, ULTIMAKER

OTHER_BUREAU = "/bureau/22222222-2222-2222-2222-222222222222/"
BAMBU_X1C = f"/modeler-type/{machines.MACHINES[[m.name for m in machines.MACHINES].index('X1 Carbon')].id}/"
ULTIMAKER_S5 = f"/modeler-type/{next(m.id for m in machines.MACHINES if m.name == 'Ultimaker S5')}/"


@pytest.fixture
def app():
    app = CaptureApp(env=IN_MEMORY)
    app.seed_platform()
    yield app
    app.close()


@pytest.fixture
def blobs(tmp_path):
    return BlobStore(str(tmp_path / "blobs"))


def new_modeler(app, **fields):
    fields = {"name": "Printer 1", "type": BAMBU_X1C, **fields}
    return app.create("modeler", fields, command_ctx())["uri"]


def modeler(app, uri):
    return app.read("modeler", uuid_of(uri), command_ctx())


# -- the catalogue -------------------------------------------------------------------------------------------------

def test_catalogue_covers_every_machine_capture_kind():
    kinds = set(catalogue.resource("capture").fields["capture_type_name"].choices)
    covered = {kind for machine in machines.MACHINES for kind in machine.capture_types}
    assert covered == kinds - {"addiguru.build.analysis"}  # Addiguru captures come from installations (A13)
    technologies = set(catalogue.resource("modeler-type").fields["technology"].choices)
    assert {m.technology for m in machines.MACHINES} <= technologies


def test_catalogue_is_platform_data_seeded_once(app):
    assert app.seed_platform() == 0  # a second start changes nothing
    x1c = app.repository.get(machines.MACHINES[[m.name for m in machines.MACHINES].index("X1 Carbon")].id)
    assert x1c.bureau is None
    assert x1c.fields["capture_types"] == [{"capture_type": "bambu.modeler.status"}]
    assert x1c.fields["manufacturer"] == "Bambu Lab" and x1c.fields["technology"] == "FDM"


def test_a_changed_catalogue_entry_updates_the_stored_type(app, monkeypatch):
    first = machines.MACHINES[0]
    changed = machines.Machine(first.manufacturer, first.name, first.technology, first.capture_types, "New words.")
    monkeypatch.setattr(machines, "MACHINES", (changed, *machines.MACHINES[1:]))
    assert app.seed_platform() == 1
    assert app.repository.get(first.id).fields["description"] == "New words."


# -- modelers ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["10.0.0.300", "printer.local", "1.2.3", "::g", ""])
def test_an_invalid_ip_address_is_refused_with_the_documented_message(app, address):
    with pytest.raises(InvalidPayload) as refused:
        new_modeler(app, ip_address=address)
    assert refused.value.title == IP_ADDRESS_INVALID and refused.value.field == "ip_address"


@pytest.mark.parametrize("address", ["192.168.1.14", "fe80::1", "2001:db8::8a2e:370:7334"])
def test_ipv4_and_ipv6_addresses_are_accepted(app, address):
    uri = new_modeler(app, ip_address=address)
    assert modeler(app, uri)["ip_address"] == address


def test_an_ip_address_changed_to_garbage_is_refused_and_nothing_changes(app):
    uri = new_modeler(app, ip_address="10.0.0.5")
    with pytest.raises(InvalidPayload, match="IPv4 or IPv6"):
        app.update("modeler", uuid_of(uri), {"ip_address": "10.0.0"}, command_ctx())
    assert modeler(app, uri)["ip_address"] == "10.0.0.5"


def test_type_must_be_a_modeler_type(app):
    with pytest.raises(InvalidPayload) as refused:
        new_modeler(app, type=f"/modeler-type/{uuid4()}/")
    assert refused.value.field == "type"


def test_a_new_modeler_is_not_connected_until_a_capture_arrives(app):
    body = modeler(app, new_modeler(app))
    assert body["status"] == "not_connected" and body["connected"] is True
    assert body["current_build"] is None and body["latest_upload"] is None and body["watermark"] is None
    assert "password" not in modeler(app, new_modeler(app, password="s3cret"))


def test_status_is_never_written_by_a_client(app):
    uri = new_modeler(app)
    app.update("modeler", uuid_of(uri), {"status": "printing", "name": "Renamed"}, command_ctx())
    body = modeler(app, uri)
    assert body["status"] == "not_connected" and body["name"] == "Renamed"


@pytest.mark.parametrize("connected, latest, reported, expected", [
    (False, "2026-01-01", {"state": "error", "error": "nozzle clog"}, "offline"),  # offline beats error
    (False, None, None, "offline"),
    (True, None, {"state": "printing"}, "not_connected"),
    (True, "2026-01-01", {"state": "printing", "error": "door open"}, "error"),
    (True, "2026-01-01", {"state": "error", "error": None}, "error"),
    (True, "2026-01-01", {"state": "printing", "error": None}, "printing"),
    (True, "2026-01-01", {"state": "ready_to_print", "error": None}, "ready_to_print"),
    (True, "2026-01-01", {"state": "unknown", "error": None}, "unknown"),
    (True, "2026-01-01", None, "unknown"),  # data arrived, but none told a state
])
def test_status_precedence(connected, latest, reported, expected):
    assert derive_status(connected, latest, reported) == expected


def test_disconnecting_forces_offline_and_reconnecting_restores_the_reported_state(app, blobs):
    uri = new_modeler(app)
    parse_upload(app, blobs, uri, "bambu.modeler.status", BAMBU.read_bytes())
    assert modeler(app, uri)["status"] == "idle"
    app.update("modeler", uuid_of(uri), {"connected": False}, command_ctx())
    assert modeler(app, uri)["status"] == "offline"
    app.update("modeler", uuid_of(uri), {"connected": True}, command_ctx())
    assert modeler(app, uri)["status"] == "idle"


def test_modeler_names_its_events(app, blobs):
    uri = new_modeler(app)
    app.update("modeler", uuid_of(uri), {"connected": False}, command_ctx())
    names = [name for e in app.feed(1, 500)["events"] if e["uuid"] == uuid_of(uri) for name in e["names"]]
    assert "ModelerConnectivityChanged" in names and "ModelerStatusChanged" in names


# -- captures and builds -------------------------------------------------------------------------------------------

def new_capture(app, modeler_uri, kind, **extra):
    return app.create("capture", {"modeler": modeler_uri, "capture_type_name": kind, **extra}, command_ctx())


def parse_upload(app, blobs, modeler_uri, kind, data):
    """POST a capture, land its bytes, run the background parse: the capture's fields after."""
    created = new_capture(app, modeler_uri, kind)
    assert created["upload"] is True
    uuid = uuid_of(created["uri"])
    blob = blobs.receive(io.BytesIO(data).read, float("inf"))
    app.receive(uuid, blob.as_dict(), f"upload:{uuid}")
    assert app.read("capture", uuid, command_ctx())["status"] in ("processing", "batch_processing")
    Pipeline(app, blobs, lambda result: result).process(uuid, blob.sha256)
    return dict(app.load("capture", uuid, command_ctx()).fields, uuid=uuid)  # with the private blob fields


def test_a_capture_needs_a_modeler_of_the_callers_bureau(app):
    with pytest.raises(InvalidPayload) as refused:
        new_capture(app, f"/modeler/{uuid4()}/", "bambu.modeler.status")
    assert refused.value.field == "modeler"
    theirs = app.create("modeler", {"name": "Theirs", "type": BAMBU_X1C}, command_ctx(bureau=OTHER_BUREAU))["uri"]
    with pytest.raises(InvalidPayload):
        new_capture(app, theirs, "bambu.modeler.status")


def test_a_status_capture_completes_and_sets_the_modeler(app, blobs):
    uri = new_modeler(app)
    capture = parse_upload(app, blobs, uri, "bambu.modeler.status", BAMBU.read_bytes())
    assert capture["status"] == "complete" and capture["error"] is None and capture["_parsed"]["size"] > 0
    assert capture["user"] == "/users/1/"
    body = modeler(app, uri)
    assert body["status"] == "idle" and body["current_build"] is None and body["latest_upload"]


def test_a_job_list_creates_builds_and_advances_the_watermark_once(app, blobs):
    uri = new_modeler(app, type=ULTIMAKER_S5, ip_address="10.183.1.166")
    first = parse_upload(app, blobs, uri, "ultimaker.modeler.log", ULTIMAKER.read_bytes())
    assert first["status"] == "complete"
    body = modeler(app, uri)
    assert body["status"] == "idle" and body["watermark"] == "2018-12-10T08:28:04.108Z"
    position = app.recorder.max_notification_id()
    second = parse_upload(app, blobs, uri, "ultimaker.modeler.log", ULTIMAKER.read_bytes())
    assert second["status"] == "complete"
    later = [e for e in app.feed(position + 1, 500)["events"]]
    assert {e["resource"] for e in later} == {"capture", "modeler"}  # nothing about builds: none new, none changed
    assert not any("ModelerWatermarkAdvanced" in e["names"] for e in later)
    built = [e for e in app.feed(1, 500)["events"] if e["resource"] == "build"]
    assert len(built) == 1 and built[0]["names"] == ["BuildCreated"]
    fields = built[0]["fields"]
    assert fields["name"] == "UM3_dragon" and fields["status"] == "backlogged" and fields["modeler"] == uri
    assert fields["estimated_time"] == 14145 and fields["run"] is None


def test_a_running_job_becomes_the_current_build_and_moves_with_the_report(app, blobs):
    import json
    uri = new_modeler(app, type=ULTIMAKER_S5, ip_address="10.183.1.166")
    cluster = json.loads(ULTIMAKER.read_bytes())
    cluster["data"][0]["print_jobs"][0].update(status="printing", started=True)
    cluster["data"][0]["printers"][1]["status"] = "printing"
    parse_upload(app, blobs, uri, "ultimaker.modeler.log", json.dumps(cluster).encode())
    body = modeler(app, uri)
    assert body["status"] == "printing" and body["current_build"].startswith("/build/")
    build = app.repository.get(uuid_of_path(body["current_build"]))
    assert build.fields["status"] == "processing"
    cluster["data"][0]["print_jobs"][0]["status"] = "finished"
    cluster["data"][0]["printers"][1]["status"] = "idle"
    parse_upload(app, blobs, uri, "ultimaker.modeler.log", json.dumps(cluster).encode())
    body = modeler(app, uri)
    assert body["status"] == "idle" and body["current_build"] is None
    assert app.repository.get(build.id).fields["status"] == "complete"
    names = [n for e in app.feed(1, 500)["events"] if e["uuid"] == str(build.id) for n in e["names"]]
    assert "BuildStatusChanged" in names and "BuildCompleted" in names


def uuid_of_path(path):
    from uuid import UUID
    return UUID(uuid_of(path))


@pytest.mark.parametrize("content, reason", [
    (b'{"print": {"gcode_state": "IDLE", "bed_temper": 2', "cut short"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "UTF-8"),
    (b'{"data": []}', "'print'"),
])
def test_bad_content_ends_failed_with_the_reason_and_the_modeler_keeps_its_state(app, blobs, content, reason):
    uri = new_modeler(app)
    capture = parse_upload(app, blobs, uri, "bambu.modeler.status", content)
    assert capture["status"] == "failed" and reason in capture["error"]
    assert "_parsed" not in capture
    assert modeler(app, uri)["status"] == "unknown"  # data arrived (latest_upload), but told no state


def test_a_parser_crash_fails_the_capture_not_the_pipeline(app, blobs, monkeypatch):
    def broken(data, device):
        raise KeyError("boom")
    monkeypatch.setattr(parsers, "parser_for", lambda name: broken)
    capture = parse_upload(app, blobs, new_modeler(app), "bambu.modeler.status", BAMBU.read_bytes())
    assert capture["status"] == "failed" and "KeyError" in capture["error"]


def test_a_kind_without_a_parser_fails_saying_so(app, blobs):
    capture = parse_upload(app, blobs, new_modeler(app), "hp.modeler.status", b'{"any": 1}')
    assert capture["status"] == "failed" and "no parser" in capture["error"]


def test_the_same_bytes_again_change_nothing_and_other_bytes_are_refused(app, blobs):
    capture = parse_upload(app, blobs, new_modeler(app), "formlabs.modeler.status", FORMLABS.read_bytes())
    blob = blobs.receive(io.BytesIO(FORMLABS.read_bytes()).read, float("inf"))
    position = app.recorder.max_notification_id()
    app.receive(capture["uuid"], blob.as_dict(), "retried-put")
    assert [e for e in app.feed(position + 1, 50)["events"]] == []
    other = blobs.receive(io.BytesIO(BAMBU.read_bytes()).read, float("inf"))
    with pytest.raises(Conflict):
        app.receive(capture["uuid"], other.as_dict(), "other-bytes")


def test_a_repeated_parse_job_records_nothing(app, blobs):
    capture = parse_upload(app, blobs, new_modeler(app), "formlabs.modeler.status", FORMLABS.read_bytes())
    position = app.recorder.max_notification_id()
    Pipeline(app, blobs, lambda r: r).process(capture["uuid"], capture["_content"]["sha256"])
    assert app.feed(position + 1, 50)["events"] == []


def test_older_status_reports_do_not_overwrite_newer_ones(app):
    uri = new_modeler(app)
    aggregate = app.load("modeler", uuid_of(uri), command_ctx())
    aggregate.capture_received("2026-01-02T00:00:00+00:00", None)
    aggregate.report("printing", None, None, "2026-01-02T00:00:00+00:00", None)
    aggregate.report("idle", None, None, "2026-01-01T00:00:00+00:00", None)
    assert aggregate.fields["status"] == "printing"


def test_a_build_named_after_a_run_is_linked_to_it_once(app, blobs):
    """A4: the platform sets build.run when the build's name is the uuid of a run of the bureau (production is
    asked; here a stand-in answers). The job is the cited fixture's, renamed the way a job sent from Stratum is."""
    import json
    run_uuid = str(uuid4())
    asked = []

    def find_run(uuid, bureau):
        asked.append((uuid, bureau))
        return f"/run/{uuid}/" if uuid == run_uuid and bureau == BUREAU else None

    uri = new_modeler(app, type=ULTIMAKER_S5, ip_address="10.183.1.166")
    cluster = json.loads(ULTIMAKER.read_bytes())
    cluster["data"][0]["print_jobs"][0]["name"] = run_uuid
    data = json.dumps(cluster).encode()
    created = new_capture(app, uri, "ultimaker.modeler.log")
    uuid = uuid_of(created["uri"])
    blob = blobs.receive(io.BytesIO(data).read, float("inf"))
    app.receive(uuid, blob.as_dict(), f"upload:{uuid}")
    Pipeline(app, blobs, lambda r: r, find_run).process(uuid, blob.sha256)
    assert asked == [(run_uuid, BUREAU)]
    [build] = [e for e in app.feed(1, 500)["events"] if e["resource"] == "build"]
    assert build["fields"]["run"] == f"/run/{run_uuid}/" and build["fields"]["name"] == run_uuid


def test_an_unknown_or_unanswered_run_links_nothing(app, blobs):
    import json

    def down(uuid, bureau):
        raise RuntimeError("production is not answering")

    uri = new_modeler(app, type=ULTIMAKER_S5, ip_address="10.183.1.166")
    cluster = json.loads(ULTIMAKER.read_bytes())
    cluster["data"][0]["print_jobs"][0]["name"] = str(uuid4())
    created = new_capture(app, uri, "ultimaker.modeler.log")
    uuid = uuid_of(created["uri"])
    blob = blobs.receive(io.BytesIO(json.dumps(cluster).encode()).read, float("inf"))
    app.receive(uuid, blob.as_dict(), f"upload:{uuid}")
    Pipeline(app, blobs, lambda r: r, down).process(uuid, blob.sha256)
    assert app.read("capture", uuid, command_ctx())["status"] == "complete"
    [build] = [e for e in app.feed(1, 500)["events"] if e["resource"] == "build"]
    assert build["fields"]["run"] is None
    # the next report of the same job, with production answering, links it (once: BuildLinkedToRun)
    run = f"/run/{cluster['data'][0]['print_jobs'][0]['name']}/"
    again = new_capture(app, uri, "ultimaker.modeler.log")
    again_uuid = uuid_of(again["uri"])
    app.receive(again_uuid, blob.as_dict(), f"upload:{again_uuid}")
    Pipeline(app, blobs, lambda r: r, lambda uuid, bureau: f"/run/{uuid}/").process(again_uuid, blob.sha256)
    linked = [e for e in app.feed(1, 500)["events"] if e["resource"] == "build"][1:]
    assert [e["names"] for e in linked] == [["BuildUpdated", "BuildLinkedToRun"]]
    assert linked[0]["fields"] == {"run": run}


def test_a_capture_of_a_deleted_modeler_still_parses_but_changes_no_modeler(app, blobs):
    uri = new_modeler(app, type=ULTIMAKER_S5, ip_address="10.183.1.166")
    created = new_capture(app, uri, "ultimaker.modeler.log")
    uuid = uuid_of(created["uri"])
    app.delete("modeler", uuid_of(uri), command_ctx())
    blob = blobs.receive(io.BytesIO(ULTIMAKER.read_bytes()).read, float("inf"))
    position = app.recorder.max_notification_id()
    app.receive(uuid, blob.as_dict(), f"upload:{uuid}")
    Pipeline(app, blobs, lambda r: r).process(uuid, blob.sha256)
    assert app.read("capture", uuid, command_ctx())["status"] == "complete"
    assert {e["resource"] for e in app.feed(position + 1, 500)["events"]} == {"capture"}
