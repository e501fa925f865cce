"""The live event stream (GET /event-stream/): events arrive as they happen, a reconnect with the last id misses
nothing, and another bureau's events never appear; NDJSON and Server-Sent Events."""
import json
import threading
import uuid

import pytest

from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bureaus(admin):
    return make_tenant(admin, login, "stream-a"), make_tenant(admin, login, "stream-b")


class Reader:
    """Reads a bounded stream (`max_seconds`) in a thread, keeping each parsed row, until the server ends it."""

    def __init__(self, api, sse=False, **params):
        headers = {"Accept": "text/event-stream"} if sse else {}
        self.response = api.get("/event-stream/", params=params, headers=headers, stream=True, timeout=30)
        assert self.response.status_code == 200, self.response.text
        self.sse = sse
        self.rows = []
        self.ids = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if self.sse:
                    if raw.startswith("id: "):
                        self.ids.append(int(raw[4:]))
                    elif raw.startswith("data: "):
                        self.rows.append(json.loads(raw[6:]))
                elif raw.strip():
                    self.rows.append(json.loads(raw))
        finally:
            self.response.close()

    def references(self):
        return {row["reference"] for row in self.rows}

    def finish(self):
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def new_order(api):
    response = api.post("/order/", json={"name": f"streamed-{uuid.uuid4().hex[:6]}"})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def test_events_arrive_live_and_a_reconnect_misses_nothing(bureaus):
    mine, theirs = bureaus
    reader = Reader(mine.manager, max_seconds=6)
    first = new_order(mine.manager)
    foreign = new_order(theirs.manager)
    eventually(lambda: first in reader.references())  # live: long before the stream ends
    reader.finish()
    rows = [r for r in reader.rows if r["reference"] == first]
    assert {"status", "name"} <= {r["key"] for r in rows}
    assert all(r["bureau"] == mine.bureau for r in reader.rows)
    last = reader.rows[-1]["id"]
    assert [r["id"] for r in reader.rows] == sorted(r["id"] for r in reader.rows)

    missed = new_order(mine.manager)  # while nobody listens
    resumed = Reader(mine.manager, sse=True, max_seconds=6, after=last)
    later = new_order(mine.manager)
    eventually(lambda: {missed, later} <= resumed.references())
    resumed.finish()
    assert min(resumed.ids) > last and resumed.ids == sorted(resumed.ids)
    assert first not in resumed.references()  # nothing before the resume point comes again
    assert foreign not in reader.references() | resumed.references()  # the other bureau's never appear


def test_last_event_id_header_and_a_bounded_stream(bureaus):
    mine, _ = bureaus
    before = new_order(mine.manager)
    rows = eventually(lambda: mine.manager.get(f"/event/?filter[reference]={before}").json()["resources"])
    start = mine.manager.get("/event-stream/", params={"after": 0, "max_seconds": 1}, timeout=30)
    ids = [json.loads(line)["id"] for line in start.text.splitlines() if line.strip()]
    assert ids == sorted(ids)
    last_of_before = max(i for i in ids)
    after = new_order(mine.manager)
    eventually(lambda: mine.manager.get(f"/event/?filter[reference]={after}").json()["resources"])
    resumed = mine.manager.get("/event-stream/", params={"max_seconds": 1},
                               headers={"Last-Event-ID": str(last_of_before)}, timeout=30)
    found = [json.loads(line) for line in resumed.text.splitlines() if line.strip()]
    assert {r["reference"] for r in found} == {after} and len(rows) > 0


def test_the_stream_needs_a_login_and_a_sane_position(bureaus, system):
    import requests

    assert requests.get(system.base_url + "/event-stream/", timeout=10).status_code == 401
    mine, _ = bureaus
    assert mine.manager.get("/event-stream/?after=-3").status_code == 400
    assert mine.manager.get("/event-stream/?after=soon").status_code == 400


def test_an_announcement_reaches_the_bureaus_users_live_and_no_other_bureau(bureaus):
    """capture-and-platform.md E3: an in-app announcement; the bureau's users see it on their stream as it is posted."""
    mine, theirs = bureaus
    user_stream = Reader(mine.standard, max_seconds=6)
    foreign_stream = Reader(theirs.manager, max_seconds=6)
    posted = mine.manager.post("/bureau-notification/", json={"text": f"Fire drill at 3 ({uuid.uuid4().hex[:6]})"})
    assert posted.status_code == 201, posted.text
    announcement = posted.headers["Location"]
    eventually(lambda: announcement in user_stream.references())
    user_stream.finish()
    foreign_stream.finish()
    assert {r["key"] for r in user_stream.rows if r["reference"] == announcement} >= {"text"}
    assert announcement not in foreign_stream.references()
