"""Device capture over HTTP (capture-and-platform.md A1, A3, A4, F6), on SQLite and PostgreSQL: the machine catalogue
every bureau sees, a modeler of a catalogue type, a capture's raw file uploaded to its content_upload link and parsed
in the background, the parsed content served, the modeler's status following, builds created once however often the
same job list is uploaded, and bad content ending `failed` with its reason."""
import json
import uuid

import pytest
import requests

from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant
from tests.unit.test_capture_parsers import BAMBU, FORMLABS, HAAS, ULTIMAKER

pytestmark = pytest.mark.e2e


def modeler_type(api, name):
    """The catalogue entry called `name` (written by the capture service when it starts: the read side may take a
    moment to show it)."""
    listed = eventually(lambda: api.get("/modeler-type/", params={"filter[name]": name}).json()["resources"])
    assert len(listed) == 1, listed
    return listed[0]


def new_modeler(api, type_name, **fields):
    body = {"name": f"machine-{uuid.uuid4().hex[:6]}", "type": modeler_type(api, type_name)["uri"], **fields}
    response = api.post("/modeler/", json=body)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def upload_capture(api, modeler, kind, data):
    response = api.post("/capture/", json={"modeler": modeler, "capture_type_name": kind})
    assert response.status_code == 201, response.text
    uri = response.headers["Location"]
    body = api.get(uri).json()
    assert body["status"] == "new" and body["content_upload"] == response.headers["X-Upload-Location"]
    put = requests.put(body["content_upload"], data=data, headers={"Content-Type": "application/octet-stream"},
                       timeout=30)
    assert put.status_code == 204, put.text
    return settled(api, uri)


def settled(api, uri):
    def check():
        body = api.get(uri).json()
        return body if body["status"] in ("complete", "failed") else None
    return eventually(check, timeout=60, interval=0.1)


def test_the_machine_catalogue_is_every_bureaus(admin):
    modeler_type(admin, "VF-2")  # the last entry: the whole catalogue is shown
    types = admin.get("/modeler-type/", params={"page[limit]": 100}).json()
    names = {t["name"] for t in types["resources"]}
    assert {"X1 Carbon", "Ultimaker S5", "Form 3+", "VF-2", "EOS M 290", "HP Jet Fusion 5200"} <= names
    s5 = modeler_type(admin, "Ultimaker S5")
    assert s5["manufacturer"] == "UltiMaker" and s5["technology"] == "FDM"
    assert s5["capture_types"] == [{"capture_type": "ultimaker.modeler.log"}]
    newcomer = make_tenant(admin, login, "capture").standard  # a bureau made after the catalogue was written
    assert modeler_type(newcomer, "Ultimaker S5")["uri"] == s5["uri"]
    assert newcomer.get(s5["uri"]).status_code == 200
    assert admin.post("/modeler-type/", json={"name": "Mine"}).status_code == 405
    kinds = admin.get("/capture-type/", params={"filter[modeler_type]": s5["uri"]}).json()["resources"]
    assert [(k["capture_type"], k["interval"]) for k in kinds] == [("ultimaker.modeler.log", 300)]


def test_modeler_ip_address_rule(admin):
    kind = modeler_type(admin, "X1 Carbon")["uri"]
    bad = admin.post("/modeler/", json={"name": "m", "type": kind, "ip_address": "300.1.1.1"})
    assert bad.status_code == 400
    error = bad.json()["errors"][0]
    assert error["field"] == "ip_address" and error["title"].startswith("This means the IP address you entered is "
                                                                        "invalid")
    uri = new_modeler(admin, "X1 Carbon", ip_address="fe80::1")
    assert admin.put(uri, json={"ip_address": "nope"}).status_code == 400
    body = admin.get(uri).json()
    assert body["ip_address"] == "fe80::1" and body["status"] == "not_connected" and body["connected"] is True


def test_status_capture_parsed_and_the_modeler_follows(admin):
    modeler = new_modeler(admin, "Form 3+", ip_address="192.168.1.14")
    capture = upload_capture(admin, modeler, "formlabs.modeler.status", FORMLABS.read_bytes())
    assert capture["status"] == "complete" and capture["error"] is None, capture
    assert capture["modeler"] == modeler and capture["user"]
    raw = requests.get(capture["content_download"], timeout=30)
    assert raw.status_code == 200 and raw.content == FORMLABS.read_bytes()
    parsed = requests.get(capture["content_parsed_download"], timeout=30).json()
    assert parsed["format"] == "formlabs.local_api.device" and parsed["id"] == "ColdKoala"
    assert parsed["product_name"] == "Form 3+" and parsed["machine"]["state"] == "printing"
    assert admin.get(capture["uri"] + "parsed/").json() == parsed
    body = eventually(lambda: (b := admin.get(modeler).json())["status"] == "printing" and b)
    assert body["latest_upload"] and body["current_build"] is None and body["error"] is None
    assert admin.put(modeler, json={"connected": False}).status_code == 204
    assert admin.get(modeler).json()["status"] == "offline"  # not connected beats what the machine said
    assert admin.put(modeler, json={"connected": True}).status_code == 204
    assert admin.get(modeler).json()["status"] == "printing"


def test_mtconnect_and_bambu_status_captures(admin):
    mill = new_modeler(admin, "VF-2")
    assert upload_capture(admin, mill, "haas.modeler.status", HAAS.read_bytes())["status"] == "complete"
    assert eventually(lambda: admin.get(mill).json()["status"] == "idle")
    printer = new_modeler(admin, "X1 Carbon")
    capture = upload_capture(admin, printer, "bambu.modeler.status", BAMBU.read_bytes())
    assert capture["status"] == "complete"
    parsed = admin.get(capture["uri"] + "parsed/").json()
    assert parsed["gcode_state"] == "IDLE" and parsed["temperatures"]["chamber_temper"] == 24.0
    assert eventually(lambda: admin.get(printer).json()["status"] == "idle")


def builds_of(api, modeler):
    return api.get("/build/", params={"filter[modeler]": modeler}).json()["resources"]


def test_a_job_list_uploaded_twice_creates_its_builds_once(admin):
    modeler = new_modeler(admin, "Ultimaker S5", ip_address="10.183.1.166")
    first = upload_capture(admin, modeler, "ultimaker.modeler.log", ULTIMAKER.read_bytes())
    assert first["status"] == "complete", first
    [build] = eventually(lambda: builds_of(admin, modeler))
    assert build["name"] == "UM3_dragon" and build["status"] == "backlogged" and build["run"] is None
    assert build["estimated_time"] == 14145 and build["materials"][0]["name"] == "PLA"
    body = eventually(lambda: (b := admin.get(modeler).json())["watermark"] and b)
    assert body["watermark"] == "2018-12-10T08:28:04.108Z" and body["status"] == "idle"
    second = upload_capture(admin, modeler, "ultimaker.modeler.log", ULTIMAKER.read_bytes())
    assert second["status"] == "complete" and second["uri"] != first["uri"]
    assert builds_of(admin, modeler) == [build]
    assert admin.get(modeler).json()["watermark"] == body["watermark"]


def test_a_running_job_is_the_current_build(admin):
    """The cited fixture with its one job (and its printer) moved to "printing", a state Cura's cluster API
    reports (Ultimaker/Cura UM3NetworkPrinting)."""
    cluster = json.loads(ULTIMAKER.read_bytes())
    cluster["data"][0]["print_jobs"][0].update(status="printing", started=True)
    cluster["data"][0]["printers"][1]["status"] = "printing"
    modeler = new_modeler(admin, "Ultimaker S5", ip_address="10.183.1.166")
    upload_capture(admin, modeler, "ultimaker.modeler.log", json.dumps(cluster).encode())
    body = eventually(lambda: (b := admin.get(modeler).json())["current_build"] and b)
    assert body["status"] == "printing"
    assert admin.get(body["current_build"]).json()["status"] == "processing"


@pytest.mark.parametrize("content, reason", [(ULTIMAKER.read_bytes()[:1000], "cut short"),
                                             (b"\x00\x01garbage\xff", "UTF-8"),
                                             (BAMBU.read_bytes(), "'printers' and 'print_jobs'")])
def test_bad_content_ends_failed_with_its_reason(admin, content, reason):
    modeler = new_modeler(admin, "Ultimaker S5")
    capture = upload_capture(admin, modeler, "ultimaker.modeler.log", content)
    assert capture["status"] == "failed" and reason in capture["error"], capture
    assert capture["content_parsed_download"] is None
    missing = admin.get(capture["uri"] + "parsed/")
    assert missing.status_code == 404 and "failed" in missing.json()["errors"][0]["title"]
    assert builds_of(admin, modeler) == []
    assert admin.get("/about/").status_code == 200  # the service is still up


def test_captures_name_their_modeler_and_another_bureaus_is_not_found(admin):
    missing = admin.post("/capture/", json={"capture_type_name": "bambu.modeler.status"})
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "modeler"
    other = make_tenant(admin, login, "capture-other").manager
    mine = new_modeler(make_tenant(admin, login, "capture-mine").manager, "X1 Carbon")
    assert other.get(mine).status_code == 404
    refused = other.post("/capture/", json={"modeler": mine, "capture_type_name": "bambu.modeler.status"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "modeler"
    assert other.put(mine, json={"name": "stolen"}).status_code == 404


def test_a_build_named_after_a_run_is_linked_to_it(system, admin):
    """A4: build.run is set by the platform when the build's name is a run's uuid. The job is the cited fixture's,
    renamed to the run's uuid, the way a job sent from Stratum is named. (Moving the run is production's, later.)"""
    from shared import catalogue, uris
    from tests.kit.payloads import PayloadFactory

    session = admin.get("/sessions/").json()
    ctx = {"user": uris.normalise(session["user"]), "bureau": uris.normalise(session["bureau"])}

    def create_internally(spec, payload):
        with system.rpc() as rpc:
            result = getattr(rpc, spec.service).create(spec.name, payload, dict(ctx, command_id=str(uuid.uuid4())))
        location = admin.base_url + result["uri"]
        eventually(lambda: admin.get(location).status_code == 200 or "GET" not in spec.verbs)
        return location

    run = PayloadFactory(admin, session["bureau"], session["user"], create_internally).create(catalogue.resource("run"))
    run_uuid = uris.uuid_of(uris.normalise(run))
    cluster = json.loads(ULTIMAKER.read_bytes())
    cluster["data"][0]["print_jobs"][0]["name"] = run_uuid
    modeler = new_modeler(admin, "Ultimaker S5", ip_address="10.183.1.166")
    assert upload_capture(admin, modeler, "ultimaker.modeler.log", json.dumps(cluster).encode())["status"] == "complete"
    [build] = eventually(lambda: builds_of(admin, modeler))
    assert build["name"] == run_uuid and build["run"] == run
