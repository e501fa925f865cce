"""`/schedule_runs/` (production.md §2.8): the record of one estimation, asked for a run. It estimates, in the same
transaction, the run's workstation and, recursively, the workstations of the runs holding its runs' next steps
(services.production.scheduler); the dates show on /run-schedule/ and the printers' `available_at`.

`estimates` (optional) is the caller's own estimate for this run: `{"time": seconds}` or `{"time": {"print": …,
"cooling": …}}` (the seconds summed), and `run_type`, which must be the run's operation when given. It replaces the
computed print time of a printing run (the printer type's buffers and labor are still added); for a post-processing
run it replaces the post-processor's duration. It stays the run's estimate for later passes.

A run being estimated by hand (`calculating`) answers the reference's 400 "Wait until estimation process for this
run will finish"; a finished run (complete, cancelled) and a run without an exact workstation have nothing to
schedule (400)."""
from services.production.calendar import HORIZON
from services.production.queue import visible_run
from services.production.scheduler import reschedule, station_of
from shared.errors import InvalidPayload
from shared.resource import Resource
from shared.uris import resource_path

CALCULATING = "Wait until estimation process for this run will finish"
FINISHED = "A {} run has nothing left to schedule."
NO_STATION = "A run is scheduled on its workstation: give it a printer (or post-processor) first."
BAD_ESTIMATES = ("estimates must be {\"time\": seconds, \"run_type\": the run's operation}; time may also be an "
                 "object of seconds, summed (each at most five years).")


def estimated_seconds(estimates, operation):
    """The seconds a caller's `estimates` give, or None when it gives none; InvalidPayload when malformed."""
    if estimates is None:
        return None
    if not isinstance(estimates, dict) or set(estimates) - {"time", "run_type"}:
        raise InvalidPayload(BAD_ESTIMATES, field="estimates")
    if estimates.get("run_type") not in (None, operation):
        raise InvalidPayload(f"estimates.run_type must be this run's operation ({operation}).", field="estimates")
    time = estimates.get("time")
    values = list(time.values()) if isinstance(time, dict) else [time] if time is not None else []
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= HORIZON.total_seconds()
           for v in values):  # NaN and absurd lengths too
        raise InvalidPayload(BAD_ESTIMATES, field="estimates")
    return float(sum(values)) if time is not None else None


class ScheduleRuns(Resource):
    resource = "schedule_runs"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        run = visible_run(unit, fields.get("run"), "run")
        status = run.fields.get("status")
        if status == "calculating":
            raise InvalidPayload(CALCULATING, field="run")
        if status in ("complete", "cancelled"):
            raise InvalidPayload(FINISHED.format(status), field="run")
        station = station_of(unit, run.fields)
        if station is None:
            raise InvalidPayload(NO_STATION, field="run")
        seconds = estimated_seconds(fields.get("estimates"), run.fields.get("operation"))
        fields = dict(fields, run=resource_path("run", run.id), edited_by=unit.actor,
                      workstation=resource_path(station.resource, station.id))
        if seconds is not None:
            fields["estimated_duration"] = seconds
        return fields, [], {}

    def consequences(self, unit):
        if not any(isinstance(e, Resource.Created) for e in self.pending_events):
            return []
        touched = {}
        if self.fields.get("estimated_duration") is not None:  # the caller's estimate stays the run's
            run = unit.get(self.fields["run"])
            Resource.update(run, {"estimated_duration": self.fields["estimated_duration"]}, None)
            touched[self.fields["run"]] = run
        changed = reschedule(unit, [self.fields["workstation"]], touched)
        return [*touched.values(), *[a for a in changed if a.id not in {t.id for t in touched.values()}]]
