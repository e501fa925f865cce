"""`/run-transformation/` (production.md §2.3, flow F5): rework of the pieces of a run, asked for by POST and done by a
background job (services.production.rework_job).

POST checks what can be checked at once (the 400s naming the problem, 404 for a run the caller cannot see), stores
the transformation `pending` (RunTransformationRequested) and asks for the job. The job moves it to `processing`,
applies the rules below to production's pieces, prints, runs and workflows in one transaction, creates the runs the
transformation schedules (through the ordinary /run/ rules), and ends `complete` (`destination_runs`,
`custom_workflow`) or `error` with a note saying why. Every step is recorded under a command id derived from the
transformation, so a redelivered message or a job resumed after a crash changes nothing twice.

Per type (§2.3, the map's inferred semantics; each piece is the piece of one selected print of the source run):
* remanufacture: a replacement piece (same line item, the next copy number, one print per step of the piece's
  workflow) is made, available for a new printing run (or, with `split_piece_schedules`, put at once in runs of its
  own, one per step: `destination_runs`); the old piece goes `incomplete` with `remanufactured_to`,
  the selected print gets `remanufactured_to` (the replacement's print of the same step) and the old piece's prints
  not done are cancelled and leave their runs. PieceRemanufactured, PrintRemanufactured.
* scrap: the piece is cancelled for good (PieceScrapped), its prints not done are cancelled and leave the runs
  that have not started. The line item completes without it (services.orders.progress).
* redo: a new print for the selected print's step (available for a new run, or in a run of its own with
  `split_piece_schedules`); the selected print gets
  `remanufactured_to` (PrintRedoScheduled); the piece waits for that step again.
* change_workflow: a custom workflow from `process_steps` (its `source_workflow` the piece's, `pieces` the pieces
  moved), the piece's workflow changes (`reworked` true; PieceWorkflowChanged), its prints not done are cancelled
  and leave their runs, prints are made for the new workflow's steps after those done, and one type-level run per
  remaining step is created for them (`destination_runs`).
* flag_non_conformance: the selected print leaves the source run (back to the pool, to be done after the review);
  a review print is made at the bureau's post-processor of special_type `non_conformance_review` and put in a review
  run there (an open one is infilled, else one is created); the piece waits for the review
  (PieceNonConformanceFlagged); when the review run completes the piece is back at the reviewed step. Without such a
  post-processor the job ends `error` with a note.
* split_shipment: shipments are not modelled in Stratum yet (/shipment/split/ belongs to the orders area and is not
  built), so POST answers 400 saying so.

A print that is retired by a transformation (`remanufactured_to` set, or cancelled) stays in the run it was in, as a
record, and no later move of that run carries it (services.production.runs skips it).
"""
from uuid import NAMESPACE_URL, UUID, uuid5

from services.production.domain import Piece, PostProcessor, Print, Workflow, _free_name
from services.production.planning import LineItemPlan, _make_prints
from services.production.runs import WAITING, Run
from shared.errors import InvalidPayload, NotFound, StratumError
from shared.resource import Resource
from shared.uris import normalise, parse_uri, resource_path

TRANSFORMATION_REQUESTED = "run_transformation_requested"
NOT_FOUND = "The requested run transformation or related object cannot be found."
TYPES = ("remanufacture", "redo", "change_workflow", "flag_non_conformance", "scrap", "split_shipment")
SPLIT_SHIPMENT_NOT_MODELLED = ("split_shipment is not available: shipments are not modelled in Stratum yet, so a "
                               "shipping run cannot be split.")
PRINTS_REQUIRED = "prints (or line_items) must name the prints of source_run to transform."
PRINT_NOT_IN_RUN = "prints must be prints of source_run: {} is not."
PRINT_RETIRED = "{} was reworked already (remanufactured, redone or cancelled)."
PIECE_FINISHED = "The piece of {} is {}: only a piece still in production is reworked."
STEPS_REQUIRED = ("process_steps is required for change_workflow: the full ordered list of the new workflow's "
                  "process steps.")
STEPS_ONLY_FOR_CHANGE = "process_steps is only taken by change_workflow."
LINE_ITEMS_INVALID = ("line_items must be a list of {\"line_item\": URI, \"quantity\": n}, each line item with prints "
                      "in source_run.")
LINE_ITEM_SHORT = "source_run holds only {} print(s) of {} that can be reworked."
NO_REVIEW_STATION = ("No post-processor of a post-processor type with special_type 'non_conformance_review' exists in "
                     "this bureau: create one to flag non-conformance.")
NO_STEPS_LEFT = "The new workflow has no step after the {} step(s) {} has done already."
FINISHED_PIECE = ("complete", "cancelled", "incomplete")
NCR = "non_conformance_review"
INTERNAL = {"platform_admin": True}


class ReworkFailed(StratumError):
    """A transformation that cannot be done: the job ends `error` with this note."""
    status = 400
    code = "run-transformation-failed"


def retired(each):
    """A print a transformation took out of production (it stays in its run as a record)."""
    return isinstance(each, Print) and (each.fields.get("status") == "cancelled" or bool(each.fields.get(
        "remanufactured_to")))


class RunTransformation(Resource):
    """production.md §2.3."""

    resource = "run-transformation"

    class Requested(Resource.Created):
        pass

    class StatusChanged(Resource.Updated):
        field = "status"

    class Started(StatusChanged):
        value = "processing"

    class Completed(StatusChanged):
        value = "complete"

    class Failed(StatusChanged):
        value = "error"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return cls._create(cls.Requested, id=id, fields=fields, bureau=bureau, actor=actor)

    # -- POST ---------------------------------------------------------------------------------------------------------

    @classmethod
    def prepare(cls, payload, ctx):
        if isinstance(payload, dict) and payload.get("type") == "split_shipment":
            # shipments (orders area) are not modelled yet: nothing to split, so a clear 400 rather than a job error
            raise InvalidPayload(SPLIT_SHIPMENT_NOT_MODELLED, field="type")
        return payload

    @classmethod
    def on_create(cls, unit, new_id, fields):
        kind = fields["type"]
        run = _visible(unit, _path(fields.get("source_run")), "run")
        if not isinstance(run, Run):
            raise NotFound(NOT_FOUND)
        run_path = resource_path("run", run.id)
        prints = _selected(unit, run, fields)
        for each in prints:
            piece = unit.get(each.fields.get("piece"))
            status = piece.fields.get("status") if isinstance(piece, Piece) else "gone"
            if status in FINISHED_PIECE:
                raise InvalidPayload(PIECE_FINISHED.format(resource_path("print", each.id), status), field="prints")
        steps = fields.get("process_steps")
        if kind == "change_workflow":
            if not steps:
                raise InvalidPayload(STEPS_REQUIRED, field="process_steps")
            steps = [normalise(s) for s in steps]
            Workflow.steps_of(unit, steps)  # 400 unless process steps of the caller's bureau
        elif steps:
            raise InvalidPayload(STEPS_ONLY_FOR_CHANGE, field="process_steps")
        fields = dict(fields, source_run=run_path, prints=[resource_path("print", p.id) for p in prints],
                      process_steps=steps or None, status="pending", custom_workflow=None, destination_runs=[],
                      user=unit.actor)
        return fields, [], {}

    @classmethod
    def follow_ups(cls, verb, result, payload):
        return [(TRANSFORMATION_REQUESTED, {"run_transformation": result["uri"]})] if verb == "create" else []

    # -- the job's steps ----------------------------------------------------------------------------------------------

    @property
    def waiting(self):
        return not self.deleted and self.fields.get("status") in ("pending", "processing")

    def start(self):
        if self.fields.get("status") == "pending":
            self.trigger_event(self.Started, changes={"status": "processing"}, actor=None)

    def complete(self, destination_runs, custom_workflow, warnings=()):
        if self.waiting:
            changes = {"status": "complete", "destination_runs": list(destination_runs),
                       "custom_workflow": custom_workflow}
            if warnings:
                changes["notes"] = _noted(self.fields.get("notes"), " ".join(warnings))
            self.trigger_event(self.Completed, changes=changes, actor=None)

    def fail(self, reason):
        if self.waiting:
            self.trigger_event(self.Failed, changes={"status": "error", "notes": _noted(self.fields.get("notes"),
                                                                                         reason)}, actor=None)


def _noted(notes, system):
    """The caller's notes (the reason) are kept; the system's note follows them."""
    return f"{notes}\n{system}" if notes else system


def _path(value, kinds=None):
    try:
        path = normalise(value)
        kind = parse_uri(path)[0]
    except (TypeError, ValueError):
        return None
    return path if kinds is None or kind in kinds else None


def _visible(unit, path, kind):
    found = unit.get(path) if path else None
    if not isinstance(found, Resource) or found.deleted or found.resource != kind:
        return None
    if unit.bureau and found.bureau and found.bureau != unit.bureau and not unit.ctx.get("platform_admin"):
        return None
    return found


def _selected(unit, run, fields):
    """The prints to transform: `prints` (each in source_run), or `line_items` ({line_item, quantity}: that many
    reworkable prints of the line item in source_run, in copy order)."""
    in_run = list(run.fields.get("prints") or [])
    chosen = []
    if fields.get("prints"):
        for value in fields["prints"]:
            path = _path(value, ("print",))
            if path is None or path not in in_run:
                raise InvalidPayload(PRINT_NOT_IN_RUN.format(value), field="prints")
            chosen.append(path)
    elif fields.get("line_items"):
        for entry in fields["line_items"]:
            item = _path(entry.get("line_item"), ("line-item",)) if isinstance(entry, dict) else None
            if item is None:
                raise InvalidPayload(LINE_ITEMS_INVALID, field="line_items")
            candidates = sorted((p for p in (unit.get(x) for x in in_run) if isinstance(p, Print) and not retired(p)
                                 and p.fields.get("line_item") == item), key=lambda p: p.fields.get("copy") or 0)
            quantity = entry.get("quantity", len(candidates))
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
                raise InvalidPayload(LINE_ITEMS_INVALID, field="line_items")
            if quantity > len(candidates):
                raise InvalidPayload(LINE_ITEM_SHORT.format(len(candidates), item), field="line_items")
            chosen += [resource_path("print", p.id) for p in candidates[:quantity]]
    else:
        raise InvalidPayload(PRINTS_REQUIRED, field="prints")
    prints, seen = [], set()
    for path in chosen:
        each = unit.get(path)
        if not isinstance(each, Print) or each.deleted:
            raise InvalidPayload(PRINT_NOT_IN_RUN.format(path), field="prints")
        if retired(each):
            raise InvalidPayload(PRINT_RETIRED.format(path), field="prints")
        if each.fields.get("piece") not in seen:  # one transformation per piece
            seen.add(each.fields.get("piece"))
            prints.append(each)
    return prints


# -- the rules, applied by the job in one transaction ------------------------------------------------------------------

class Work:
    """The aggregates one transformation loads and changes, each once: the unit its rules (and the workflow's) use."""

    def __init__(self, app, transformation):
        self.app = app
        self.transformation = transformation
        self.ctx = {"bureau": transformation.bureau, "user": transformation.fields.get("user")}
        self.loaded = {}
        self.new_prints = {}  # piece path → prints made in this transformation
        self.plans = {}

    @property
    def actor(self):
        return self.ctx.get("user")

    @property
    def bureau(self):
        return self.ctx.get("bureau")

    def get(self, path):
        try:
            key = path if isinstance(path, UUID) else UUID(parse_uri(path)[1])
        except (TypeError, ValueError):
            return None
        if key not in self.loaded:
            try:
                self.loaded[key] = self.app.repository.get(key)
            except Exception:  # noqa: BLE001 - not found (AggregateNotFoundError)
                self.loaded[key] = None
        return self.loaded[key]

    def add(self, aggregate):
        self.loaded[aggregate.id] = aggregate
        return aggregate

    def changed(self):
        return [a for a in self.loaded.values() if a is not None and a.pending_events]

    def piece_prints(self, piece):
        """The piece's live prints (not cancelled, not replaced), by step, this transformation's new ones included."""
        this = resource_path("piece", piece.id)
        found = [self.get(p["uri"]) for p in self.app.referencing("print", "line_item", piece.fields.get("line_item"),
                                                                  INTERNAL) if p["fields"].get("piece") == this]
        found += self.new_prints.get(this, [])
        unique = {p.id: p for p in found if isinstance(p, Print) and not p.deleted and not retired(p)}
        return sorted(unique.values(), key=lambda p: p.fields.get("process_step_position") or 0)

    def plan(self, piece):
        line_item = piece.fields.get("line_item")
        if line_item not in self.plans:
            self.plans[line_item] = self.get(LineItemPlan.id_for(line_item))
        return self.plans[line_item]

    def plan_entry(self, piece, prints=None):
        """Record the piece (and its prints) in its line item's plan, so planning keeps following it (its line item's
        status, a cancellation, a workflow change)."""
        plan = self.plan(piece)
        if plan is None:
            return
        path = resource_path("piece", piece.id)
        entries = getattr(plan, "_rework_entries", None)
        if entries is None:
            entries = plan._rework_entries = [dict(e) for e in plan.pieces]
        entry = next((e for e in entries if e["piece"] == path), None)
        if entry is None:
            entry = {"piece": path, "prints": []}
            entries.append(entry)
        if prints is not None:
            entry["prints"] = [*entry["prints"], *[p for p in prints if p not in entry["prints"]]]

    def save_plans(self):
        for plan in self.plans.values():
            if plan is not None and getattr(plan, "_rework_entries", None) is not None:
                plan.planned(plan._rework_entries, plan.workflow)
                self.add(plan)


def apply(app, transformation):
    """The transformation's rules on the store: (aggregates to save, what the job schedules next)."""
    work = Work(app, transformation)
    kind = transformation.fields["type"]
    prints = [work.get(p) for p in transformation.fields.get("prints") or []]
    pieces = []
    for each in prints:
        if not isinstance(each, Print) or each.deleted or retired(each):
            raise ReworkFailed(PRINT_RETIRED.format(resource_path("print", each.id) if each is not None else "a print"))
        piece = work.get(each.fields.get("piece"))
        if not isinstance(piece, Piece) or piece.deleted or piece.fields.get("status") in FINISHED_PIECE:
            status = piece.fields.get("status") if isinstance(piece, Piece) else "gone"
            raise ReworkFailed(PIECE_FINISHED.format(resource_path("print", each.id), status))
        pieces.append(piece)
    rule = RULES[kind]
    schedule = rule(work, transformation, list(zip(prints, pieces)))
    work.save_plans()
    # what is made is recorded before what it replaces: a follower of the feed (orders, counting a line item's pieces)
    # never sees a failed piece retired before its replacement exists
    changed = work.changed()
    made = [a for a in changed if any(isinstance(e, Resource.Created) for e in a.pending_events)]
    return made + [a for a in changed if a.id not in {m.id for m in made}], schedule


def _separately(transformation, prints):
    """split_piece_schedules (§2.3): the reworked pieces' new prints are scheduled at once, in runs of their own (one
    type-level run per step); without it they wait, available, for a new run."""
    if not transformation.fields.get("split_piece_schedules"):
        return {}
    runs = {}
    for each in prints:
        runs.setdefault(str(each.fields["process_step_position"]), []).append(resource_path("print", each.id))
    return {"runs": runs}


def remanufacture(work, transformation, pairs):
    copies, scheduled = {}, []
    for each, piece in pairs:
        line_item = piece.fields.get("line_item")
        if line_item not in copies:
            copies[line_item] = max([p["fields"].get("copy") or 0 for p in work.app.referencing(
                "piece", "line_item", line_item, INTERNAL)] + [0])
        copies[line_item] += 1
        replacement = _replacement(work, transformation, piece, copies[line_item])
        made = work.new_prints[resource_path("piece", replacement.id)]
        twin = next((p for p in made if p.fields.get("process_step_position") ==
                     each.fields.get("process_step_position")), made[0] if made else None)
        scheduled += made
        piece.trigger_event(Piece.Remanufactured, changes={
            "remanufactured_to": resource_path("piece", replacement.id), "status": "incomplete"}, actor=work.actor)
        _retire_rest(work, piece, keep=each)
        each.trigger_event(Print.Remanufactured, changes={
            "remanufactured_to": str(twin.id) if twin is not None else None,
            **({} if each.fields.get("status") in ("error", "complete") else {"status": "cancelled"})},
            actor=work.actor)
    return _separately(transformation, scheduled)


def _replacement(work, transformation, piece, copy):
    """A new piece of the same line item, the next copy, with one print per step of the piece's workflow."""
    new_id = uuid5(transformation.id, f"replacement:{piece.id}")
    old = piece.fields
    name = old.get("name") or ""
    base = name[: -len(f" {old.get('copy')}")] if old.get("auto_name", True) and name.endswith(
        f" {old.get('copy')}") else name
    fields = {k: v for k, v in old.items() if k not in ("first_run_start", "first_run_end", "remanufactured_to")}
    fields.update(name=f"{base} {copy}".strip(), copy=copy, status="confirmed", current_print=None,
                  current_step_position=0, remanufactured_to=None, _remanufactured_from=resource_path("piece",
                                                                                                      piece.id))
    replacement = work.add(Piece.create(new_id, fields, piece.bureau, work.actor))
    workflow = work.get(old.get("workflow")) if old.get("workflow") else None
    steps = workflow.step_facts(work.get) if isinstance(workflow, Workflow) and not workflow.deleted else []
    prints = _new_prints(work, piece=replacement, steps=steps, workflow=old.get("workflow"))
    Resource.update(replacement, {"current_print": resource_path("print", prints[0].id) if prints else None},
                    work.actor)
    work.plan_entry(replacement, [resource_path("print", p.id) for p in prints])
    return replacement


def _new_prints(work, piece, steps, workflow):
    plan = work.plan(piece)
    if plan is None:
        raise ReworkFailed(f"The line item of {resource_path('piece', piece.id)} is not planned by production.")
    # the ids are derived from (piece, transformation, step): a second transformation of the piece makes new ones
    paths = _make_prints(work, plan, piece, steps, f"rework:{work.transformation.id}")
    made = [work.get(p) for p in paths]
    for each in made:
        if each.fields.get("workflow") != workflow:
            Resource.update(each, {"workflow": workflow}, work.actor)
    work.new_prints.setdefault(resource_path("piece", piece.id), []).extend(made)
    return made


def _retire_rest(work, piece, keep=None, source_run=None):
    """The piece's prints not done (except `keep`) are cancelled and leave the runs they wait in."""
    for each in work.piece_prints(piece):
        if keep is not None and each.id == keep.id or each.fields.get("status") == "complete":
            continue
        _leave_run(work, each, source_run)
        Resource.update(each, {"status": "cancelled"}, work.actor)


def _leave_run(work, each, source_run=None):
    """A print leaves the run it waits in (a run that has started keeps it as a record, unless it is `source_run`,
    which the transformation takes it out of)."""
    run_path = each.fields.get("run")
    run = work.get(run_path) if run_path else None
    if not isinstance(run, Run) or run.deleted:
        return
    this = resource_path("print", each.id)
    if run.fields.get("status") not in WAITING and run_path != source_run:
        return
    Resource.update(run, {"prints": [p for p in run.fields.get("prints") or [] if p != this]}, work.actor)
    Resource.update(each, {"run": None}, work.actor)
    work.add(run)
    _settle(work, run)


def _settle(work, run):
    """A waiting run that lost prints: cancelled when it has none left (it leaves its workstation's queue); a
    downstream one whose remaining prints' previous steps are all complete becomes work-ready."""
    if run.fields.get("status") not in WAITING:
        return
    prints = [p for p in (work.get(x) for x in run.fields.get("prints") or []) if isinstance(p, Print)]
    if not prints:
        Resource.update(run, {"status": "cancelled"}, work.actor)
        station_field = {"printing": "printer", "post-processing": "post_processor"}.get(run.fields.get("operation"))
        station = work.get(run.fields.get(station_field)) if station_field and run.fields.get(station_field) else None
        if station is not None and not station.deleted:
            this = resource_path("run", run.id)
            queue = station.fields.get("queue") or []
            if this in queue:
                Resource.update(station, {"queue": [r for r in queue if r != this]}, work.actor)
        return
    if run.fields.get("operation") != "printing" and run.fields.get("status") == "queued" and all(
            _previous_complete(work, p) for p in prints):
        Resource.update(run, {"status": "queued-work-ready"}, work.actor)


def _previous_complete(work, each):
    piece = work.get(each.fields.get("piece"))
    if not isinstance(piece, Piece):
        return True
    position = each.fields.get("process_step_position") or 0
    return all(p.fields.get("status") == "complete" for p in work.piece_prints(piece)
               if (p.fields.get("process_step_position") or 0) < position)


def scrap(work, transformation, pairs):
    for each, piece in pairs:
        _retire_rest(work, piece)
        piece.trigger_event(Piece.Scrapped, changes={"status": "cancelled", "scrapped": True}, actor=work.actor)
    return {}


def redo(work, transformation, pairs):
    scheduled = []
    for each, piece in pairs:
        fields = {k: v for k, v in each.fields.items() if k not in ("remanufactured_to",)}
        position = fields.get("process_step_position") or 0
        fields.update(name=f"{piece.fields.get('name')} - {position + 1} (redo)", status="created", run=None,
                      order_step_status="new", remanufactured_to=None)
        again = work.add(Print.create(uuid5(transformation.id, f"redo:{each.id}"), fields, each.bureau, work.actor))
        work.new_prints.setdefault(resource_path("piece", piece.id), []).append(again)
        scheduled.append(again)
        each.trigger_event(Print.RedoScheduled, changes={
            "remanufactured_to": str(again.id),
            **({} if each.fields.get("status") in ("error", "complete") else {"status": "cancelled"})},
            actor=work.actor)
        this = resource_path("print", again.id)
        Resource.update(piece, {"current_print": this, "current_step_position": position, "status": "confirmed"
                                if position == 0 else f"queued-for-{fields.get('operation')}"}, work.actor)
        work.plan_entry(piece, [this])
    return _separately(transformation, scheduled)


def change_workflow(work, transformation, pairs):
    steps_paths = transformation.fields["process_steps"]
    first = pairs[0][1]
    source = work.get(first.fields.get("workflow")) if first.fields.get("workflow") else None
    source_fields = source.fields if isinstance(source, Workflow) else {}
    new_id = uuid5(transformation.id, "custom-workflow")
    path = resource_path("workflow", new_id)
    wanted = f"{source_fields.get('name') or 'Workflow'} (rework {str(transformation.id)[:8]})"
    fields = {"name": _free_name(work, wanted, transformation.bureau, []), "process_steps": steps_paths,
              "description": f"Made by {resource_path('run-transformation', transformation.id)}",
              "type": source_fields.get("type") or "additive_manufacturing",
              "materials": source_fields.get("materials"),
              "source_workflow": source_fields and resource_path("workflow", source.id) or None,
              "pieces": [resource_path("piece", piece.id) for _, piece in pairs], "labels": [], "integrated": False}
    fields, extra, _ = Workflow.on_create(work, new_id, fields)
    workflow = work.add(Workflow._create(Workflow.Created, id=new_id, fields=fields, bureau=transformation.bureau,
                                         actor=work.actor))
    for step in extra:
        work.add(step)
    steps = workflow.step_facts(work.get)
    schedule = {}
    for each, piece in pairs:
        done = 0
        for p in work.piece_prints(piece):
            if p.fields.get("status") != "complete" or (p.fields.get("process_step_position") or 0) != done:
                break
            done += 1
        remaining = [s for s in steps if s[0] >= done]
        if not remaining:
            raise ReworkFailed(NO_STEPS_LEFT.format(done, resource_path("piece", piece.id)))
        _retire_rest(work, piece, source_run=transformation.fields.get("source_run"))
        made = _new_prints(work, piece=piece, steps=remaining, workflow=path)
        line_item_workflow = (work.plan(piece).fields.get("workflow") if work.plan(piece) is not None else None)
        head = made[0]
        piece.trigger_event(Piece.WorkflowChanged, changes={"workflow": path, "reworked": path != line_item_workflow},
                            actor=work.actor)
        Resource.update(piece, {"current_print": resource_path("print", head.id), "current_step_position": done,
                                "status": "confirmed" if done == 0 else
                                f"queued-for-{head.fields.get('operation')}"}, work.actor)
        work.plan_entry(piece, [resource_path("print", p.id) for p in made])
        for p in made:
            schedule.setdefault(str(p.fields["process_step_position"]), []).append(resource_path("print", p.id))
    return {"runs": schedule, "custom_workflow": path}


def flag_non_conformance(work, transformation, pairs):
    station = review_station(work.app, transformation.bureau)
    if station is None:
        raise ReworkFailed(NO_REVIEW_STATION)
    review_type = station.fields.get("post_processor_type")
    made = []
    for each, piece in pairs:
        fields = {k: v for k, v in each.fields.items() if k not in ("remanufactured_to",)}
        fields.update(name=f"{piece.fields.get('name')} - review", status="created", run=None, process_step=None,
                      workstation_type_uri=review_type, operation="post-processing", order_step_status="new",
                      remanufactured_to=None, _review_of=resource_path("print", each.id))
        review = work.add(Print.create(uuid5(transformation.id, f"review:{each.id}"), fields, each.bureau,
                                       work.actor))
        work.new_prints.setdefault(resource_path("piece", piece.id), []).append(review)
        _leave_run(work, each, source_run=transformation.fields.get("source_run"))
        Resource.update(each, {"status": "created"}, work.actor)
        this = resource_path("print", review.id)
        piece.trigger_event(Piece.NonConformanceFlagged, changes={
            "current_print": this, "status": "queued-for-post-processing"}, actor=work.actor)
        work.plan_entry(piece, [this])
        made.append(this)
    return {"review": made, "station": resource_path("post-processor", station.id)}


def review_station(app, bureau):
    """The bureau's post-processor for non-conformance review (of a post-processor type with that special_type)."""
    ctx = {"bureau": bureau}
    for kind in app.referencing("post-processor-type", "special_type", NCR, ctx):
        for found in app.referencing("post-processor", "post_processor_type", kind["uri"], ctx):
            station = app.repository.get(UUID(parse_uri(found["uri"])[1]))
            if isinstance(station, PostProcessor) and not station.deleted:
                return station
    return None


RULES = {"remanufacture": remanufacture, "scrap": scrap, "redo": redo, "change_workflow": change_workflow,
         "flag_non_conformance": flag_non_conformance}


def run_id(transformation_id, key):
    return uuid5(NAMESPACE_URL, f"stratum:production:run-transformation:{transformation_id}:run:{key}")

