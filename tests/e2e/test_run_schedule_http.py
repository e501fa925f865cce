"""Queue and schedule over HTTP (production.md §2.4, §2.8, §4.7, §4.8, F7), on SQLite and PostgreSQL: a printer with
a weekend calendar and a downtime, POST /schedule_runs/, the dates on /run-schedule/ and the printer's available_at,
a POST /run-queue/ and the schedule after it, and the refusals with their texts.

Dates worked out by hand: the printer is down from an hour ago until Monday 2027-01-04 07:00 UTC (so the dates do
not depend on the day the test runs); its type works Monday–Friday 08:00–18:00 at utc_offset +1 (07:00–17:00 UTC),
with 30 min before and 30 min after each print; the sifter works non-stop, its type's 1800 s per run.
"""
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import pytest
import requests

from services.production import queue, schedule_runs
from tests.e2e.test_production_http import Shop, created, error, line_item, settled_count
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e
WEEKDAYS = {day: {"start": "08:00", "finish": "18:00"} for day in ("monday", "tuesday", "wednesday", "thursday",
                                                                     "friday")}


def jan(day, hour, minute=0):
    return datetime(2027, 1, day, hour, minute, tzinfo=timezone.utc)


def when(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@pytest.fixture(scope="module")
def floor(admin):
    shop = Shop(admin)
    assert admin.put(shop.printer_type, json={"time_before_print": 1800, "time_after_print": 1800}).status_code == 204
    created(admin, "/work-schedule/", {"printer_type": shop.printer_type, "type": "calendar", "week": WEEKDAYS,
                                       "utc_offset": 1})
    an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    created(admin, "/downtime/", {"description": "Maintenance", "printer": shop.printer, "start": an_hour_ago,
                                  "finish": jan(4, 7).isoformat()})
    item = line_item(admin, 2, shop.workflow())
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    prints = sorted(settled_count(admin, "print", item, 6), key=lambda p: p["uri"])
    printing = [p["uri"] for p in prints if p["process_step_position"] == 0]
    sifting = {p["piece"]: p["uri"] for p in prints if p["process_step_position"] == 1}
    pieces = [next(p["piece"] for p in prints if p["uri"] == uri) for uri in printing]
    runs = [created(admin, "/run/", {"prints": [uri], "printer": shop.printer}) for uri in printing]
    sifts = [created(admin, "/run/", {"prints": [sifting[piece]], "post_processor": shop.post_processor})
             for piece in pieces]
    return shop, runs, sifts


def row(admin, run):
    found = [r for r in admin.get("/run-schedule/?per_page=500").json()["resources"] if r["uri"] == run]
    return found[0] if found else None


def dates(admin, run):
    found = row(admin, run) or {}
    return when(found.get("estimated_start")), when(found.get("estimated_end"))


def test_schedule_then_requeue(admin, floor):
    shop, (r1, r2), (s1, s2) = floor
    response = admin.post("/schedule_runs/", json={"run": r1, "estimates": {"time": {"print": 4 * 3600}}})
    assert response.status_code in (201, 204), response.text
    assert admin.post("/schedule_runs/", json={"run": r2, "estimates": {"time": 6 * 3600, "run_type": "printing"}}
                      ).status_code in (201, 204)
    # r1 (5 h) Monday 07:00–12:00; r2 (7 h) Monday 12:00–17:00 and Tuesday 07:00–09:00
    eventually(lambda: dates(admin, r2) == (jan(4, 12), jan(5, 9)), timeout=30)
    assert dates(admin, r1) == (jan(4, 7), jan(4, 12))
    # the sifter's runs wait for their printing runs, 30 min each
    assert dates(admin, s1) == (jan(4, 12), jan(4, 12, 30))
    assert dates(admin, s2) == (jan(5, 9), jan(5, 9, 30))
    first = row(admin, r1)
    assert (first["workstation_queue_position"], first["printer"], first["operation"], first["status"]) == (
        0, shop.printer, "printing", "queued")
    assert first["schedule_uuid"] and first["workstation_name"] == admin.get(shop.printer).json()["name"]
    assert when(admin.get(shop.printer).json()["available_at"]) == jan(5, 9)

    assert admin.post("/run-queue/", json={"run": r2}).status_code in (201, 204)  # to the front
    eventually(lambda: dates(admin, r2) == (jan(4, 7), jan(4, 14)), timeout=30)
    assert admin.get(shop.printer).json()["queue"] == [r2, r1]
    assert dates(admin, r1) == (jan(4, 14), jan(5, 9))  # Monday 14:00–17:00 and Tuesday 07:00–09:00
    assert (row(admin, r2)["workstation_queue_position"], row(admin, r1)["workstation_queue_position"]) == (0, 1)
    # the printer's Gantt picture, through its signed link (no session needed): r2 then r1, and the downtime
    link = admin.get(shop.printer).json()["schedule_svg_content"]
    picture = requests.get(link, timeout=30)
    assert picture.status_code == 200 and picture.headers["Content-Type"].startswith("image/svg+xml")
    titles = [t.text for t in ElementTree.fromstring(picture.text).iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith(r2.rstrip("/").rsplit("/", 1)[1][:8]) and "2027-01-04 07:00 – 2027-01-04 14:00" in t
               for t in titles), titles
    assert any(t.startswith("Maintenance") and "2027-01-04 07:00 UTC" in t for t in titles), titles
    assert requests.get(link.replace("signature=", "signature=0"), timeout=30).status_code == 403
    assert admin.post("/run-queue/", json={"run": r2, "relative_to": r1, "position": "after"}).status_code in (
        201, 204)
    eventually(lambda: admin.get(shop.printer).json()["queue"] == [r1, r2], timeout=30)
    eventually(lambda: dates(admin, r1) == (jan(4, 7), jan(4, 12)), timeout=30)


def test_refusals(admin, floor):
    shop, (r1, r2), (s1, s2) = floor
    assert error(admin.post("/run-queue/", json={"run": r1, "relative_to": s1}), 400) == queue.OTHER_QUEUE
    assert admin.post("/run-queue/", json={"run": r1, "position": "beside"}).status_code == 400
    assert error(admin.post("/schedule_runs/", json={"run": r1, "estimates": {"time": "soon"}}), 400) == \
        schedule_runs.BAD_ESTIMATES
    assert admin.put(r1, json={"status": "in-progress"}).status_code == 204
    assert error(admin.post("/run-queue/", json={"run": r1}), 400) == queue.ALREADY_RUNNING["printer"]
    assert admin.get(shop.printer).json()["queue"] == [r2]
