"""Flow F1 (production.md §12, orders.md §2.1): production follows the orders feed and turns confirmed line items
into pieces and prints.

Production keeps, per line item, a `LineItemPlan`: its copy of the line item's fields as the feed told them, and
what it made of them. Each feed batch is applied in one transaction together with production's tracked position in
the orders feed (an eventsourcing tracking record), so a lost, repeated or reordered message never loses or doubles
a piece: a batch at or below the tracked position changes nothing, a gap cannot happen (the follower always pulls
from its own position), and ids are derived from the line item (uuid5), so even a replay makes the same pieces.

Rules:
* a line item reaching `confirmed` (or later) gets `quantity` pieces, copy 1..N, named from its model, each with one
  print per process step of its workflow (status `created`, no run);
* a workflow change re-plans the prints that have not started (deleted, the new workflow's created);
* a quantity change after confirmation plans the extra copies, or cancels the highest copies not started;
* cancelling the line item cancels its pieces not yet in runs, with their prints (deleting it deletes them all);
* the workflows the line items use learn their `usage_state`.
"""
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from services.production.domain import FINISHED, PROCESSING, Piece, Print, Workflow
from shared.resource import Resource
from shared.topics import name_aggregate
from shared.uris import parse_uri, resource_path

PLANNED_STATUSES = PROCESSING | {"complete"}


class LineItemPlan(Aggregate):
    """Production's view of one line item (from the orders feed) and the pieces it made for it."""

    class Started(Aggregate.Created):
        line_item: str

    class Noted(Aggregate.Event):
        changes: dict
        bureau: str | None

        def apply(self, plan):
            plan.fields.update(self.changes)
            if self.bureau:
                plan.bureau = self.bureau

    class Planned(Aggregate.Event):
        pieces: list
        workflow: str | None
        generation: int

        def apply(self, plan):
            plan.pieces = list(self.pieces)
            plan.workflow = self.workflow
            plan.generation = self.generation

    def __init__(self, line_item):
        self.line_item = line_item
        self.fields = {}
        self.bureau = None
        self.pieces = []  # [{"piece": path, "prints": [paths]}]
        self.workflow = None
        self.generation = 0

    @staticmethod
    def id_for(line_item_path):
        return uuid5(NAMESPACE_URL, f"stratum:production:plan:{line_item_path}")

    @classmethod
    def start(cls, line_item_path):
        return cls._create(cls.Started, id=cls.id_for(line_item_path), line_item=line_item_path)

    def note(self, changes, bureau=None):
        self.trigger_event(self.Noted, changes=changes, bureau=bureau)

    def planned(self, pieces, workflow):
        self.trigger_event(self.Planned, pieces=pieces, workflow=workflow, generation=self.generation + 1)


class WorkflowUsage(Aggregate):
    """The line items using one workflow and their statuses (for `usage_state`)."""

    class Started(Aggregate.Created):
        workflow: str

    class Noted(Aggregate.Event):
        line_item: str
        status: str | None  # None: no longer uses it

        def apply(self, usage):
            if self.status is None:
                usage.line_items.pop(self.line_item, None)
            else:
                usage.line_items[self.line_item] = self.status

    def __init__(self, workflow):
        self.workflow = workflow
        self.line_items = {}

    @staticmethod
    def id_for(workflow_path):
        return uuid5(NAMESPACE_URL, f"stratum:production:workflow-usage:{workflow_path}")

    @classmethod
    def start(cls, workflow_path):
        return cls._create(cls.Started, id=cls.id_for(workflow_path), workflow=workflow_path)

    def note(self, line_item, status):
        if self.line_items.get(line_item) != status:
            self.trigger_event(self.Noted, line_item=line_item, status=status)

    @property
    def state(self):
        statuses = [s for s in self.line_items.values()]
        if any(s in PROCESSING for s in statuses):
            return "active"
        if statuses:
            return "can_be_safely_archived"
        return "inactive"


name_aggregate(LineItemPlan, "production/line-item-plan")
name_aggregate(WorkflowUsage, "production/workflow-usage")


def apply_event(batch, event, describe_model):
    """One public orders event (shared.application feed shape)."""
    if event.get("resource") != "line-item":
        return
    path = resource_path("line-item", event["uuid"])
    plan = batch.get(LineItemPlan.id_for(path)) or batch.add(LineItemPlan.start(path))
    before_workflow, before_quantity = plan.fields.get("workflow"), plan.fields.get("quantity")
    if event["kind"] == "deleted":
        plan.note({"_deleted": True})
    else:
        plan.note(dict(event.get("fields") or {}), event.get("bureau") if event["kind"] == "created" else None)
    reconcile(batch, plan, before_workflow, describe_model, plan.fields.get("quantity") != before_quantity)


def reconcile(batch, plan, before_workflow, describe_model, quantity_changed=False):
    fields = plan.fields
    status = None if fields.get("_deleted") else fields.get("status")
    workflow = fields.get("workflow")
    if before_workflow and before_workflow != workflow:
        _note_usage(batch, before_workflow, plan.line_item, None)
    if workflow:
        _note_usage(batch, workflow, plan.line_item, status)
    if fields.get("_deleted"):
        _retire(batch, plan, delete=True)
    elif status == "cancelled":
        _retire(batch, plan, delete=False)
    elif status in PLANNED_STATUSES and not plan.pieces:
        _make_pieces(batch, plan, describe_model)
    elif plan.pieces and plan.workflow != workflow and status not in FINISHED:
        _replan(batch, plan)
    if plan.pieces and status in PROCESSING and quantity_changed:
        _requantify(batch, plan, describe_model)
    if plan.pieces and status and status != "cancelled":
        _follow_status(batch, plan, status)


def _follow_status(batch, plan, status):
    """A piece shows its line item's status (`line_item_status`, a join the map lists as read-only)."""
    for entry in plan.pieces:
        piece = batch.path(entry["piece"])
        if isinstance(piece, Piece) and not piece.deleted and piece.fields.get("line_item_status") != status:
            Resource.update(piece, {"line_item_status": status}, None)


def _note_usage(batch, workflow_path, line_item, status):
    usage_id = WorkflowUsage.id_for(workflow_path)
    usage = batch.get(usage_id) or batch.add(WorkflowUsage.start(workflow_path))
    usage.note(line_item, status)
    workflow = batch.path(workflow_path)
    if isinstance(workflow, Workflow) and not workflow.deleted:
        workflow.note_usage(usage.state)


def _workflow_steps(batch, workflow_path):
    workflow = batch.path(workflow_path) if workflow_path else None
    if not isinstance(workflow, Workflow) or workflow.deleted:
        return []
    return workflow.step_facts(batch.path)


def _make_pieces(batch, plan, describe_model):
    quantity = int(plan.fields.get("quantity") or 0)
    made = _new_pieces(batch, plan, describe_model, range(1, quantity + 1))
    plan.planned(made, plan.fields.get("workflow"))


def _new_pieces(batch, plan, describe_model, copies):
    """Pieces `copies` of the line item, each with a print per step of its workflow: [{"piece", "prints"}]."""
    fields = plan.fields
    line_item_id = UUID(parse_uri(plan.line_item)[1])
    model = fields.get("model")
    base = describe_model(model) if model else None
    base = base or fields.get("name") or f"Line item {str(line_item_id)[:8]}"
    steps = _workflow_steps(batch, fields.get("workflow"))
    made = []
    for copy in copies:
        piece_id = uuid5(line_item_id, f"piece:{copy}")
        piece_fields = {
            "name": f"{base} {copy}", "auto_name": True, "line_item": plan.line_item, "copy": copy,
            "order": fields.get("order"), "model": model, "material": (fields.get("materials") or {}).get("base"),
            "workflow": fields.get("workflow"), "reworked": False, "status": "confirmed",
            "line_item_status": fields.get("status"), "priority": fields.get("priority"),
            "type": fields.get("type") or "product", "layer_thickness": fields.get("layer_thickness"),
            "remanufactured_to": None, "current_print": None, "current_step_position": 0,
        }
        piece = batch.add(Piece.create(piece_id, piece_fields, plan.bureau, None))
        prints = _make_prints(batch, plan, piece, steps, plan.generation + 1)
        Resource.update(piece, {"current_print": prints[0] if prints else None}, None)
        made.append({"piece": resource_path("piece", piece_id), "prints": prints})
    return made


def _requantify(batch, plan, describe_model):
    """LineItemQuantityChanged after confirmation (orders.md §1.3): more pieces (the next copies, with the current
    workflow's prints), or fewer: the highest copies whose prints have not started are cancelled with their prints.
    The orders service refuses a quantity below the pieces already in runs; a run made meanwhile keeps its piece.
    Run only when the feed changed the quantity; a piece replaced by another (remanufactured, `incomplete`) does
    not count, its replacement does."""
    wanted = int(plan.fields.get("quantity") or 0)
    pieces = [(entry, batch.path(entry["piece"])) for entry in plan.pieces]
    live = [(entry, piece) for entry, piece in pieces
            if isinstance(piece, Piece) and not piece.deleted and piece.fields.get("status") not in (
                "cancelled", "incomplete") and not piece.fields.get("remanufactured_to")]
    if len(live) < wanted:
        last = max([piece.fields.get("copy") or 0 for _, piece in pieces if isinstance(piece, Piece)] or [0])
        made = _new_pieces(batch, plan, describe_model, range(last + 1, last + 1 + wanted - len(live)))
        plan.planned([*plan.pieces, *made], plan.fields.get("workflow"))
    elif len(live) > wanted:
        surplus = len(live) - wanted
        for entry, piece in sorted(live, key=lambda pair: -(pair[1].fields.get("copy") or 0)):
            if surplus == 0:
                break
            prints = [p for p in (batch.path(path) for path in entry["prints"]) if isinstance(p, Print)]
            if piece.fields.get("status") != "confirmed" or any(p.started for p in prints if not p.deleted):
                continue
            for each in prints:
                if not each.deleted and each.fields.get("status") != "cancelled":
                    Resource.update(each, {"status": "cancelled"}, None)
            Resource.update(piece, {"status": "cancelled"}, None)
            surplus -= 1


def _make_prints(batch, plan, piece, steps, generation, skip_positions=()):
    fields = plan.fields
    paths = []
    for position, step_path, workstation_type, operation in steps:
        if position in skip_positions:
            continue
        print_id = uuid5(piece.id, f"print:{generation}:{position}")
        print_fields = {
            "name": f"{piece.fields['name']} - {position + 1}", "piece": resource_path("piece", piece.id),
            "line_item": plan.line_item, "order": fields.get("order"), "copy": piece.fields.get("copy"),
            "process_step": step_path, "process_step_position": position, "workflow": fields.get("workflow"),
            "workstation_type_uri": workstation_type, "operation": operation, "status": "created", "run": None,
            "order_step_status": "new", "type": piece.fields.get("type"), "remanufactured_to": None,
            "piece_priority": piece.fields.get("priority"), "layer_thickness": fields.get("layer_thickness"),
            "base_material": _uuid_of((fields.get("materials") or {}).get("base")),
        }
        batch.add(Print.create(print_id, print_fields, plan.bureau, None))
        paths.append(resource_path("print", print_id))
    return paths


def _uuid_of(path):
    try:
        return parse_uri(path)[1] if path else None
    except ValueError:
        return None


def _replan(batch, plan):
    """A workflow change: prints not started are deleted and the new workflow's made (a started print keeps its
    step; the new workflow's print at that position is not made)."""
    steps = _workflow_steps(batch, plan.fields.get("workflow"))
    made = []
    for entry in plan.pieces:
        piece = batch.path(entry["piece"])
        if not isinstance(piece, Piece) or piece.deleted or piece.fields.get("status") == "cancelled":
            made.append(entry)
            continue
        kept, started_positions = [], set()
        for print_path in entry["prints"]:
            each = batch.path(print_path)
            if not isinstance(each, Print) or each.deleted:
                continue
            if each.started:
                kept.append(print_path)
                started_positions.add(each.fields.get("process_step_position"))
            else:
                each.delete(None)
        Resource.update(piece, {"workflow": plan.fields.get("workflow"), "reworked": False}, None)
        new = _make_prints(batch, plan, piece, steps, plan.generation + 1, started_positions)
        prints = kept + new
        if not kept:
            Resource.update(piece, {"current_print": new[0] if new else None, "current_step_position": 0}, None)
        made.append({"piece": entry["piece"], "prints": prints})
    plan.planned(made, plan.fields.get("workflow"))


def _retire(batch, plan, delete):
    """Cancelled (orders.md §2.1 "cancels pieces not yet in runs"): a piece none of whose prints has started is
    cancelled with its prints; a piece already in a run (or complete) goes on as it is. Deleted: all of them go."""
    for entry in plan.pieces:
        prints = [p for p in (batch.path(path) for path in entry["prints"]) if isinstance(p, Print) and not p.deleted]
        piece = batch.path(entry["piece"])
        if not delete and any(p.started for p in prints):
            continue
        for each in prints:
            if delete:
                each.delete(None)
            elif each.fields.get("status") != "cancelled":
                Resource.update(each, {"status": "cancelled"}, None)
        if not isinstance(piece, Piece) or piece.deleted:
            continue
        if delete:
            piece.delete(None)
        elif piece.fields.get("status") not in ("complete", "cancelled"):
            Resource.update(piece, {"status": "cancelled", "line_item_status": "cancelled"}, None)
