"""The scheduler's arithmetic (production.md §2.8, §4.7, §4.8): queue order, in_progress_max lanes, previous steps'
ends, a downtime and a weekend calendar. Every expected date below is worked out by hand from the calendar:

Week: Monday–Friday 08:00–18:00 local time, utc_offset +1 → 07:00–17:00 UTC; Saturday and Sunday off.
Now: Friday 2026-12-04 16:00 UTC. Downtime on the printer: Monday 2026-12-07 09:00–12:00 UTC.
"""
from datetime import datetime, timedelta, timezone

import pytest

from services.production.calendar import WorkingTime, check_week
from services.production.schedule import Job, Station, plan

HOUR = 3600
WEEKDAYS = {day: {"start": "08:00", "finish": "18:00"} for day in ("monday", "tuesday", "wednesday", "thursday",
                                                                     "friday")}
NOW = datetime(2026, 12, 4, 16, 0, tzinfo=timezone.utc)  # a Friday


def utc(day, hour, minute=0):
    return datetime(2026, 12, day, hour, minute, tzinfo=timezone.utc)


def printer_time():
    return WorkingTime(week=check_week(WEEKDAYS), utc_offset=1.0, downtimes=[(utc(7, 9), utc(7, 12))])


def test_a_weekend_and_a_downtime_stretch_the_runs_of_a_queue():
    printer = Station("printer", lanes=1, working=printer_time(), queue=["r1", "r2"])
    sander = Station("sander", lanes=2, working=WorkingTime(), queue=["p1", "p2"])  # non-stop
    jobs = {"r1": Job("r1", "printer", 5 * HOUR), "r2": Job("r2", "printer", 3 * HOUR),
            "p1": Job("p1", "sander", 2 * HOUR, after=["r1"]), "p2": Job("p2", "sander", 1 * HOUR, after=["r2"])}
    # sander first: its runs wait for the printer's, placed in the same pass
    result = plan([sander, printer], jobs, NOW)
    # r1: Fri 16–17 (1 h), the weekend off, Mon 07–09 (2 h), the downtime 09–12, Mon 12–14 (2 h)
    assert result.runs["r1"] == (utc(4, 16), utc(7, 14))
    # r2 after r1 in the queue: Mon 14–17, the end of Monday's window
    assert result.runs["r2"] == (utc(7, 14), utc(7, 17))
    # the sander (two lanes, non-stop) takes each run once its printing run ends
    assert result.runs["p1"] == (utc(7, 14), utc(7, 16))
    assert result.runs["p2"] == (utc(7, 17), utc(7, 18))
    # the printer is free after Monday's window: Tuesday 07:00 UTC; the sander's first lane at Monday 16:00
    assert result.available_at == {"printer": utc(8, 7), "sander": utc(7, 16)}


def test_queue_order_decides_and_lanes_run_side_by_side():
    printer = Station("printer", lanes=1, working=printer_time(), queue=["r2", "r1"])
    jobs = {"r1": Job("r1", "printer", 5 * HOUR), "r2": Job("r2", "printer", 3 * HOUR)}
    result = plan([printer], jobs, NOW)
    # r2 first: Fri 16–17 (1 h), Mon 07–09 (2 h); r1 then starts after the downtime: Mon 12–17
    assert result.runs == {"r2": (utc(4, 16), utc(7, 9)), "r1": (utc(7, 12), utc(7, 17))}
    double = Station("oven", lanes=2, working=WorkingTime(), queue=["a", "b", "c"])
    jobs = {k: Job(k, "oven", 2 * HOUR) for k in "abc"}
    result = plan([double], jobs, NOW)
    assert result.runs == {"a": (utc(4, 16), utc(4, 18)), "b": (utc(4, 16), utc(4, 18)),
                           "c": (utc(4, 18), utc(4, 20))}


def test_a_run_in_progress_holds_its_lane_from_its_real_start():
    printer = Station("printer", lanes=1, working=printer_time(), running=["now"], queue=["next"])
    jobs = {"now": Job("now", "printer", 8 * HOUR, started=utc(4, 10)), "next": Job("next", "printer", HOUR)}
    result = plan([printer], jobs, NOW)
    # started Fri 10:00: Fri 10–17 (7 h) and Mon 07–08 (1 h); the next run Mon 08–09, before the downtime
    assert result.runs == {"now": (utc(4, 10), utc(7, 8)), "next": (utc(7, 8), utc(7, 9))}
    overdue = {"now": Job("now", "printer", HOUR, started=utc(4, 10)), "next": Job("next", "printer", HOUR)}
    result = plan([printer], overdue, NOW)
    # meant to end Fri 11:00, still running at 16:00: it ends now at the earliest
    assert result.runs == {"now": (utc(4, 10), NOW), "next": (NOW, utc(4, 17))}


def test_a_previous_step_without_an_estimate_leaves_the_run_without_one():
    sander = Station("sander", lanes=1, working=WorkingTime(), queue=["p1", "p2"])
    jobs = {"p1": Job("p1", "sander", HOUR, after=["elsewhere"]), "p2": Job("p2", "sander", HOUR)}
    result = plan([sander], jobs, NOW, known_ends={"elsewhere": None})
    assert result.runs == {"p1": None, "p2": (NOW, NOW + timedelta(hours=1))}  # p1 takes no lane
    result = plan([sander], jobs, NOW, known_ends={"elsewhere": utc(5, 3)})
    # p1 waits for its previous step until Saturday 03:00; p2, behind it in the one-lane queue, follows it
    assert result.runs == {"p1": (utc(5, 3), utc(5, 4)), "p2": (utc(5, 4), utc(5, 5))}


def test_overnight_windows_offsets_and_a_calendar_without_working_time():
    # a night shift 22:00–06:00 local at utc_offset -5 (03:00–11:00 UTC the next day), Friday night only
    night = WorkingTime(week=check_week({"friday": {"start": "22:00", "finish": "06:00"}}), utc_offset=-5.0)
    assert night.place(NOW, 2 * HOUR) == (utc(5, 3), utc(5, 5))
    assert night.place(NOW, 10 * HOUR) == (utc(5, 3), utc(12, 5))  # 8 h this week, 2 h the next Friday night
    assert WorkingTime(week={}).place(NOW, HOUR) is None
    # durations or dates no schedule can hold: no estimate, rather than an overflow
    assert WorkingTime().place(NOW, 1e308) is None and WorkingTime().place(NOW, float("nan")) is None
    assert WorkingTime().place(datetime(9999, 12, 31, tzinfo=timezone.utc), HOUR) is None


@pytest.mark.parametrize("week", [{"funday": {"start": "08:00", "finish": "18:00"}},
                                  {"monday": {"start": "8 o'clock", "finish": "18:00"}},
                                  {"monday": {"start": "08:00"}}, {"monday": {"start": "08:00", "finish": "08:00"}},
                                  ["monday"]])
def test_a_week_that_is_not_one_is_refused(week):
    with pytest.raises(ValueError):
        check_week(week)


def test_the_gantt_picture_puts_overlapping_runs_on_lanes_and_hatches_downtimes():
    from xml.etree import ElementTree

    from gateway.gantt import LEFT, WIDTH, svg
    bars = [("A", "in-progress", utc(4, 10), utc(4, 14)), ("B", "queued", utc(4, 12), utc(4, 16)),
            ("C", "queued", utc(4, 14), utc(4, 18))]
    root = ElementTree.fromstring(svg("Oven", bars, [("Belt", utc(4, 16), utc(4, 17))], NOW, lanes=2))
    ns = "{http://www.w3.org/2000/svg}"
    runs = [g.find(ns + "rect") for g in root.iter(ns + "g") if g.get("class") == "run"]
    # the axis spans Fri 10:00–18:00 (8 h); A and C share lane 0, B (overlapping A) takes lane 1
    scale = (WIDTH - 2 * LEFT) / (8 * 3600)
    assert [(float(r.get("x")), float(r.get("y"))) for r in runs] == [
        (LEFT, 43.0), (pytest.approx(LEFT + 2 * 3600 * scale, abs=0.1), 73.0),
        (pytest.approx(LEFT + 4 * 3600 * scale, abs=0.1), 43.0)]
    down = [r for r in root.iter(ns + "rect") if r.get("class") == "downtime"]
    assert len(down) == 1 and float(down[0].get("width")) == pytest.approx(3600 * scale, abs=0.1)
