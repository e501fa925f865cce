"""Runs and what they move (production.md §1.1–1.3, §2.1, §2.5, flow F3): a run gathers prints of one workstation
type; its status moves along the §1.1 table, and each move carries its prints, their pieces, the workstation's
queue, the downstream runs waiting on these prints and the run's actuals along, in the same transaction (they all
live in production's store). The orders service learns the pieces' progress from production's feed
(services.orders.progress), never from here.

Statuses:
* a new run is `queued` (no scheduler estimates yet: `calculating` is reachable by PUT, the table's re-estimate);
* `queued` → `in-progress` needs every print's previous-step print complete (a printing run has none), else 400
  "All the previous steps…" unless `force`; a downstream run whose upstream prints all complete becomes
  `queued-work-ready` by itself (RunBecameWorkReady);
* → `in-progress` needs an exact workstation (printer / post-processor) with fewer than `in_progress_max` runs in
  progress (400 "The system is busy printing…", force or not);
* → `complete` needs what the run's process step requires (ProcessStep.check_completion: notes / success /
  tracking_id / upload given with the PUT);
* any other edge outside the table is 409 "The requested status transformation is not allowed."; `force` allows
  the table's force-only edges (calculated → in-progress, error → complete) and skips the previous-steps check.
"""
from datetime import datetime, timezone
from uuid import NAMESPACE_URL, uuid5

from services.production.domain import OPERATIONS, Piece, PostProcessor, Print, Printer, ProcessStep
from shared.errors import Conflict, InvalidPayload
from shared.resource import Resource
from shared.uris import normalise, parse_uri, resource_path

# -- the reference's texts (api-reference L20853–20857) ---------------------------------------------------------------
MIXED_MODELS = "Run cannot consist of pieces with models and without models at the same time."
BUSY = "The system is busy printing. Please end the current process first."
LINE_ITEMS_NOT_READY = ("The requested prints do not have their associated line_items in either confirmed or printing "
                        "state.")
MIXED_TYPES = "The requested prints do not have same process types belonging to process steps."
PREVIOUS_STEPS = "All the previous steps for the order should be completed before we can process these prints."
NOT_ALLOWED = "The requested status transformation is not allowed."
# Stratum's own texts, where the reference gives none
PRINTS_INVALID = "prints must name prints of your bureau that are not cancelled."
PRINTS_REQUIRED = "A run needs at least one print."
PRINT_IN_RUN = "A print can be in one run only: {} is in another run."
PIECES_LOCKED = "This run's pieces are locked: no prints can be added."
NEW_RUN_STATUS = "A new run's status is set by the system; change it once the run exists."
NO_WORKSTATION = "A run starts on its workstation: give it a printer (or post-processor) first."
RUN_STARTED = "A run whose prints have started cannot be deleted."
CANCELLED_NOTE = "Run cancelled: closed at cancellation; its prints returned to the pool."
PRINTS_FIXED = "The prints of a run that has started cannot change."
STARTED_STATION = "The workstation of a run that has started cannot change."
MATERIAL_MISMATCH = "The prints' materials are not among the printer type's materials."
WORKSTATION_MISMATCH = "{} must name a {} of your bureau matching the prints' process steps."
OPERATION_MISMATCH = "operation must be the operation of the prints' process steps ({})."

WAITING = ("calculating", "calculated", "queued", "queued-work-ready")
MOVES = {  # production.md §1.1, the recommended table; FORCED: the cells marked "force"
    "calculating": {"calculated", "error", "cancelled"},
    "calculated": {"calculating", "queued", "queued-work-ready", "cancelled"},
    "queued": {"calculating", "queued-work-ready", "in-progress", "error", "cancelled"},
    "queued-work-ready": {"calculating", "queued", "in-progress", "error", "cancelled"},
    "in-progress": {"paused", "error", "complete", "cancelled"},
    "paused": {"in-progress", "error", "complete", "cancelled"},
    "error": {"queued", "queued-work-ready", "in-progress", "cancelled"},
    "complete": set(),
    "cancelled": set(),
}
FORCED = {"calculated": {"in-progress"}, "error": {"complete"}}
LINE_ITEM_READY = {"printing": ("confirmed", "printing"),  # rule 1 as the reference words it, for printing runs;
                   # a downstream run may be made while the line item is further on (its pieces reached that step)
                   "post-processing": ("confirmed", "printing", "post-processing", "shipping"),
                   "shipping": ("confirmed", "printing", "post-processing", "shipping")}
WORKSTATION_FIELDS = {"printing": ("printer", "printer_type"), "post-processing": ("post_processor",
                                                                                  "post_processor_type"),
                      "shipping": ("shipping", "shipping")}
STATION_FIELDS = ("printer", "printer_type", "post_processor", "post_processor_type", "shipping")
INPUTS = ProcessStep.INPUTS  # given with status complete; never stored on the run
PRINTER_IN_PROGRESS_MAX = 1  # a printer prints one build at a time


def now():
    return datetime.now(timezone.utc).isoformat()


def print_status(run_status):
    """§1.3: a print in a run mirrors its run's status."""
    return "queued" if run_status in WAITING else run_status


def _path_of(value, kinds):
    try:
        path = normalise(value)
        kind = parse_uri(path)[0]
    except (TypeError, ValueError):
        return None
    return path if kind in kinds else None


def _visible(unit, path, kind):
    found = unit.get(path) if path else None
    if not isinstance(found, Resource) or found.deleted or found.resource != kind:
        return None
    if unit.bureau and found.bureau and found.bureau != unit.bureau and not unit.ctx.get("platform_admin"):
        return None
    return found


class Run(Resource):
    """production.md §2.1."""

    resource = "run"
    private_fields = ("waiting_on",)  # the upstream prints not complete yet (see _downstream_ready)

    class StatusChanged(Resource.Updated):
        field = "status"

    class Started(StatusChanged):
        value = "in-progress"

    class Paused(StatusChanged):
        value = "paused"

    class Completed(StatusChanged):
        value = "complete"

    class Failed(StatusChanged):
        value = "error"

    class Cancelled(StatusChanged):
        value = "cancelled"

    class BecameWorkReady(StatusChanged):
        value = "queued-work-ready"

    class PrintsChanged(Resource.Updated):
        field = "prints"

    class PriorityChanged(Resource.Updated):
        field = "priority"

    class LockChanged(Resource.Updated):
        field = "pieces_locked"

    # -- commands -----------------------------------------------------------------------------------------------------

    @classmethod
    def on_create(cls, unit, new_id, fields):
        fields = {k: v for k, v in fields.items() if k not in INPUTS and k != "force"}
        if fields.get("status") not in (None, ""):
            raise InvalidPayload(NEW_RUN_STATUS, field="status")
        prints = _prints(unit, fields.get("prints"))
        fields = _check_prints(unit, prints, fields)
        fields.update(status="queued", prints=[resource_path("print", p.id) for p in prints])
        fields.setdefault("priority", 65)
        if fields.get("priority") is None:
            fields["priority"] = 65
        if fields.get("pieces_locked") is None:
            fields["pieces_locked"] = True
        return fields, [], {}

    def update(self, changes, actor, at=None):
        """`at`: when a move really happened, for a move its machine reported (services.production.builds); now
        otherwise."""
        changes = dict(changes)
        self._at = at
        self._force = bool(changes.pop("force", False))
        self._inputs = {k: changes.pop(k) for k in INPUTS if k in changes and k != "notes"}
        if "notes" in changes:
            self._inputs["notes"] = changes["notes"]
        current, wanted = self.fields.get("status"), changes.get("status")
        if wanted is not None and wanted != current:
            allowed = MOVES.get(current, set()) | (FORCED.get(current, set()) if self._force else set())
            if wanted not in allowed:
                raise Conflict(NOT_ALLOWED)
        if "prints" in changes:
            changes["prints"] = [_uri(p, "prints") for p in changes["prints"] or []]
            if current not in WAITING and changes["prints"] != self.fields.get("prints"):
                raise InvalidPayload(PRINTS_FIXED, field="prints")
            self._prints_before = list(self.fields.get("prints") or [])
            added = set(changes["prints"]) - set(self._prints_before)
            if added and self.fields.get("pieces_locked", True) and changes.get("pieces_locked", True):
                raise InvalidPayload(PIECES_LOCKED, field="prints")
        moved = {k for k in STATION_FIELDS if k in changes and changes[k] != self.fields.get(k)}
        if moved:
            if current not in WAITING:
                raise InvalidPayload(STARTED_STATION, field=sorted(moved)[0])
            self._fields_before = dict(self.fields)
        for key in ("operation", "orders"):
            if key in changes and changes[key] != self.fields.get(key):
                raise InvalidPayload(f"'{key}' follows the run's prints.", field=key)
        super().update(changes, actor)

    def check_deletable(self, unit):
        if self.fields.get("status") not in WAITING:
            raise InvalidPayload(RUN_STARTED)
        for each in self._prints(unit):
            if each.fields.get("status") not in ("queued", "created"):
                raise InvalidPayload(RUN_STARTED)

    # -- what a change carries along ----------------------------------------------------------------------------------

    def consequences(self, unit):
        if not self.pending_events:
            return []
        touched = Touched()
        path = resource_path(self.resource, self.id)
        if self.deleted:
            for each in self._prints(unit):
                _detach(touched, unit, each)
            _leave_queue(touched, unit, self.fields, path)
            return touched.changed(self)
        created = any(isinstance(e, Resource.Created) for e in self.pending_events)
        updates = [e for e in self.pending_events if isinstance(e, Resource.Updated)]
        if created:
            for each in self._prints(unit):
                _attach(touched, unit, each, path, self.fields["status"], self.fields["operation"])
            _join_queue(touched, unit, self.fields, path)
            self._check_work_ready(unit, touched)
        if any("prints" in e.changes for e in updates) and not created:
            self._reassign(unit, touched, path)
        if getattr(self, "_fields_before", None) is not None and not created:
            self._reassign_station(unit, touched, path)
        moves = [e.changes["status"] for e in updates if "status" in e.changes]
        if moves:
            self._move(unit, touched, path, moves[-1])
        return touched.changed(self)

    def _prints(self, unit):
        return [p for p in (unit.get(path) for path in self.fields.get("prints") or [])
                if isinstance(p, Print) and not p.deleted]

    def _reassign(self, unit, touched, path):
        prints = _prints(unit, self.fields["prints"], allow_run=path)
        fields = _check_prints(unit, prints, dict(self.fields))
        Resource.update(self, {k: fields[k] for k in ("orders",) if k in fields}, None)
        kept = {p.id for p in prints}
        for each in prints:
            _attach(touched, unit, each, path, self.fields["status"], self.fields["operation"])
        for old in getattr(self, "_prints_before", None) or []:
            each = unit.get(old)
            if isinstance(each, Print) and each.id not in kept:
                _detach(touched, unit, each)

    def _reassign_station(self, unit, touched, path):
        """RunWorkstationAssigned: a waiting run moves to another workstation's queue (of the prints' type)."""
        before, self._fields_before = self._fields_before, None
        fields = _check_prints(unit, self._prints(unit), dict(self.fields))
        derived = {k: fields.get(k) for k in (*STATION_FIELDS, "workstation_uri", "workstation_name", "location")
                   if fields.get(k) != self.fields.get(k)}
        if derived:
            Resource.update(self, derived, None)
        _leave_queue(touched, unit, before, path)
        _join_queue(touched, unit, self.fields, path)

    def _move(self, unit, touched, path, status):
        """A status change carried to the prints, their pieces, the queue, the downstream runs and the actuals."""
        # prints retired by rework (replaced or cancelled: services.production.rework) stay as a record, unmoved
        prints = [p for p in self._prints(unit) if p.fields.get("status") != "cancelled" and not p.fields.get(
            "remanufactured_to")]
        force = getattr(self, "_force", False)
        operation = self.fields.get("operation")
        if status == "in-progress":
            workstation = _workstation(unit, self.fields)
            if workstation is None and operation != "shipping":
                raise InvalidPayload(NO_WORKSTATION, field=WORKSTATION_FIELDS[operation][0])
            if not force and not all(_previous_complete(unit, p) for p in prints):
                raise InvalidPayload(PREVIOUS_STEPS, field="status")
            if workstation is not None:
                limit = workstation.fields.get("in_progress_max") or (
                    PRINTER_IN_PROGRESS_MAX if isinstance(workstation, Printer) else 10)
                running = [r for r in workstation.fields.get("in_progress") or [] if r != path]
                if len(running) >= limit:
                    raise InvalidPayload(BUSY, field="status")
        if status == "complete":
            step = unit.get(prints[0].fields.get("process_step")) if prints else None
            if isinstance(step, ProcessStep):
                given = dict(getattr(self, "_inputs", {}))
                given.setdefault("notes", self.fields.get("notes"))
                step.check_completion(given)
        if status == "cancelled":
            for each in prints:
                _detach(touched, unit, each)
            _leave_queue(touched, unit, self.fields, path)
            actuals = RunActuals.follow(unit, self, status, getattr(self, "_at", None) or now(), len(prints))
            if actuals is not None:
                touched.add(actuals)
            return
        at = getattr(self, "_at", None) or now()
        for each in prints:
            Resource.update(each, {"status": print_status(status)}, None)
            touched.add(each)
            piece = unit.get(each.fields.get("piece"))
            if isinstance(piece, Piece) and not piece.deleted:
                _piece_follows(touched, unit, piece, each, status, operation, at)
        _track_in_progress(touched, unit, self.fields, path, status)
        actuals = RunActuals.follow(unit, self, status, at, len(prints))
        if actuals is not None:
            touched.add(actuals)
        if status == "complete":
            for each in prints:
                _downstream_ready(touched, unit, each)

    def _check_work_ready(self, unit, touched):
        """A downstream run made after its prints' previous steps completed is ready at once."""
        if self.fields.get("operation") != "printing" and self.fields.get("status") == "queued":
            prints = self._prints(unit)
            if prints and all(_previous_complete(unit, p) for p in prints):
                Resource.update(self, {"status": "queued-work-ready"}, None)


class Touched:
    """The other aggregates one run change carries along, each once."""

    def __init__(self):
        self.aggregates = {}

    def add(self, aggregate):
        self.aggregates.setdefault(aggregate.id, aggregate)
        return aggregate

    def changed(self, run):
        return [a for a in self.aggregates.values() if a.id != run.id and a.pending_events]


def _prints(unit, paths, allow_run=None):
    if not paths:
        raise InvalidPayload(PRINTS_REQUIRED, field="prints")
    prints, seen = [], set()
    for value in paths:
        path = _path_of(value, ("print",))
        each = _visible(unit, path, "print") if path else None
        if not isinstance(each, Print) or each.fields.get("status") == "cancelled" or each.fields.get(
                "remanufactured_to"):  # replaced by rework (services.production.rework): its replacement is made
            raise InvalidPayload(PRINTS_INVALID, field="prints")
        if each.fields.get("run") and each.fields["run"] != allow_run:
            raise InvalidPayload(PRINT_IN_RUN.format(path), field="prints")
        if each.id not in seen:
            seen.add(each.id)
            prints.append(each)
    return prints


def _check_prints(unit, prints, fields):
    """Rules 1, 2, 3 and 6 of production.md §2.1 on the prints of a new (or changed) run; the run's derived fields."""
    types = {p.fields.get("workstation_type_uri") for p in prints}
    if len(types) != 1:
        raise InvalidPayload(MIXED_TYPES, field="prints")
    type_path = types.pop()
    operation = OPERATIONS.get(_kind_of(type_path))
    if operation is None:  # a print of no process step (none is made so; an internal writer may)
        raise InvalidPayload(MIXED_TYPES, field="prints")
    if fields.get("operation") not in (None, operation):
        raise InvalidPayload(OPERATION_MISMATCH.format(operation), field="operation")
    pieces = [unit.get(p.fields.get("piece")) for p in prints]
    # a remanufactured piece's replacement is printed while its line item may be further on already
    statuses = {(piece.fields.get("line_item_status") if isinstance(piece, Piece) else None) for piece in pieces
                if not (isinstance(piece, Piece) and piece.fields.get("_remanufactured_from"))}
    if not statuses <= set(LINE_ITEM_READY[operation]):
        raise InvalidPayload(LINE_ITEMS_NOT_READY, field="prints")
    if len({bool(piece.fields.get("model")) for piece in pieces if isinstance(piece, Piece)}) > 1:
        raise InvalidPayload(MIXED_MODELS, field="prints")
    exact, kind = WORKSTATION_FIELDS[operation]
    workstation_type = None
    for name in {exact, kind}:
        if fields.get(name):
            fields[name] = _uri(fields[name], name)
    for name in set(sum(WORKSTATION_FIELDS.values(), ())) - {exact, kind}:
        if fields.get(name):
            raise InvalidPayload(MIXED_TYPES, field=name)
    if operation == "shipping":
        if fields.get("shipping") not in (None, type_path):
            raise InvalidPayload(WORKSTATION_MISMATCH.format("shipping", "shipping"), field="shipping")
        fields["shipping"] = type_path
    else:
        if fields.get(kind) not in (None, type_path):
            raise InvalidPayload(MIXED_TYPES, field=kind)
        fields[kind] = type_path
        workstation_type = _visible(unit, type_path, parse_uri(type_path)[0])
        if fields.get(exact):
            station = _visible(unit, fields[exact], exact.replace("_", "-"))
            if station is None or station.fields.get(kind) != type_path:
                raise InvalidPayload(WORKSTATION_MISMATCH.format(exact, exact.replace("_", " ")), field=exact)
            fields["workstation_uri"] = fields[exact]
            fields["workstation_name"] = station.fields.get("name")
            fields["location"] = station.fields.get("location")
    if workstation_type is not None:
        fields["workstation_type_name"] = workstation_type.fields.get("name")
        allowed = set(workstation_type.fields.get("materials") or [])
        used = {piece.fields.get("material") for piece in pieces if isinstance(piece, Piece)} - {None}
        if operation == "printing" and allowed and not used <= allowed:
            raise InvalidPayload(MATERIAL_MISMATCH, field="prints")
    fields["operation"] = operation
    fields["orders"] = sorted({p.fields["order"] for p in prints if p.fields.get("order")})
    return fields


def _uri(value, field):
    try:
        return normalise(value)
    except (TypeError, ValueError):
        raise InvalidPayload(f"{field} must be a URI.", field=field) from None


def _kind_of(path):
    try:
        return parse_uri(path)[0]
    except (TypeError, ValueError):
        return None


def _workstation(unit, fields, touched=None):
    exact = WORKSTATION_FIELDS.get(fields.get("operation"), ("",))[0]
    found = unit.get(fields[exact]) if exact in ("printer", "post_processor") and fields.get(exact) else None
    if touched is not None and found is not None:
        found = touched.aggregates.get(found.id, found)  # the copy this change already holds
    return found if isinstance(found, (Printer, PostProcessor)) and not found.deleted else None


def _join_queue(touched, unit, fields, path):
    """A run joins its workstation's queue by priority: ahead of the first run of a lower priority (the end of the
    queue among equals); /run-queue/ (services.production.queue) moves it anywhere after that."""
    station = _workstation(unit, fields, touched)
    queue = list(station.fields.get("queue") or []) if station is not None else []
    if station is not None and path not in queue:
        priority = fields.get("priority") if fields.get("priority") is not None else 65
        lower = [i for i, r in enumerate(queue) if isinstance(unit.get(r), Run) and (
            unit.get(r).fields.get("priority") if unit.get(r).fields.get("priority") is not None else 65) < priority]
        queue.insert(lower[0] if lower else len(queue), path)
        Resource.update(station, {"queue": queue}, None)
        touched.add(station)


def _leave_queue(touched, unit, fields, path):
    station = _workstation(unit, fields, touched)
    if station is None:
        return
    changes = {}
    for name in ("queue", "in_progress"):
        listed = station.fields.get(name) or []
        if path in listed:
            changes[name] = [r for r in listed if r != path]
    if changes:
        Resource.update(station, changes, None)
        touched.add(station)


def _track_in_progress(touched, unit, fields, path, status):
    """The workstation's `queue` holds its waiting runs, `in_progress` its running (and paused) ones."""
    station = _workstation(unit, fields, touched)
    if station is None:
        return
    queue, running = list(station.fields.get("queue") or []), list(station.fields.get("in_progress") or [])
    queue = [r for r in queue if r != path]
    running = [r for r in running if r != path]
    if status in WAITING or status == "error":
        queue.append(path)
    elif status in ("in-progress", "paused"):
        running.append(path)
    Resource.update(station, {"queue": queue, "in_progress": running}, None)
    touched.add(station)


def _attach(touched, unit, each, path, run_status, operation):
    Resource.update(each, {"run": path, "status": print_status(run_status)}, None)
    touched.add(each)
    piece = unit.get(each.fields.get("piece"))
    if isinstance(piece, Piece) and not piece.deleted and piece.fields.get("current_print") == resource_path(
            "print", each.id) and piece.fields.get("status") in ("confirmed", f"queued-for-{operation}"):
        Resource.update(piece, {"status": f"queued-for-{operation}"}, None)
        touched.add(piece)


def _detach(touched, unit, each):
    """A print leaves its run (run deleted or cancelled): back in the pool; its piece, if waiting on it, too."""
    Resource.update(each, {"run": None, "status": "created"}, None)
    touched.add(each)
    piece = unit.get(each.fields.get("piece"))
    if isinstance(piece, Piece) and not piece.deleted and piece.fields.get("current_print") == resource_path(
            "print", each.id) and piece.fields.get("status") not in ("complete", "cancelled"):
        position = each.fields.get("process_step_position") or 0
        Resource.update(piece, {"status": "confirmed" if position == 0 else
                                f"queued-for-{each.fields.get('operation')}"}, None)
        touched.add(piece)


def _piece_prints(unit, piece):
    """The piece's live prints by step (found through the line item's prints, an index kept since F1)."""
    this = resource_path("piece", piece.id)
    found = [unit.get(p["uri"]) for p in unit.app.referencing("print", "line_item", piece.fields.get("line_item"),
                                                               {"platform_admin": True})
             if p["fields"].get("piece") == this]
    return sorted([p for p in found if isinstance(p, Print) and not p.deleted and p.fields.get("status") != "cancelled"
                   and not p.fields.get("remanufactured_to")],  # replaced by rework: its replacement counts
                  key=lambda p: p.fields.get("process_step_position") or 0)


def _previous_complete(unit, each):
    """Every print of the same piece at an earlier step is complete (a printing step has none)."""
    piece = unit.get(each.fields.get("piece"))
    if not isinstance(piece, Piece):
        return True
    position = each.fields.get("process_step_position") or 0
    return all(p.fields.get("status") == "complete" for p in _piece_prints(unit, piece)
               if (p.fields.get("process_step_position") or 0) < position)


def _piece_follows(touched, unit, piece, each, status, operation, at):
    """§1.2: the piece's status from its current print's run; on complete it advances to its next step."""
    this = resource_path("print", each.id)
    position = each.fields.get("process_step_position") or 0
    changes = {}
    if status == "in-progress":
        changes = {"current_print": this, "current_step_position": position, "status": operation}
        if position == 0 and not piece.fields.get("first_run_start"):
            changes["first_run_start"] = at
    elif status == "paused":
        changes = {"status": operation}
    elif status == "error":
        changes = {"status": "error"}
    elif status in WAITING:
        if piece.fields.get("current_print") == this:
            changes = {"status": f"queued-for-{operation}"}
    elif status == "complete" and each.fields.get("_review_of"):  # a non-conformance review done (rework):
        reviewed = unit.get(each.fields["_review_of"])  # the piece is back at the step it was reviewed at
        if isinstance(reviewed, Print):
            changes = {"current_print": each.fields["_review_of"], "current_step_position": position,
                       "status": "confirmed" if position == 0 else f"queued-for-{reviewed.fields.get('operation')}"}
    elif status == "complete":
        if position == 0 and not piece.fields.get("first_run_end"):
            changes["first_run_end"] = at
        later = [p for p in _piece_prints(unit, piece) if (p.fields.get("process_step_position") or 0) > position]
        if later:
            following = later[0]
            changes.update(current_print=resource_path("print", following.id),
                           current_step_position=following.fields.get("process_step_position"),
                           status=f"queued-for-{following.fields.get('operation')}")
        else:
            changes.update(status="complete", current_print=this, current_step_position=position)
    if changes:
        Resource.update(piece, changes, None)
        touched.add(piece)


def _downstream_ready(touched, unit, each):
    """F3 step 5: the run holding this print's piece's next print becomes work-ready once all its prints' previous
    steps are complete."""
    piece = unit.get(each.fields.get("piece"))
    if not isinstance(piece, Piece):
        return
    position = each.fields.get("process_step_position") or 0
    for later in _piece_prints(unit, piece):
        if (later.fields.get("process_step_position") or 0) <= position or not later.fields.get("run"):
            continue
        run = touched.aggregates.get(_id_of(later.fields["run"])) or unit.get(later.fields["run"])
        if not isinstance(run, Run) or run.deleted or run.fields.get("status") != "queued":
            break
        touched.add(run)
        prints = [touched.aggregates.get(p.id, p) for p in run._prints(unit)]
        waiting = sum(not _previous_complete_touched(unit, touched, p) for p in prints)
        # recorded even while some are still waiting: two upstream runs completing at once both write this run, so
        # the second one's command is retried on the first's outcome and sees every upstream print complete
        Resource.update(run, {"waiting_on": waiting}, None)
        if waiting == 0:
            Resource.update(run, {"status": "queued-work-ready"}, None)
        break


def _previous_complete_touched(unit, touched, each):
    piece = unit.get(each.fields.get("piece"))
    if not isinstance(piece, Piece):
        return True
    position = each.fields.get("process_step_position") or 0
    for p in _piece_prints(unit, piece):
        p = touched.aggregates.get(p.id, p)
        if (p.fields.get("process_step_position") or 0) < position and p.fields.get("status") != "complete":
            return False
    return True


def _id_of(path):
    from uuid import UUID
    return UUID(parse_uri(path)[1])


class RunActuals(Resource):
    """production.md §2.5: what really happened in a run, opened when it goes in-progress (start time) and closed
    when it completes, or is cancelled once started (end time, durations and costs from its workstation type's rates:
    the machine time a cancelled run used is spent all the same; `system_notes` says it was cancelled). One per run
    (uuid5 of the run); a run going in-progress again (resumed, retried) keeps its first start."""

    resource = "run-actuals"

    class Closed(Resource.Updated):
        field = "end_in_progress_time"

    @staticmethod
    def id_for(run_id):
        return uuid5(NAMESPACE_URL, f"stratum:production:run-actuals:{run_id}")

    @classmethod
    def follow(cls, unit, run, status, at, piece_count):
        found = unit.get(resource_path(cls.resource, cls.id_for(run.id)))
        if status == "in-progress" and found is None:
            fields = {"run": resource_path(run.resource, run.id), "start_in_progress_time": at,
                      "end_in_progress_time": None, "consumable_cost": None, "machine_cost": None,
                      "workstation_cost": None, "total_cost": None, "additive": None, "powder": None,
                      "system_notes": None, "orders": run.fields.get("orders") or []}
            return cls._create(cls.Created, id=cls.id_for(run.id), fields=fields, bureau=run.bureau, actor=None)
        if status in ("complete", "cancelled") and isinstance(found, RunActuals) and \
                not found.fields.get("end_in_progress_time"):
            costs = _costs(unit, run, found.fields.get("start_in_progress_time"), at, piece_count)
            if status == "cancelled":  # the machine ran until now: that time is spent, the run's prints are not done
                costs["system_notes"] = CANCELLED_NOTE
            Resource.update(found, dict(costs, end_in_progress_time=at), None)
            return found
        return None


def _costs(unit, run, start, end, piece_count):
    """production.md §2.5 (inferred formulas): printing: hours × the printer type's running_cost_per_hour (×
    print_cost_scale_factor); post-processing: overhead_cost_per_run + pieces × overhead_cost_per_piece_in_run +
    minutes × cost (per minute). Material costs are not known here (run-actuals-additive brings them): null."""
    try:
        seconds = max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except (TypeError, ValueError):
        seconds = 0.0
    kind_field = WORKSTATION_FIELDS.get(run.fields.get("operation"), (None, None))[1]
    kind = unit.get(run.fields.get(kind_field)) if kind_field in ("printer_type", "post_processor_type") else None
    rates = kind.fields if isinstance(kind, Resource) else {}
    if run.fields.get("operation") == "printing":
        cost = seconds / 3600 * float(rates.get("running_cost_per_hour") or 0) * float(
            rates.get("print_cost_scale_factor") or 1)
    elif run.fields.get("operation") == "post-processing":
        cost = (float(rates.get("overhead_cost_per_run") or 0) + piece_count * float(
            rates.get("overhead_cost_per_piece_in_run") or 0) + seconds / 60 * float(rates.get("cost") or 0))
    else:
        cost = 0.0
    cost = round(cost, 2)
    return {"workstation_cost": cost, "machine_cost": cost, "consumable_cost": None, "total_cost": cost,
            "duration": round(seconds, 3)}
