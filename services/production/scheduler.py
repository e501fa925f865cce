"""The scheduling pass (production.md §2.8, F7): gathers a workstation's queue, its runs' durations and previous
steps, its type's work-schedule and its downtimes from production's store, asks services.production.schedule for the
dates, and writes them in the same transaction as the command that asked: each run's `estimated_start`,
`estimated_end`, `workstation_queue_position` and `schedule_uuid` (shown by the /run-schedule/ view), and the
workstation's `available_at`.

A pass starts at the workstations named and takes in, recursively, the workstations of the runs that hold their
runs' next steps (the reference's "scans recursively from the selected run"); a previous step held by a run outside
the pass counts with the estimate that run has already.

Durations, in seconds of working time (the types' estimates):
* printing: the run's own estimate (`estimates.time` of a /schedule_runs/, or create-runs' `primary_run_duration`)
  plus the printer type's `time_before_print` and `time_after_print`;
* post-processing: the post-processor's `duration`, else its type's;
* plus the type's `labor_to_start` (/labor/).
"""
from datetime import datetime, timezone
from uuid import NAMESPACE_URL, uuid5

from services.production.calendar import WorkingTime, check_week, parse_instant
from services.production.domain import PostProcessor, Print, Printer
from services.production.runs import PRINTER_IN_PROGRESS_MAX, WAITING, Run, RunActuals
from services.production.schedule import Job, Station, plan
from shared.resource import Resource
from shared.uris import resource_path

ADMIN = {"platform_admin": True}
TYPE_FIELD = {"printer": "printer_type", "post-processor": "post_processor_type"}
STATION_FIELD = {"printing": "printer", "post-processing": "post_processor"}
UNESTIMATED = "unestimated:"  # a previous step whose print is in no run yet: no end can be known
RUNNING = ("in-progress", "paused")


def now():
    return datetime.now(timezone.utc)


def schedule_uuid(run_path):
    """The run's schedule (the /run-schedule/ view's `schedule_uuid`): one per run, whatever pass wrote it."""
    return str(uuid5(NAMESPACE_URL, f"stratum:production:schedule:{run_path}"))


def station_of(unit, run_fields):
    """The exact workstation (printer or post-processor) a run is queued at, or None."""
    name = STATION_FIELD.get(run_fields.get("operation"))
    found = unit.get(run_fields.get(name)) if name and run_fields.get(name) else None
    return found if isinstance(found, (Printer, PostProcessor)) and not found.deleted else None


class Pass:
    """One scheduling pass inside one command: every aggregate it reads once, so the copies it changes are the
    ones saved (`touched`)."""

    def __init__(self, unit, touched=None, at=None, downtimes=None):
        self.unit, self.at = unit, at or now()
        self.loaded = dict(touched or {})  # path → aggregate (the copies the command already changed)
        self.downtimes = dict(downtimes or {})  # path → fields (None: deleted) a command changes: not indexed yet
        self.touched = {}
        self.shown_downtimes = {}  # station path → [[start, finish, description]] the pass counted
        self.line_items, self.by_piece = set(), {}  # the prints of the line items read so far, by piece

    def get(self, path):
        if path not in self.loaded:
            self.loaded[path] = self.unit.get(path) if path else None
        return self.loaded[path]

    def run(self, station_paths):
        """Schedule these workstations and those downstream of them; the changed aggregates."""
        stations, order = {}, list(station_paths)
        while order:
            path = order.pop(0)
            if path in stations:
                continue
            station = self.get(path)
            if not isinstance(station, (Printer, PostProcessor)) or station.deleted:
                continue
            stations[path] = station
            for run_path in self._runs_of(station):
                for later in self._next_runs(run_path):
                    downstream = station_of(self.unit, self.get(later).fields)
                    if downstream is not None:
                        order.append(resource_path(downstream.resource, downstream.id))
        jobs, plan_stations, known = {}, [], {}
        for path, station in stations.items():
            queue = [r for r in station.fields.get("queue") or [] if self._waiting(r)]
            running = [r for r in station.fields.get("in_progress") or [] if self._is_run(r)]
            plan_stations.append(Station(path, self._lanes(station), self._working_time(station, path), queue,
                                         running))
            for run_path in running + queue:
                jobs[run_path] = self._job(run_path, path)
        in_pass = set(jobs)
        for job in jobs.values():
            for dep in job.after:
                if dep not in in_pass:
                    known[dep] = None if dep.startswith(UNESTIMATED) else parse_instant(
                        self.get(dep).fields.get("estimated_end"))
        result = plan(plan_stations, jobs, self.at, known)
        for station in plan_stations:
            positions = {r: i for i, r in enumerate(station.queue)}
            for run_path in station.running + station.queue:
                self._write_run(run_path, result.runs.get(run_path), positions.get(run_path))
            stale = [r for r in self.get(station.key).fields.get("queue") or [] if r not in positions]
            for run_path in stale:  # a run in error waits for rework: no estimate meanwhile
                if self._is_run(run_path):
                    self._write_run(run_path, None, None)
            self._write(self.get(station.key), {"available_at": _iso(result.available_at.get(station.key)),
                                                "_downtimes": self.shown_downtimes.get(station.key, [])})
        return list(self.touched.values())

    # -- reading ------------------------------------------------------------------------------------------------------

    def _is_run(self, path):
        run = self.get(path)
        return isinstance(run, Run) and not run.deleted

    def _waiting(self, path):
        return self._is_run(path) and self.get(path).fields.get("status") in WAITING

    def _runs_of(self, station):
        return [r for r in [*(station.fields.get("in_progress") or []), *(station.fields.get("queue") or [])]
                if self._is_run(r)]

    def _prints(self, run):
        return [p for p in (self.get(path) for path in run.fields.get("prints") or [])
                if isinstance(p, Print) and not p.deleted and p.fields.get("status") != "cancelled"]

    def _piece_prints(self, each):
        """The live prints of this print's piece, by step: its line item's prints, read once per pass."""
        piece = self.get(each.fields.get("piece"))
        if not isinstance(piece, Resource):
            return []
        item = piece.fields.get("line_item")
        if item not in self.line_items:
            self.line_items.add(item)
            for found in self.unit.app.referencing("print", "line_item", item, ADMIN):
                other = self.get(found["uri"])
                if isinstance(other, Print) and not other.deleted and other.fields.get("status") != "cancelled" \
                        and not other.fields.get("remanufactured_to"):  # replaced by rework: its replacement counts
                    self.by_piece.setdefault(other.fields.get("piece"), []).append(other)
            for prints in self.by_piece.values():
                prints.sort(key=lambda p: p.fields.get("process_step_position") or 0)
        return self.by_piece.get(each.fields.get("piece"), [])

    def _next_runs(self, run_path):
        """The runs holding the next step of this run's prints."""
        found = []
        for each in self._prints(self.get(run_path)):
            position = each.fields.get("process_step_position") or 0
            later = [p for p in self._piece_prints(each) if (p.fields.get("process_step_position") or 0) > position]
            if later and later[0].fields.get("run") and self._is_run(later[0].fields["run"]):
                found.append(later[0].fields["run"])
        return found

    def _previous_runs(self, run):
        """What a run waits for: the runs of its prints' previous steps not complete yet (UNESTIMATED… for a
        previous step in no run)."""
        found = []
        for each in self._prints(run):
            position = each.fields.get("process_step_position") or 0
            for earlier in self._piece_prints(each):
                if (earlier.fields.get("process_step_position") or 0) >= position or \
                        earlier.fields.get("status") == "complete":
                    continue
                holder = earlier.fields.get("run")
                key = holder if holder and self._is_run(holder) else UNESTIMATED + resource_path("print", earlier.id)
                if key not in found:
                    found.append(key)
        return found

    def _job(self, run_path, station_path):
        run = self.get(run_path)
        started = None
        if run.fields.get("status") in RUNNING:
            actuals = self.get(resource_path(RunActuals.resource, RunActuals.id_for(run.id)))
            started = parse_instant(actuals.fields.get("start_in_progress_time")) if isinstance(
                actuals, Resource) else None
        after = [] if run.fields.get("status") in RUNNING else self._previous_runs(run)
        return Job(run_path, station_path, self.duration(run, self.get(station_path)), after, started)

    def duration(self, run, station):
        kind = self.get(station.fields.get(TYPE_FIELD[station.resource]))
        rates = kind.fields if isinstance(kind, Resource) else {}
        if station.resource == "printer":
            own = run.fields.get("estimated_duration")
            if own is None:
                own = run.fields.get("primary_run_duration")
            seconds = _number(own) + _number(rates.get("time_before_print")) + _number(rates.get("time_after_print"))
        else:
            own = run.fields.get("estimated_duration")
            if own is None:
                own = station.fields.get("duration")
            seconds = _number(own if own is not None else rates.get("duration"))
        return seconds + self._labor_to_start(station)

    def _labor_to_start(self, station):
        type_field = TYPE_FIELD[station.resource]
        for labor in self.unit.app.referencing("labor", type_field, station.fields.get(type_field), ADMIN):
            if labor["fields"].get("type") == "labor_to_start":
                return _number(labor["fields"].get("duration"))
        return 0.0

    def _lanes(self, station):
        limit = station.fields.get("in_progress_max")
        return int(limit) if limit else (PRINTER_IN_PROGRESS_MAX if station.resource == "printer" else 10)

    def _working_time(self, station, path):
        type_field = TYPE_FIELD[station.resource]
        week, offset = None, 0.0
        for found in self.unit.app.referencing("work-schedule", type_field, station.fields.get(type_field), ADMIN):
            fields = found["fields"]
            if fields.get("type") == "calendar":
                try:
                    week = check_week(fields.get("week") or {})
                except ValueError:  # refused on write (services.production.capacity); a bad older record: none
                    week = {}
                offset = float(fields.get("utc_offset") or 0)
        field = station.resource.replace("-", "_")
        found = {d["uri"]: d["fields"] for d in self.unit.app.referencing("downtime", field, path, ADMIN)}
        found.update(self.downtimes)
        downtimes, shown = [], []
        for fields in found.values():
            if fields and fields.get(field) == path and fields.get("status") != "complete":
                downtimes.append((parse_instant(fields.get("start")), parse_instant(fields.get("finish"))))
                shown.append([fields.get("start"), fields.get("finish"), fields.get("description")])
        self.shown_downtimes[path] = sorted(shown, key=lambda d: str(d[0]))  # for the Gantt (gateway.gantt)
        return WorkingTime(week=week, utc_offset=offset, downtimes=downtimes)

    # -- writing ------------------------------------------------------------------------------------------------------

    def _write_run(self, run_path, placed, position):
        start, end = placed if placed else (None, None)
        self._write(self.get(run_path), {"estimated_start": _iso(start), "estimated_end": _iso(end),
                                         "workstation_queue_position": position,
                                         "schedule_uuid": schedule_uuid(run_path)})

    def _write(self, aggregate, changes):
        Resource.update(aggregate, changes, None)
        if aggregate.pending_events:
            self.touched[aggregate.id] = aggregate


def _number(value):
    """Seconds from a stored field: a negative one counts as 0, NaN stays NaN (the run gets no estimate)."""
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return number if number != number else max(0.0, number)


def _iso(value):
    return value.isoformat() if value is not None else None


def reschedule(unit, station_paths, touched=None):
    """A scheduling pass over these workstations (and downstream); the aggregates it changed. `touched`: {path:
    aggregate} the command changed already (use those copies)."""
    return Pass(unit, touched).run([p for p in station_paths if p])
