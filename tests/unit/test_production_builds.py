"""F6 step 5 in production (services.production.builds): the mapping from a build's status to its run's, and the
follower of the capture feed moving a linked run through the run's own state machine, with the machine's times in
the run's actuals, never twice and never backwards, idempotent per feed position."""
import uuid as uuidlib

import pytest

from services.production import builds
from tests.kit.apps import command_ctx
from tests.unit.test_production_planning import apps, confirm, follow_all, line_item, uuid  # noqa: F401
from tests.unit.test_production_runs import Floor

START = "2026-11-30T08:00:00+00:00"
END = "2026-11-30T09:30:00+00:00"


@pytest.mark.parametrize("build_status, run_status", [
    ("preheat", "in-progress"), ("processing", "in-progress"), ("paused", "paused"), ("suspended", "paused"),
    ("complete", "complete"), ("failed", "error"), ("machine_error", "error"), ("user_abort", "error"),
    ("error", "error"), ("cancelled", "error"), ("part_exceeds_boundaries", "error"),
    ("new", None), ("backlogged", None), ("waiting_for_resolution", None), ("unknown", None), (None, None)])
def test_the_mapping_rule(build_status, run_status):
    assert builds.run_target(build_status) == run_status


def test_moves_follow_the_run_table_and_walk_through_in_progress():
    assert builds.moves("queued", "in-progress") == ["in-progress"]
    assert builds.moves("queued-work-ready", "complete") == ["in-progress", "complete"]
    assert builds.moves("queued", "paused") == ["in-progress", "paused"]
    assert builds.moves("queued", "error") == ["error"]
    assert builds.moves("paused", "in-progress") == ["in-progress"]
    assert builds.moves("in-progress", "in-progress") == []
    assert builds.moves("complete", "in-progress") is None and builds.moves("cancelled", "complete") is None
    assert builds.moves("calculating", "in-progress") is None  # force-only edges are not the machine's to take


class Capture:
    """The capture service's feed, as production pulls it: public build events at increasing positions."""

    def __init__(self, production):
        self.production = production
        self.events = []

    def build(self, kind, build_id, at, **fields):
        self.events.append({"position": len(self.events) + 1, "application": "capture", "resource": "build",
                            "uuid": str(build_id), "kind": kind, "fields": fields, "timestamp": at,
                            "version": 1, "event": "capture/build/Updated", "user": None, "names": []})

    def follow(self, start=None):
        position = self.production.position("capture") if start is None else start
        events = [e for e in self.events if e["position"] > position]
        last = events[-1]["position"] if events else None
        return self.production.apply_capture_feed({"application": "capture", "events": events, "last": last,
                                                   "complete": True})


@pytest.fixture
def floor(apps):  # noqa: F811
    return Floor(*apps)


def run_actuals(floor, run):
    from services.production.runs import RunActuals
    return floor.production.read("run-actuals", str(RunActuals.id_for(uuidlib.UUID(uuid(run)))), command_ctx())


def test_a_linked_build_moves_its_run_with_the_machines_times(floor):
    run = floor.run(0, printer=floor.printer)
    capture, build = Capture(floor.production), uuidlib.uuid4()
    capture.build("created", build, "2026-11-30T07:59:00+00:00", name=uuid(run), status="new", run=None,
                  start_time=None, end_time=None, layers=120, current_layer=0)
    capture.follow()
    assert floor.status(run) == "queued"  # not linked, not started
    capture.build("updated", build, "2026-11-30T08:00:05+00:00", run=run)
    capture.build("updated", build, "2026-11-30T08:00:05+00:00", start_time=START)
    capture.build("updated", build, "2026-11-30T08:00:05+00:00", status="preheat")
    capture.follow()
    assert floor.status(run) == "in-progress"
    assert {p["status"] for p in floor.prints(0)} == {"in-progress"}
    assert {p["first_run_start"] for p in floor.pieces()} == {START}
    opened = run_actuals(floor, run)
    assert opened["start_in_progress_time"] == START and opened["end_in_progress_time"] is None
    capture.build("updated", build, "2026-11-30T08:10:00+00:00", status="processing", current_layer=1)
    capture.build("updated", build, "2026-11-30T08:40:00+00:00", status="paused")
    capture.follow()
    assert floor.status(run) == "paused"
    capture.build("updated", build, "2026-11-30T08:45:00+00:00", status="processing")
    capture.build("updated", build, "2026-11-30T09:00:00+00:00", current_layer=60)
    capture.follow()
    assert floor.status(run) == "in-progress"
    capture.build("updated", build, END, status="complete", current_layer=120)
    capture.follow()
    assert floor.status(run) == "complete"
    closed = run_actuals(floor, run)
    assert (closed["start_in_progress_time"], closed["end_in_progress_time"]) == (START, END)
    assert closed["duration"] == 5400.0 and closed["workstation_cost"] == 54.0  # 1.5 h × 36 per hour
    assert {p["first_run_end"] for p in floor.pieces()} == {END}
    # a stale report parsed late (the build "processing" again) and a repeat never move it back, or twice
    version = floor.production.repository.get(uuidlib.UUID(uuid(run))).version
    capture.build("updated", build, "2026-11-30T09:31:00+00:00", status="processing")
    capture.build("updated", build, "2026-11-30T09:32:00+00:00", status="complete")
    capture.follow()
    assert floor.status(run) == "complete"
    assert floor.production.repository.get(uuidlib.UUID(uuid(run))).version == version


def test_the_same_feed_twice_changes_nothing(floor):
    run = floor.run(0, printer=floor.printer)
    capture, build = Capture(floor.production), uuidlib.uuid4()
    capture.build("created", build, START, name=uuid(run), status="processing", run=run, start_time=START,
                  end_time=None, layers=10, current_layer=1)
    capture.follow()
    reached = floor.production.position("capture")
    latest = floor.production.latest_position()
    assert floor.status(run) == "in-progress"
    assert capture.follow(start=0) == reached  # a batch at or below the position: nothing recorded
    assert floor.production.latest_position() == latest


def test_a_failed_build_puts_its_run_in_error_and_a_retry_starts_it_again(floor):
    run = floor.run(0, printer=floor.printer)
    capture, first, second = Capture(floor.production), uuidlib.uuid4(), uuidlib.uuid4()
    capture.build("created", first, START, name=uuid(run), status="processing", run=run, start_time=START)
    capture.build("updated", first, "2026-11-30T08:20:00+00:00", status="failed")
    capture.follow()
    assert floor.status(run) == "error"
    assert {p["status"] for p in floor.pieces()} == {"error"}
    capture.build("updated", first, "2026-11-30T08:21:00+00:00", status="processing")  # late: the build ended
    capture.follow()
    assert floor.status(run) == "error"
    capture.build("created", second, "2026-11-30T09:00:00+00:00", name=uuid(run), status="preheat", run=run,
                  start_time="2026-11-30T09:00:00+00:00")
    capture.follow()
    assert floor.status(run) == "in-progress"
    assert run_actuals(floor, run)["start_in_progress_time"] == START  # the actuals keep the first start


def test_a_build_first_heard_of_finished_walks_its_run_through_in_progress(floor):
    run = floor.run(0, printer=floor.printer)
    capture = Capture(floor.production)
    capture.build("created", uuidlib.uuid4(), END, name=uuid(run), status="complete", run=run, start_time=START,
                  end_time=END)
    capture.follow()
    assert floor.status(run) == "complete"
    closed = run_actuals(floor, run)
    assert (closed["start_in_progress_time"], closed["end_in_progress_time"]) == (START, END)


def test_a_refused_move_is_recorded_not_raised_and_tried_again(floor):
    busy = floor.run(0, printer=floor.printer)  # the printer prints one build at a time
    floor.move(busy, "in-progress")
    other = Floor.__new__(Floor)
    other.orders, other.production = floor.orders, floor.production
    other.item = line_item(floor.orders, 1, floor.workflow)
    confirm(floor.orders, other.item)
    follow_all(floor.orders, floor.production)
    waiting = other.run(0, printer=floor.printer)
    capture, build = Capture(floor.production), uuidlib.uuid4()
    capture.build("created", build, START, name=uuid(waiting), status="processing", run=waiting, start_time=START)
    capture.follow()
    assert other.status(waiting) == "queued"
    follow = floor.production.repository.get(builds.BuildFollow.id_for(f"/build/{build}/"))
    assert follow.applied is None and "busy printing" in follow.refused
    assert {p["status"] for p in other.prints(0)} == {"queued"}  # nothing of the refused move was kept
    floor.move(busy, "complete")
    capture.build("updated", build, "2026-11-30T08:05:00+00:00", current_layer=2)  # the next report retries
    capture.follow()
    assert other.status(waiting) == "in-progress"


def test_an_unlinked_build_or_another_resource_moves_nothing(floor):
    run = floor.run(0, printer=floor.printer)
    capture = Capture(floor.production)
    capture.build("created", uuidlib.uuid4(), START, name="benchy", status="processing", run=None)
    capture.events.append({"position": 2, "application": "capture", "resource": "modeler", "uuid": str(uuidlib.uuid4()),
                           "kind": "updated", "fields": {"status": "printing"}, "timestamp": START})
    assert capture.follow() == 2
    assert floor.status(run) == "queued"
