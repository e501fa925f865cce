"""/run-queue/, /schedule_runs/, /downtime/, /work-schedule/ and /labor/ on production's store (production.md §2.4,
§2.8, §4.7–4.9): the estimated dates the scheduler writes on runs and printers, the queue moves, and the refusals.

The dates are worked out by hand. The printer is down from an hour ago until Monday 2027-01-04 07:00 UTC, so every
date is fixed whatever day the test runs; its type works Monday–Friday 08:00–18:00 at utc_offset +1 (07:00–17:00
UTC) with 30 minutes before and 30 after each print; the sander works non-stop, one run at a time, for its type's
3600 s plus 600 s of labor to start (1 h 10 min).
"""
from datetime import datetime, timedelta, timezone

import pytest

from services.production import capacity, queue, schedule_runs
from tests.kit.apps import command_ctx
from tests.unit.test_production_planning import apps, confirm, follow_all, line_item, uuid  # noqa: F401
from tests.unit.test_production_runs import Floor
from tests.unit.test_production_workstations import OTHER_BUREAU, create, error_of

WEEKDAYS = {day: {"start": "08:00", "finish": "18:00"} for day in ("monday", "tuesday", "wednesday", "thursday",
                                                                     "friday")}


def jan(day, hour, minute=0):
    return datetime(2027, 1, day, hour, minute, tzinfo=timezone.utc).isoformat()


class Scheduled(Floor):
    def __init__(self, orders, production):
        super().__init__(orders, production)
        production.update("printer-type", uuid(self.printer_type), {"time_before_print": 1800,
                                                                     "time_after_print": 1800}, command_ctx())
        create(production, "work-schedule", {"printer_type": self.printer_type, "type": "calendar",
                                             "week": WEEKDAYS, "utc_offset": 1})
        create(production, "labor", {"post_processor_type": self.sander_type, "type": "labor_to_start",
                                     "duration": 600})
        an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
        self.downtime = create(production, "downtime", {"description": "Maintenance", "printer": self.printer,
                                                        "start": an_hour_ago, "finish": jan(4, 7)})
        first, second = self.prints(0), self.prints(1)
        self.r1, self.r2 = (self.one_run(p, printer=self.printer) for p in first)
        self.s1, self.s2 = (self.one_run(p, post_processor=self.sander) for p in second)

    def one_run(self, each, **fields):
        return self.production.create("run", {"prints": [each["uri"]], **fields}, command_ctx())["uri"]

    def schedule(self, run, **fields):
        return self.production.create("schedule_runs", {"run": run, **fields}, command_ctx())["uri"]

    def requeue(self, run, **fields):
        return self.production.create("run-queue", {"run": run, **fields}, command_ctx())

    def dates(self, run):
        fields = self.production.read("run", uuid(run), command_ctx())
        return fields["estimated_start"], fields["estimated_end"]

    def read(self, path):
        return self.production.read(path.split("/")[1], uuid(path), command_ctx())


@pytest.fixture
def shop(apps):  # noqa: F811
    return Scheduled(*apps)


def test_a_schedule_honours_the_downtime_the_weekend_calendar_and_the_previous_steps(shop):
    shop.schedule(shop.r1, estimates={"time": {"print": 4 * 3600}, "run_type": "printing"})
    shop.schedule(shop.r2, estimates={"time": 6 * 3600})
    # r1: 4 h + 1 h of buffers, from the end of the downtime: Monday 07:00–12:00
    assert shop.dates(shop.r1) == (jan(4, 7), jan(4, 12))
    # r2: 6 h + 1 h: Monday 12:00–17:00 (5 h), the night off, Tuesday 07:00–09:00 (2 h)
    assert shop.dates(shop.r2) == (jan(4, 12), jan(5, 9))
    # the sander's runs wait for their pieces' printing runs: 1 h 10 min each
    assert shop.dates(shop.s1) == (jan(4, 12), jan(4, 13, 10))
    assert shop.dates(shop.s2) == (jan(5, 9), jan(5, 10, 10))
    printer = shop.read(shop.printer)
    assert printer["available_at"] == jan(5, 9)
    assert [shop.read(r)["workstation_queue_position"] for r in (shop.r1, shop.r2, shop.s1, shop.s2)] == [0, 1, 0, 1]
    # a downtime on the sander in the middle of s1 stretches it at once: 12:00–12:30, down, 13:00–13:40
    create(shop.production, "downtime", {"description": "Belt change", "post_processor": shop.sander,
                                         "start": jan(4, 12, 30), "finish": jan(4, 13)})
    assert shop.dates(shop.s1) == (jan(4, 12), jan(4, 13, 40))
    assert shop.dates(shop.s2) == (jan(5, 9), jan(5, 10, 10))
    belt = shop.production.referencing("downtime", "post_processor", shop.sander, {"platform_admin": True})[0]["uri"]
    # moved to Tuesday 09:30–10:00: s1 is whole again; s2 (09:00) works 30 min, waits, and ends at 10:40
    shop.production.update("downtime", uuid(belt), {"start": jan(5, 9, 30), "finish": jan(5, 10)}, command_ctx())
    assert shop.dates(shop.s1) == (jan(4, 12), jan(4, 13, 10))
    assert shop.dates(shop.s2) == (jan(5, 9), jan(5, 10, 40))
    shop.production.delete("downtime", uuid(belt), command_ctx())
    assert shop.dates(shop.s2) == (jan(5, 9), jan(5, 10, 10))


def test_the_queue_moves_and_the_schedule_follows(shop):
    shop.schedule(shop.r1, estimates={"time": 4 * 3600})
    shop.schedule(shop.r2, estimates={"time": 6 * 3600})
    shop.requeue(shop.r2)  # to the front
    assert shop.read(shop.printer)["queue"] == [shop.r2, shop.r1]
    # r2 (7 h) Monday 07:00–14:00; r1 (5 h) Monday 14:00–17:00 and Tuesday 07:00–09:00
    assert shop.dates(shop.r2) == (jan(4, 7), jan(4, 14))
    assert shop.dates(shop.r1) == (jan(4, 14), jan(5, 9))
    # s1 waits for r1; s2, behind s1 in the sander's queue, follows it
    assert shop.dates(shop.s1) == (jan(5, 9), jan(5, 10, 10))
    assert shop.dates(shop.s2) == (jan(5, 10, 10), jan(5, 11, 20))
    assert [shop.read(r)["workstation_queue_position"] for r in (shop.r2, shop.r1)] == [0, 1]
    shop.requeue(shop.s2, relative_to=shop.s1)  # before it
    assert shop.read(shop.sander)["queue"] == [shop.s2, shop.s1]
    assert shop.dates(shop.s2) == (jan(4, 14), jan(4, 15, 10))
    assert shop.dates(shop.s1) == (jan(5, 9), jan(5, 10, 10))
    shop.requeue(shop.s2, relative_to=shop.s1, position="after")
    assert shop.read(shop.sander)["queue"] == [shop.s1, shop.s2]


def test_what_the_queue_and_the_schedule_refuse(shop):
    assert error_of(lambda: shop.requeue(shop.r1, relative_to=shop.r2, position="beside")).field == "position"
    assert error_of(lambda: shop.requeue(shop.r1, relative_to=shop.r1)).title == queue.BAD_POSITION
    assert error_of(lambda: shop.requeue(shop.r1, relative_to=shop.s1)).title == queue.OTHER_QUEUE
    assert error_of(lambda: shop.production.create("run-queue", {"run": shop.r1}, command_ctx(
        bureau=OTHER_BUREAU))).title == queue.RUN_NOT_FOUND
    shop.production.update("run", uuid(shop.r2), {"status": "calculating"}, command_ctx())
    assert error_of(lambda: shop.schedule(shop.r2)).title == schedule_runs.CALCULATING
    assert error_of(lambda: shop.requeue(shop.r1)).title == queue.NOT_NOW  # its queue is being estimated
    shop.production.update("run", uuid(shop.r2), {"status": "cancelled"}, command_ctx())
    assert error_of(lambda: shop.schedule(shop.r1, estimates={"time": "soon"})).field == "estimates"
    assert error_of(lambda: shop.schedule(shop.r1, estimates={"time": {"print": 1e308}})).field == "estimates"
    assert error_of(lambda: shop.schedule(shop.r1, estimates={"run_type": "shipping"})).field == "estimates"
    shop.production.update("run", uuid(shop.r1), {"status": "in-progress"}, command_ctx())
    assert error_of(lambda: shop.requeue(shop.r1)).title == queue.ALREADY_RUNNING["printer"]
    # nothing moved: the queue is what the runs made it
    assert shop.read(shop.printer)["queue"] == [] and shop.read(shop.printer)["in_progress"] == [shop.r1]


def test_a_run_in_progress_keeps_its_real_start(shop):
    shop.production.update("run", uuid(shop.r1), {"status": "in-progress"}, command_ctx())
    shop.schedule(shop.r2, estimates={"time": 6 * 3600})
    start, end = shop.dates(shop.r1)
    # started during the downtime (by force of hand): its start is the real one, its 1 h of buffers is worked
    # after the downtime, Monday 07:00–08:00; r2 (7 h) follows
    assert start < jan(4, 7) and end == jan(4, 8)
    assert shop.dates(shop.r2) == (jan(4, 8), jan(4, 15))


def test_the_inputs_are_checked(shop):
    def refused(resource, payload):
        return error_of(lambda: shop.production.create(resource, payload, command_ctx()))

    assert refused("downtime", {"description": "x", "printer": shop.printer, "post_processor": shop.sander,
                                "start": jan(4, 7), "finish": jan(4, 8)}).title == capacity.ONE_STATION
    assert refused("downtime", {"description": "x", "printer": shop.printer, "start": jan(4, 8),
                                "finish": jan(4, 7)}).title == capacity.FINISH_FIRST
    assert refused("work-schedule", {"printer_type": shop.printer_type, "type": "non_stop"}).title == \
        capacity.SCHEDULE_TAKEN.format("printer_type")
    assert refused("work-schedule", {"post_processor_type": shop.sander_type, "type": "calendar",
                                     "week": {"someday": {}}}).field == "week"
    assert refused("labor", {"post_processor_type": shop.sander_type, "type": "labor_to_start",
                             "duration": 60}).title == capacity.LABOR_TAKEN.format("post_processor_type")
    before_start = {"finish": "2020-01-01T00:00:00+00:00"}
    assert error_of(lambda: shop.production.update("downtime", uuid(shop.downtime), before_start,
                                                   command_ctx())).title == capacity.FINISH_FIRST
    foreign = error_of(lambda: shop.production.create("downtime", {
        "description": "x", "printer": shop.printer, "start": jan(4, 7), "finish": jan(4, 8)},
        command_ctx(bureau=OTHER_BUREAU)))
    assert foreign.field == "printer"


def test_a_new_run_joins_the_queue_by_priority(shop):
    shop.item = line_item(shop.orders, 2, shop.workflow)  # another line item's prints, on the same printer
    confirm(shop.orders, shop.item)
    follow_all(shop.orders, shop.production)
    urgent = shop.one_run(shop.prints(0)[0], printer=shop.printer, priority=90)
    late = shop.one_run(shop.prints(0)[1], printer=shop.printer, priority=10)
    assert shop.read(shop.printer)["queue"] == [urgent, shop.r1, shop.r2, late]
