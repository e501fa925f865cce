"""`/run-queue/` (production.md §2.4): move a waiting run in its workstation's queue — to the front, or `before`
(the default) / `after` another run waiting in the same queue. A run in progress is never moved (it is not in the
queue; the reference's 400 "You cannot change the position of an already printing job."), nor is the queue changed
while a run of it is being estimated (`calculating`: "The queue modification is not allowed at this time."). The new
order is the workstation's `queue` (PrinterQueueReordered / PostProcessorQueueReordered), and the workstation's
schedule is estimated again in the same transaction (services.production.scheduler)."""
from services.production.runs import WAITING, Run
from services.production.scheduler import reschedule, station_of
from shared.errors import InvalidPayload, NotFound
from shared.resource import Resource
from shared.uris import normalise, parse_uri, resource_path

# the reference's texts (api-reference /run-queue/, /printer/, /post-processor/)
NOT_NOW = "The queue modification is not allowed at this time."
BAD_POSITION = "Invalid position specified for queue modification."
RUN_NOT_FOUND = "The requested run cannot be found."
ALREADY_RUNNING = {"printer": "You cannot change the position of an already printing job.",
                   "post-processor": "You cannot change the position of an already post processing job."}
# Stratum's own
NOT_QUEUED = "This run is in no workstation queue: give it a printer (or post-processor) first."
OTHER_QUEUE = "relative_to must name another run waiting in the same workstation queue."
POSITIONS = ("before", "after")


def visible_run(unit, value, field):
    """The run `value` names, as the caller may see it (NotFound with the reference's text otherwise)."""
    try:
        kind, uuid = parse_uri(normalise(value))
    except (TypeError, ValueError):
        raise InvalidPayload(f"{field} must be a run URI.", field=field) from None
    if kind != "run":
        raise InvalidPayload(f"{field} must be a run URI.", field=field)
    try:
        run = unit.load("run", uuid)
    except NotFound:
        raise NotFound(RUN_NOT_FOUND) from None
    if not isinstance(run, Run):
        raise NotFound(RUN_NOT_FOUND)
    return run


class RunQueue(Resource):
    resource = "run-queue"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        position = fields.get("position")
        if position is None:
            position = "before"
        if position not in POSITIONS:
            raise InvalidPayload(BAD_POSITION, field="position")
        run = visible_run(unit, fields.get("run"), "run")
        station = station_of(unit, run.fields)
        if station is None:
            raise InvalidPayload(NOT_QUEUED, field="run")
        path = resource_path("run", run.id)
        if run.fields.get("status") in ("in-progress", "paused"):
            raise InvalidPayload(ALREADY_RUNNING[station.resource], field="run")
        queue = list(station.fields.get("queue") or [])
        if run.fields.get("status") not in WAITING or path not in queue:
            raise InvalidPayload(NOT_NOW, field="run")
        if any(_status(unit, r) == "calculating" for r in queue):
            raise InvalidPayload(NOT_NOW, field="run")
        rest = [r for r in queue if r != path]
        if fields.get("relative_to") in (None, ""):
            order = [path, *rest]
        else:
            anchor = resource_path("run", visible_run(unit, fields["relative_to"], "relative_to").id)
            if anchor == path:  # placed before or after itself
                raise InvalidPayload(BAD_POSITION, field="relative_to")
            if anchor not in rest or _status(unit, anchor) not in WAITING:
                raise InvalidPayload(OTHER_QUEUE, field="relative_to")
            at = rest.index(anchor) + (1 if position == "after" else 0)
            order = [*rest[:at], path, *rest[at:]]
        fields = dict(fields, run=path, position=position, workstation=resource_path(station.resource, station.id),
                      new_position=order.index(path))
        if fields.get("relative_to"):
            fields["relative_to"] = anchor
        return fields, [], {}

    def consequences(self, unit):
        if not any(isinstance(e, Resource.Created) for e in self.pending_events):
            return []
        station = unit.get(self.fields["workstation"])
        queue = [r for r in station.fields.get("queue") or [] if r != self.fields["run"]]
        queue.insert(self.fields["new_position"], self.fields["run"])
        Resource.update(station, {"queue": queue}, None)
        changed = reschedule(unit, [self.fields["workstation"]], {self.fields["workstation"]: station})
        return [station, *[a for a in changed if a.id != station.id]]


def _status(unit, path):
    found = unit.get(path)
    return found.fields.get("status") if isinstance(found, Run) and not found.deleted else None
