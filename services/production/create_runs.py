"""`/create-runs/` and `/packing-process/` (production.md §2.2, §4.12, flow F2): a printing run for the given pieces on
a printer, packed on its plate, with every downstream run its pieces' workflows need.

POST /create-runs/ checks at once what can be checked (§2.2 step 1, each a 400 naming the problem): the primary
workstation is a printer the caller can see; every piece is the caller's, in production, its line item confirmed or
printing, its current print at a step of the printer's type and in no run yet; models are all given or all absent;
the pieces' materials are the printer type's. It stores the request `pending` (RunCreationRequested) and asks for the
saga (services.production.create_runs_job), which moves it to `processing` and then:
1. packs the pieces on the printer type's plate with its `build_packer_type` (pack2d, or pack3d for powder-bed
   machines; `user_managed`, `do_build_volume_check: false` or pieces without models skip the packing), through a
   /layout/ of the pieces' current prints, recorded in a /packing-process/ of its own;
2. creates the printing run of the fitted pieces (`pieces_locked` = `locked`, the priority, `run_name`), which keeps
   its packing: `layout` (positions and picture);
3. with `on_packing_process_failure: split-builds`, packs what did not fit on a new plate, and again, until nothing
   is left or a plate takes nothing more (a piece too large for an empty plate stays unfitted);
4. for each later step of the pieces' workflows, in step order, infills the open (unlocked, waiting) runs of the
   step's workstation type or creates new ones, by the type's batching strategy (services.production.batching);
5. ends `complete` with `primary_run`, `resulting_runs`, `unfitted_pieces` and notes, or `error` with notes.
Event names: RunCreationRequested, RunCreationStarted, RunCreationPiecesUnfitted, RunCreationCompleted,
RunCreationFailed; PackingRequested, PackingStarted, PackingUpdated (the plate packed), PackingCompleted, PackingFailed.

POST /packing-process/ {pieces, printer, on_failure, on_success, do_build_volume_check} is the same saga asked from
the packing side: it stores the packing process and, with it, the create-runs it starts (`create_runs`); its
`status` and `run` follow that saga's first plate. The saga's later plates get packing processes of their own.
"""
from uuid import NAMESPACE_URL, UUID, uuid5

from services.production.domain import Piece, Print, Printer, PrinterType
from services.production.runs import LINE_ITEMS_NOT_READY, MATERIAL_MISMATCH, MIXED_MODELS
from shared.errors import InvalidPayload
from shared.resource import Resource
from shared.uris import normalise, parse_uri, resource_path

CREATE_RUNS_REQUESTED = "create_runs_requested"
NOT_FOUND = "The requested runs creation process or related object cannot be found."
NOT_A_PRINTER = ("primary_workstation must name a printer of your bureau (a printing run is the only primary run "
                 "Stratum creates).")
PRINTER_INVALID = "printer must name a printer of your bureau."
PIECES_REQUIRED = "pieces must name at least one piece."
PIECE_INVALID = "pieces must name pieces of your bureau: {} is not one."
PIECE_FINISHED = "{} is {}: only a piece waiting for its printing step gets a run."
PIECE_NOT_AT_TYPE = "The current step of {} is not done on this printer's type ({}): it cannot join this run."
PIECE_IN_RUN = "{} is in a run already: its current print is in {}."
PACKERS = ("pack2d", "pack3d")  # the others (user_managed: no automatic placement) skip the packing
INTERNAL = {"platform_admin": True}


def id_for(parent_id, key):
    """The uuid of something the saga makes (a packing process, a layout, a run), the same on every retry."""
    return uuid5(NAMESPACE_URL, f"stratum:production:create-runs:{parent_id}:{key}")


def _path(value, kind):
    try:
        path = normalise(value)
        found = parse_uri(path)[0]
    except (TypeError, ValueError):
        return None
    return path if found == kind else None


def _visible(unit, path, cls):
    found = unit.get(path) if path else None
    if not isinstance(found, cls) or found.deleted:
        return None
    if unit.bureau and found.bureau and found.bureau != unit.bureau and not unit.ctx.get("platform_admin"):
        return None
    return found


def check_request(unit, pieces, printer_value, field="primary_workstation"):
    """§2.2 step 1: the printer, its type and the pieces (in the order given, once each); 400s naming the problem."""
    printer = _visible(unit, _path(printer_value, "printer"), Printer)
    if printer is None:
        raise InvalidPayload(NOT_A_PRINTER if field == "primary_workstation" else PRINTER_INVALID, field=field)
    type_path = printer.fields.get("printer_type")
    printer_type = _visible(unit, type_path, PrinterType)
    if not pieces:
        raise InvalidPayload(PIECES_REQUIRED, field="pieces")
    found, seen = [], set()
    for value in pieces:
        path = _path(value, "piece")
        piece = _visible(unit, path, Piece)
        if piece is None:
            raise InvalidPayload(PIECE_INVALID.format(value), field="pieces")
        if path in seen:
            continue
        seen.add(path)
        status = piece.fields.get("status")
        if status in ("complete", "cancelled", "incomplete", "error"):
            raise InvalidPayload(PIECE_FINISHED.format(path, status), field="pieces")
        current = _visible(unit, piece.fields.get("current_print"), Print)
        if current is None or current.fields.get("workstation_type_uri") != type_path:
            raise InvalidPayload(PIECE_NOT_AT_TYPE.format(path, type_path), field="pieces")
        if current.fields.get("run"):
            raise InvalidPayload(PIECE_IN_RUN.format(path, current.fields["run"]), field="pieces")
        if not piece.fields.get("_remanufactured_from") and piece.fields.get("line_item_status") not in (
                "confirmed", "printing"):
            raise InvalidPayload(LINE_ITEMS_NOT_READY, field="pieces")
        found.append(piece)
    if len({bool(p.fields.get("model")) for p in found}) > 1:
        raise InvalidPayload(MIXED_MODELS, field="pieces")
    allowed = set((printer_type.fields.get("materials") if printer_type else None) or [])
    used = {p.fields.get("material") for p in found} - {None}
    if allowed and not used <= allowed:
        raise InvalidPayload(MATERIAL_MISMATCH, field="pieces")
    return printer, printer_type, [resource_path("piece", p.id) for p in found]


class _Promise(Resource):
    """pending → processing → complete | error, each move once."""

    class StatusChanged(Resource.Updated):
        field = "status"

    class Started(StatusChanged):
        value = "processing"

    class Completed(StatusChanged):
        value = "complete"

    class Failed(StatusChanged):
        value = "error"

    @property
    def waiting(self):
        return not self.deleted and self.fields.get("status") in ("pending", "processing")

    def start(self):
        if self.fields.get("status") == "pending":
            self.trigger_event(self.Started, changes={"status": "processing"}, actor=None)

    def fail(self, notes, at=None, made=()):
        if self.waiting:
            self.trigger_event(self.Failed, changes={"status": "error", "notes": notes, **self._finished(at, made)},
                               actor=None)

    def _finished(self, at, made):
        return {}


class CreateRuns(_Promise):
    """production.md §2.2."""

    resource = "create-runs"
    display_name = "RunCreation"  # the map's event names: RunCreationRequested, …Started, …Completed, …Failed

    class Requested(Resource.Created):
        pass

    class PiecesUnfitted(Resource.Updated):
        field = "unfitted_pieces"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return cls._create(cls.Requested, id=id, fields=fields, bureau=bureau, actor=actor)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        return cls.requested(unit, fields), [], {}

    @classmethod
    def requested(cls, unit, fields, packing_process=None):
        printer, _, pieces = check_request(unit, fields.get("pieces"), fields.get("primary_workstation"))
        return dict(fields, pieces=pieces, primary_workstation=resource_path("printer", printer.id),
                    printer_name=printer.fields.get("name"), pieces_count=len(pieces), status="pending",
                    primary_run=None, resulting_runs=[], resulting_runs_count=0, unfitted_pieces=[], notes=None,
                    user=unit.actor, finished=None, _packing_process=packing_process)

    @classmethod
    def follow_ups(cls, verb, result, payload):
        return [(CREATE_RUNS_REQUESTED, {"create_runs": result["uri"]})] if verb == "create" else []

    def unfitted(self, pieces):
        if self.waiting and list(pieces) != list(self.fields.get("unfitted_pieces") or []):
            self.trigger_event(self.PiecesUnfitted, changes={"unfitted_pieces": list(pieces)}, actor=None)

    def complete(self, primary_run, resulting_runs, unfitted, notes, at):
        if self.waiting:
            self.trigger_event(self.Completed, changes={
                "status": "complete", "primary_run": primary_run, "resulting_runs": list(resulting_runs),
                "resulting_runs_count": len(resulting_runs), "unfitted_pieces": list(unfitted),
                "notes": notes or None, "finished": at}, actor=None)

    def _finished(self, at, made):
        """A failed saga lists the runs it made or infilled before the failure (they stay: nothing is undone)."""
        return {"finished": at, "resulting_runs": list(made), "resulting_runs_count": len(made)}


class PackingProcess(_Promise):
    """production.md §4.12: one plate's packing for a printer. Stratum extensions, read-only: `layout` (the /layout/
    holding the positions and the picture), `fitted_pieces`, `unfitted_pieces`, `fill_percentage`, `notes`."""

    resource = "packing-process"
    display_name = "Packing"  # PackingRequested, PackingStarted, PackingCompleted, PackingFailed

    class Requested(Resource.Created):
        pass

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return cls._create(cls.Requested, id=id, fields=fields, bureau=bureau, actor=actor)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """A client's packing process starts the create-runs saga that does the packing (stored with it)."""
        printer, _, pieces = check_request(unit, fields.get("pieces"), fields.get("printer"), field="printer")
        saga_id = id_for(new_id, "saga")
        saga_fields = CreateRuns.requested(unit, {
            "pieces": pieces, "primary_workstation": resource_path("printer", printer.id), "priority": 65,
            "do_build_volume_check": fields.get("do_build_volume_check", True), "locked": True,
            "on_packing_process_failure": fields.get("on_failure") or "ignore",
            "on_packing_process_success": fields.get("on_success") or "silent"},
            packing_process=resource_path(cls.resource, new_id))
        saga = CreateRuns.create(saga_id, saga_fields, unit.bureau, unit.actor)
        fields = dict(fields, pieces=pieces, printer=resource_path("printer", printer.id), status="pending",
                      create_runs=resource_path(CreateRuns.resource, saga_id), run=None, layout=None,
                      fitted_pieces=[], unfitted_pieces=[], fill_percentage=None, notes=None)
        return fields, [saga], {"create_runs": resource_path(CreateRuns.resource, saga_id)}

    @classmethod
    def follow_ups(cls, verb, result, payload):
        return [(CREATE_RUNS_REQUESTED, {"create_runs": result["create_runs"]})] if verb == "create" else []

    def packed(self, layout, fitted, unfitted, fill, notes=None):
        if self.waiting:
            self.trigger_event(self.Updated, changes={
                "layout": layout, "fitted_pieces": list(fitted), "unfitted_pieces": list(unfitted),
                "fill_percentage": fill, "notes": notes}, actor=None)

    def complete(self, run):
        if self.waiting:
            self.trigger_event(self.Completed, changes={"status": "complete", "run": run}, actor=None)


def saga_uuid(path):
    return UUID(parse_uri(path)[1])
