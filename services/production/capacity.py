"""The scheduler's inputs (production.md §4.7 /downtime/, §4.8 /work-schedule/, §4.9 /labor/, F7):

* a downtime blocks exactly one workstation of the bureau (printer, post-processor or shipping) for [start, finish),
  finish after start; its status is `scheduled | in_progress | complete` (`scheduled` when not given). Creating,
  changing or deleting one estimates that workstation's schedule again in the same transaction;
* a work-schedule belongs to one workstation type (printer type or post-processor type), one per type (the
  reference's 400 "The requested … is already attached to a work-schedule."); `calendar` needs a valid `week`
  (services.production.calendar), `utc_offset` within ±14 hours;
* a labor record belongs to one workstation type, one per type and labor type ("… is already attached to a labor
  resource."), with a duration of at least 0 seconds.
The scheduler finds them through production's reference index (services.production.application)."""
from services.production.calendar import check_week, parse_instant
from services.production.domain import _same_bureau
from services.production.scheduler import Pass
from shared.errors import InvalidPayload
from shared.resource import Resource
from shared.uris import resource_path

DOWNTIME_STATUSES = ("scheduled", "in_progress", "complete")
DOWNTIME_STATIONS = {"printer": "printer", "post_processor": "post-processor", "shipping": "shipping"}
TYPE_FIELDS = {"printer_type": "printer-type", "post_processor_type": "post-processor-type"}
ONE_STATION = "A downtime blocks one workstation: give exactly one of printer, post_processor or shipping."
FINISH_FIRST = "finish must be after start."
ONE_TYPE = "Give exactly one of printer_type or post_processor_type."
SCHEDULE_TAKEN = "The requested {} is already attached to a work-schedule."
LABOR_TAKEN = "The requested {} is already attached to a labor resource."


def _one(unit, fields, kinds, message):
    """The one field of `kinds` the record names, checked to be a live resource of the caller's bureau."""
    given = [name for name in kinds if fields.get(name)]
    if len(given) != 1:
        raise InvalidPayload(message, field=sorted(kinds)[0] if not given else given[1])
    name = given[0]
    if _same_bureau(unit, fields[name], (kinds[name],)) is None:
        raise InvalidPayload(f"{name} must name a {kinds[name].replace('-', ' ')} of your bureau.", field=name)
    return name


class Downtime(Resource):
    resource = "downtime"

    class Started(Resource.Updated):
        field, value = "status", "in_progress"

    class Completed(Resource.Updated):
        field, value = "status", "complete"

    @classmethod
    def check(cls, unit, fields):
        _one(unit, fields, DOWNTIME_STATIONS, ONE_STATION)
        start, finish = parse_instant(fields.get("start")), parse_instant(fields.get("finish"))
        if start is None or finish is None or finish <= start:
            raise InvalidPayload(FINISH_FIRST, field="finish")
        if fields.get("status") is None:
            fields["status"] = "scheduled"
        if fields["status"] not in DOWNTIME_STATUSES:
            raise InvalidPayload(f"status must be one of {', '.join(DOWNTIME_STATUSES)}.", field="status")
        return fields

    @classmethod
    def on_create(cls, unit, new_id, fields):
        return cls.check(unit, dict(fields)), [], {}

    def consequences(self, unit):
        if not self.pending_events:
            return []
        created = any(isinstance(e, Resource.Created) for e in self.pending_events)
        before = getattr(self, "_before", None) or {}
        if not self.deleted and not created:
            self.check(unit, dict(self.fields))
        path = resource_path(self.resource, self.id)
        stations = {before.get(k) for k in ("printer", "post_processor")} | {
            self.fields.get(k) for k in ("printer", "post_processor")}
        scheduling = Pass(unit, downtimes={path: None if self.deleted else dict(self.fields)})
        return scheduling.run(sorted(s for s in stations if s))

    def update(self, changes, actor):
        self._before = dict(self.fields)
        super().update(changes, actor)


class WorkSchedule(Resource):
    resource = "work-schedule"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        name = _one(unit, fields, TYPE_FIELDS, ONE_TYPE)
        if fields.get("type") not in ("non_stop", "calendar"):
            raise InvalidPayload("type must be non_stop or calendar.", field="type")
        if fields.get("type") == "calendar":
            try:
                check_week(fields.get("week") or {})
            except ValueError as problem:
                raise InvalidPayload(str(problem), field="week") from None
        offset = fields.get("utc_offset")
        if offset is not None and not -14 <= offset <= 14:
            raise InvalidPayload("utc_offset is hours from UTC, between -14 and 14.", field="utc_offset")
        fields.setdefault("week", {})
        fields.setdefault("utc_offset", 0)
        claim = unit.claim_unique("work-schedule", fields[name], resource_path(cls.resource, new_id),
                                  SCHEDULE_TAKEN.format(name), name)
        return fields, [claim], {}


class Labor(Resource):
    resource = "labor"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        name = _one(unit, fields, TYPE_FIELDS, "Give exactly one of printer_type or post_processor_type.")
        if fields.get("type") not in ("labor_to_start", "labor_to_run"):
            raise InvalidPayload("type must be labor_to_start or labor_to_run.", field="type")
        if fields.get("duration") is None or fields["duration"] < 0:
            raise InvalidPayload("duration is seconds, at least 0.", field="duration")
        claim = unit.claim_unique("labor", f"{fields[name]}:{fields['type']}", resource_path(cls.resource, new_id),
                                  LABOR_TAKEN.format(name), name)
        return fields, [claim], {}
