"""F6 step 5 over HTTP (capture-and-platform.md F6, production.md §1.1, §2.5), on SQLite and PostgreSQL: a printer
with a modeler; its machine reports, as Bambu Lab `print` status captures (the cited fixture's format, its job named
after the run's uuid the way a job sent from Stratum is named), preheat → printing → finished, and the run goes
in-progress → complete by itself, its actuals carrying the machine's start time; a failed job puts its run in
`error`; the same report again moves nothing."""
import json
from datetime import datetime, timezone

import pytest

from tests.e2e.test_capture_http import builds_of, new_modeler, upload_capture
from tests.e2e.test_production_http import Shop, created, line_item, settled_count
from tests.kit.plugin import eventually
from tests.unit.test_capture_parsers import BAMBU

pytestmark = pytest.mark.e2e
STARTED = 1796025600  # 2026-12-01T08:00:00Z, the printer's gcode_start_time (epoch seconds, as Bambu sends it)


def bambu_report(run_uuid, gcode_state, layer, task_id):
    """The cited push_status report (tests/fixtures/capture/bambu/) of a printer on the job named `run_uuid`."""
    report = json.loads(BAMBU.read_bytes())
    report["print"].update(gcode_state=gcode_state, task_id=task_id, subtask_id=task_id, subtask_name=run_uuid,
                           gcode_file=f"/data/Metadata/{run_uuid}.gcode", gcode_start_time=str(STARTED),
                           layer_num=layer, total_layer_num=120, mc_percent=round(layer * 100 / 120))
    return json.dumps(report).encode()


@pytest.fixture(scope="module")
def printer(admin):
    shop = Shop(admin)
    modeler = new_modeler(admin, "X1 Carbon", serial_number="01S00C123400001")
    assert admin.put(shop.printer, json={"modeler": modeler}).status_code == 204
    return shop, modeler, shop.workflow()


def new_run(admin, shop, workflow):
    item = line_item(admin, 1, workflow)
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    prints = [p["uri"] for p in settled_count(admin, "print", item, 3) if p["process_step_position"] == 0]
    run = created(admin, "/run/", {"prints": prints, "printer": shop.printer})
    return run, run.rstrip("/").rsplit("/", 1)[-1]


def status(admin, uri):
    return admin.get(uri).json()["status"]


def actuals_of(admin, run):
    return admin.get(f"/run-actuals/?filter[run]={run}").json()["resources"]


def test_a_job_the_printer_reports_moves_its_run_in_progress_then_complete(admin, printer):
    shop, modeler, workflow = printer
    run, run_uuid = new_run(admin, shop, workflow)
    assert status(admin, run) == "queued"
    upload_capture(admin, modeler, "bambu.modeler.status", bambu_report(run_uuid, "PREPARE", 0, "3041"))
    eventually(lambda: status(admin, run) == "in-progress", timeout=30)
    [build] = builds_of(admin, modeler)
    assert build["name"] == run_uuid and build["run"] == run and build["status"] == "preheat"
    [opened] = eventually(lambda: actuals_of(admin, run))
    started = datetime.fromtimestamp(STARTED, timezone.utc)
    assert datetime.fromisoformat(opened["start_in_progress_time"]) == started  # the machine's, not the server's
    assert eventually(lambda: run in admin.get(shop.printer).json()["in_progress"])
    for layer in (1, 60):
        upload_capture(admin, modeler, "bambu.modeler.status", bambu_report(run_uuid, "RUNNING", layer, "3041"))
    eventually(lambda: builds_of(admin, modeler)[0]["current_layer"] == 60)
    assert status(admin, run) == "in-progress"
    upload_capture(admin, modeler, "bambu.modeler.status", bambu_report(run_uuid, "FINISH", 120, "3041"))
    eventually(lambda: status(admin, run) == "complete", timeout=30)
    [closed] = eventually(lambda: [a for a in actuals_of(admin, run) if a["end_in_progress_time"]])
    assert datetime.fromisoformat(closed["start_in_progress_time"]) == started
    assert datetime.fromisoformat(closed["end_in_progress_time"]) > started
    assert closed["workstation_cost"] is not None
    assert eventually(lambda: {p["status"] for p in admin.get(f"/print/?filter[run]={run}").json()["resources"]}
                      == {"complete"})
    assert eventually(lambda: admin.get(modeler).json()["status"] == "print_finished")
    # the printer keeps reporting the finished job: nothing moves again
    upload_capture(admin, modeler, "bambu.modeler.status", bambu_report(run_uuid, "FINISH", 120, "3041"))
    upload_capture(admin, modeler, "bambu.modeler.status", bambu_report(run_uuid, "RUNNING", 119, "3041"))
    assert status(admin, run) == "complete" and len(actuals_of(admin, run)) == 1


def test_a_failed_job_puts_its_run_in_error(admin, printer):
    shop, modeler, workflow = printer
    run, run_uuid = new_run(admin, shop, workflow)
    upload_capture(admin, modeler, "bambu.modeler.status", bambu_report(run_uuid, "RUNNING", 3, "3042"))
    eventually(lambda: status(admin, run) == "in-progress", timeout=30)
    upload_capture(admin, modeler, "bambu.modeler.status", bambu_report(run_uuid, "FAILED", 3, "3042"))
    eventually(lambda: status(admin, run) == "error", timeout=30)
    assert eventually(lambda: admin.get(modeler).json()["status"] == "error")
