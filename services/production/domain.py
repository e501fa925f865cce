"""Production aggregates: workstations and their types, workflows and their process steps (production.md §4.1–4.4,
§5), and the pieces and prints a confirmed line item becomes (§3.1–3.2, flow F1 in services.production.planning).
Fields and enums come from the catalogue; the rules live here."""
from uuid import uuid4

from shared.errors import Conflict, InvalidPayload, NotFound
from shared.resource import Resource, action
from shared.uris import normalise, parse_uri, resource_path

# -- the reference's texts ---------------------------------------------------------------------------------------------
PRINTER_TYPE_NAME_EXISTS = "The requested printer type name already exists."
PRINTER_NAME_EXISTS = "The requested printer name already exists."
POST_PROCESSOR_TYPE_NAME_EXISTS = "The requested post processor type name already exists."
POST_PROCESSOR_NAME_EXISTS = "The requested post processor name already exists."
WORKFLOW_NAME_EXISTS = "The requested workflow name already exists."
PROCESS_STEP_NAME_EXISTS = "The requested process_step name already exists."
MANUFACTURER_MISMATCH = ("There is a mismatch in the bureau and the bureau of manufacturer in the payload. Kindly make "
                         "sure the manufacturer belongs to the same bureau.")
INVALID_MATERIAL = "The value you provided for materials does not appear to be a valid material"
PRINTER_TYPE_HAS_PRINTERS = ("You cannot delete this printer_type because there are printers associated with it. "
                             "Delete all printers of this type first.")
POST_PROCESSOR_TYPE_HAS_POST_PROCESSORS = (
    "You cannot delete this post_processor_type because there are post processors associated with it. Delete all "
    "post processors of this type first.")
PRINTER_HAS_QUEUE = "Cannot delete printer that has runs in queue. Remove runs before deleting printer."
PRINTER_HAS_PRINTS = ("Cannot delete printer that has registered prints or active runs. Remove them before deleting "
                      "printer.")
POST_PROCESSOR_HAS_QUEUE = ("Cannot delete post-processor that has runs in queue. Remove runs before deleting "
                            "post-processor.")
STEP_IN_WORKFLOW = "Cannot delete process-step that belongs to a workflow."
WORKFLOW_PROCESSING = "The requested workflow is attached to line items that are processing."
RENAME_AUTO_PIECE = "Auto-generated piece names cannot be renamed."
ADDITIVE_NEEDS_PRINTER_TYPE = ("Workflow related to the line_item, with type additive_manufacturing, must have an "
                               "associated printer_type")
# Stratum's own texts, where the reference gives none (documented as 400s of the resource all the same)
TYPE_IN_WORKFLOW = "This workstation type is used by process steps; remove them from their workflows first."
WORKSTATION_TYPE_INVALID = ("workstation_type_uri must name a printer-type, post-processor-type or shipping of your "
                            "bureau.")
STEP_INVALID = "process_steps must name process steps of your bureau."
ONLY_ARCHIVE = "usage_state can only be set to 'archived'."

OPERATIONS = {"printer-type": "printing", "post-processor-type": "post-processing", "shipping": "shipping"}
# orders.md §2.1: line items at these statuses are "processing" (in production); a workflow they use is `active`
PROCESSING = frozenset({"confirmed", "printing", "post-processing", "shipping"})
FINISHED = frozenset({"complete", "cancelled"})


def _same_bureau(unit, path, kinds):
    """The aggregate at `path` when it is a live resource of one of `kinds` in the caller's bureau, else None."""
    try:
        kind = parse_uri(path)[0]
    except (TypeError, ValueError):
        return None
    if kind not in kinds:
        return None
    found = unit.get(path)
    if not isinstance(found, Resource) or found.deleted or found.resource != kind:
        return None
    if unit.bureau and found.bureau and found.bureau != unit.bureau and not unit.ctx.get("platform_admin"):
        return None
    return found


def _check_unique_name(unit, aggregate_cls, self_id, bureau, name, message, renamed=()):
    """Names are unique per bureau (the reference's 400 texts). Found through the service's name index; `renamed`:
    resources giving their name up in the same command."""
    if not name:
        return
    for found in unit.app.referencing(aggregate_cls.resource, "name", name, {"bureau": bureau}):
        if found["uri"] != resource_path(aggregate_cls.resource, self_id) and found["uri"] not in renamed:
            raise InvalidPayload(message, field="name")


def _check_materials(materials):
    clean = []
    for value in materials or []:
        try:
            path = normalise(value)
        except (TypeError, ValueError):
            raise InvalidPayload(INVALID_MATERIAL, field="materials") from None
        if not path.startswith("/material/"):
            raise InvalidPayload(INVALID_MATERIAL, field="materials")
        clean.append(path)
    return clean


def _positive_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def check_build_volume(shape, volume, required=True):
    """production.md §4.1, open question 4: a rectangular plate is {x, y, z}; a circular one {x (diameter), z}, a
    `y` if given equal to `x` (millimetres, all > 0)."""
    if volume is None and not required:
        return None
    if not isinstance(volume, dict):
        raise InvalidPayload("build_volume must be an object of millimetres: {x, y, z}.", field="build_volume")
    keys = ("x", "y", "z") if shape != "circular" else ("x", "z")
    missing = [k for k in keys if not _positive_number(volume.get(k))]
    if missing:
        form = "{x, y, z}" if shape != "circular" else "{x (the plate's diameter), z}"
        raise InvalidPayload(f"build_volume of a {shape or 'rectangular'} build plate is {form} in millimetres, each "
                             f"greater than 0.", field="build_volume")
    extra = set(volume) - {"x", "y", "z"}
    if extra:
        raise InvalidPayload(f"build_volume takes x, y and z, not {', '.join(sorted(extra))}.", field="build_volume")
    if shape == "circular" and volume.get("y") not in (None, volume["x"]):
        raise InvalidPayload("A circular build plate has one diameter: build_volume.y, if given, equals x.",
                             field="build_volume")
    return {k: volume[k] for k in ("x", "y", "z") if k in volume}


def _check_min_distance(value):
    if value is not None and value < 0:
        raise InvalidPayload("'min_packing_distance' must be at least 0.", field="min_packing_distance")


class Workstation(Resource):
    """What every workstation and workstation type shares: a name unique in its bureau, checked on create and on
    rename, and the rules of `check` (run by create and update on the whole new state)."""

    name_exists = None

    @classmethod
    def on_create(cls, unit, new_id, fields, renamed=()):
        fields = cls.check(unit, dict(fields))
        _check_unique_name(unit, cls, new_id, unit.bureau, fields.get("name"), cls.name_exists, renamed)
        return fields, [], {}

    @classmethod
    def check(cls, unit, fields, changed=None):
        """The rules on a resource's whole new state; `changed` names the fields an update changed (None: a
        creation)."""
        return fields

    def consequences(self, unit):
        if self.pending_events and not self.deleted:
            changed = {k for e in self.pending_events if isinstance(e, Resource.Updated) for k in e.changes}
            if changed:
                self.check(unit, dict(self.fields), changed)
                if "name" in changed:
                    _check_unique_name(unit, type(self), self.id, self.bureau, self.fields.get("name"),
                                       self.name_exists)
        return []


class PrinterType(Workstation):
    """production.md §4.1."""

    resource = "printer-type"
    name_exists = PRINTER_TYPE_NAME_EXISTS

    class BuildVolumeChanged(Resource.Updated):  # packing and availability become stale
        field = "build_volume"

    class MaterialsChanged(Resource.Updated):
        field = "materials"

    @classmethod
    def check(cls, unit, fields, changed=None):
        fields["build_volume"] = check_build_volume(fields.get("build_plate_shape"), fields.get("build_volume"))
        _check_min_distance(fields.get("min_packing_distance"))
        if "materials" in fields:
            fields["materials"] = _check_materials(fields["materials"])
        if fields.get("manufacturer") and _same_bureau(unit, fields["manufacturer"], ("manufacturer",)) is None:
            raise InvalidPayload(MANUFACTURER_MISMATCH, field="manufacturer")
        return fields

    def update(self, changes, actor):
        if "materials" in changes:
            changes = dict(changes, materials=_check_materials(changes["materials"]))
        if "build_volume" in changes or "build_plate_shape" in changes:
            shape = changes.get("build_plate_shape", self.fields.get("build_plate_shape"))
            volume = check_build_volume(shape, changes.get("build_volume", self.fields.get("build_volume")))
            changes = dict(changes, build_volume=volume)
        super().update(changes, actor)

    def check_deletable(self, unit):
        path = resource_path(self.resource, self.id)
        if unit.app.referencing("printer", "printer_type", path, {"platform_admin": True}):
            raise InvalidPayload(PRINTER_TYPE_HAS_PRINTERS)
        _check_no_steps(unit, path)


def _check_no_steps(unit, type_path):
    """A workstation type a workflow's step uses stays (the step would name nothing)."""
    for step in unit.app.referencing("process-step", "workstation_type_uri", type_path, {"platform_admin": True}):
        if step["fields"].get("workflows"):
            raise InvalidPayload(TYPE_IN_WORKFLOW)


class Printer(Workstation):
    """production.md §4.2."""

    resource = "printer"
    name_exists = PRINTER_NAME_EXISTS

    class QueueReordered(Resource.Updated):
        field = "queue"

    @classmethod
    def check(cls, unit, fields, changed=None):
        if fields.get("printer_type") and _same_bureau(unit, fields["printer_type"], ("printer-type",)) is None:
            raise InvalidPayload("printer_type must name a printer type of your bureau.", field="printer_type")
        return fields

    def check_deletable(self, unit):
        if self.fields.get("queue"):
            raise InvalidPayload(PRINTER_HAS_QUEUE)
        if self.fields.get("in_progress"):
            raise InvalidPayload(PRINTER_HAS_PRINTS)


class PostProcessorType(Workstation):
    """production.md §4.3: with its batching strategy and in_progress_max (default 10)."""

    resource = "post-processor-type"
    name_exists = POST_PROCESSOR_TYPE_NAME_EXISTS

    @classmethod
    def check(cls, unit, fields, changed=None):
        if fields.get("in_progress_max") is None:
            fields["in_progress_max"] = 10
        if fields["in_progress_max"] < 1:
            raise InvalidPayload("'in_progress_max' must be at least 1.", field="in_progress_max")
        if fields.get("duration") is not None and fields["duration"] < 0:
            raise InvalidPayload("'duration' must be at least 0.", field="duration")
        _check_min_distance(fields.get("min_packing_distance"))
        if fields.get("build_volume") is not None:
            fields["build_volume"] = check_build_volume("rectangular", fields["build_volume"])
        if fields.get("batching_strategy") in ("by_size_xyz", "by_size_xy") and not fields.get("build_volume"):
            raise InvalidPayload("A by_size batching strategy needs the build_volume it packs into.",
                                 field="build_volume")
        if fields.get("batching_strategy") == "by_number_of_parts" and not fields.get("number_of_parts"):
            raise InvalidPayload("The by_number_of_parts batching strategy needs number_of_parts.",
                                 field="number_of_parts")
        if "materials" in fields:
            fields["materials"] = _check_materials(fields["materials"])
        return fields

    def check_deletable(self, unit):
        path = resource_path(self.resource, self.id)
        if unit.app.referencing("post-processor", "post_processor_type", path, {"platform_admin": True}):
            raise InvalidPayload(POST_PROCESSOR_TYPE_HAS_POST_PROCESSORS)
        _check_no_steps(unit, path)


class PostProcessor(Workstation):
    """production.md §4.4: name and location are required unless the post-processor is a service."""

    resource = "post-processor"
    name_exists = POST_PROCESSOR_NAME_EXISTS

    class QueueReordered(Resource.Updated):
        field = "queue"

    @classmethod
    def check(cls, unit, fields, changed=None):
        kind = _same_bureau(unit, fields.get("post_processor_type"), ("post-processor-type",))
        if kind is None:
            raise InvalidPayload("post_processor_type must name a post-processor type of your bureau.",
                                 field="post_processor_type")
        if not fields.get("is_service"):
            for name in ("name", "location"):
                if not fields.get(name):
                    raise InvalidPayload(f"The field '{name}' is required.", field=name)
        fields["in_progress_max"] = kind.fields.get("in_progress_max") or 10
        fields["post_processor_type_name"] = kind.fields.get("name")
        fields["post_processor_special_type"] = kind.fields.get("special_type")
        return fields

    def check_deletable(self, unit):
        if self.fields.get("queue"):
            raise InvalidPayload(POST_PROCESSOR_HAS_QUEUE)


class ProcessStep(Workstation):
    """production.md §5.3: what one step of a workflow does (its workstation type) and what its technician must
    give when the step's run completes (`notes`, `success`, `tracking_id`, `upload`: optional|required|hidden,
    recorded here, enforced when runs complete). `workflows`/`step_positions` are kept by the workflows."""

    resource = "process-step"
    name_exists = PROCESS_STEP_NAME_EXISTS
    INPUTS = ("notes", "success", "tracking_id", "upload")

    class WorkflowsChanged(Resource.Updated):
        field = "workflows"

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """A shipping station lives in the orders service: whether the step's one exists is asked there."""
        target = payload.get("workstation_type_uri") if isinstance(payload, dict) else None
        try:
            kind, shipping_id = parse_uri(target) if target else (None, None)
        except (TypeError, ValueError):
            return ctx
        if kind != "shipping":
            return ctx
        try:
            shipping = peers.call("orders", "get", "shipping", shipping_id, ctx)
        except NotFound:
            shipping = None
        return dict(ctx, shipping_stations={normalise(target): shipping is not None})

    @classmethod
    def check(cls, unit, fields, changed=None):
        fields.setdefault("workflows", [])
        fields.setdefault("step_positions", [])
        if changed is not None and "workstation_type_uri" not in changed:
            return fields
        target = fields.get("workstation_type_uri")
        try:
            path = normalise(target)
            kind = parse_uri(path)[0]
        except (TypeError, ValueError):
            raise InvalidPayload(WORKSTATION_TYPE_INVALID, field="workstation_type_uri") from None
        if kind == "shipping":
            if not (unit.ctx.get("shipping_stations") or {}).get(path):
                raise InvalidPayload(WORKSTATION_TYPE_INVALID, field="workstation_type_uri")
        elif _same_bureau(unit, path, ("printer-type", "post-processor-type")) is None:
            raise InvalidPayload(WORKSTATION_TYPE_INVALID, field="workstation_type_uri")
        fields["workstation_type_uri"] = path
        return fields

    def update(self, changes, actor):
        if "workstation_type_uri" in changes and self.fields.get("workflows"):
            raise InvalidPayload("The workstation type of a step in a workflow cannot change; replace the workflow "
                                 "instead.", field="workstation_type_uri")
        super().update(changes, actor)

    @property
    def operation(self):
        return OPERATIONS.get(parse_uri(self.fields["workstation_type_uri"])[0])

    def check_completion(self, given):
        """For the run completing this step (item 3 of the production issue calls it): every input the step marks
        `required` is given, no input it marks `hidden` is. `given`: {"notes": …, "success": …, "tracking_id": …,
        "upload": …}, absent or empty meaning not given."""
        for name in self.INPUTS:
            rule, value = self.fields.get(name) or "optional", given.get(name)
            if rule == "required" and (value is None or value == "" or value == []):  # `success: false` is an answer
                raise InvalidPayload(f"This process step requires '{name}' before its run completes.", field=name)
            if rule == "hidden" and value not in (None, "", []):
                raise InvalidPayload(f"This process step does not take '{name}'.", field=name)

    def place(self, workflow_path, positions, actor):
        """Record this step's positions in one workflow ([] when the workflow no longer has it)."""
        pairs = [(w, p) for w, p in zip(self.fields.get("workflows") or [], self.fields.get("step_positions") or [])
                 if w != workflow_path]
        pairs += [(workflow_path, p) for p in positions]
        Resource.update(self, {"workflows": [w for w, _ in pairs], "step_positions": [p for _, p in pairs]}, actor)

    def check_deletable(self, unit):
        if self.fields.get("workflows"):
            raise InvalidPayload(STEP_IN_WORKFLOW)


class Workflow(Workstation):
    """production.md §5.1–5.2: ordered process steps; `usage_state` follows the line items using the workflow
    (kept by planning from the orders feed): `active` while one of them is processing, `can_be_safely_archived` when
    only others use it, `inactive` when none does, `archived` once archived."""

    resource = "workflow"
    name_exists = WORKFLOW_NAME_EXISTS

    class StepsChanged(Resource.Updated):
        field = "process_steps"

    class UsageChanged(Resource.Updated):
        field = "usage_state"

    class Archived(UsageChanged):
        value = "archived"

    @classmethod
    def on_create(cls, unit, new_id, fields, renamed=()):
        requested = fields.get("usage_state")
        if requested not in (None, "inactive"):
            raise InvalidPayload("A new workflow is not in use yet: usage_state is computed.", field="usage_state")
        fields = dict(fields, usage_state="inactive", process_steps=fields.get("process_steps") or [])
        fields, extra, result = super().on_create(unit, new_id, fields, renamed)
        steps = cls.steps_of(unit, fields["process_steps"])
        path = resource_path(cls.resource, new_id)
        for position, step in enumerate(steps):
            step.place(path, [p for p, s in enumerate(steps) if s.id == step.id], unit.actor)
        return fields, _unique(steps), result

    @classmethod
    def check(cls, unit, fields, changed=None):
        fields["process_steps"] = [normalise(p) for p in fields.get("process_steps") or []]
        if fields.get("materials"):
            fields["materials"] = _check_materials(fields["materials"])
        return fields

    @classmethod
    def steps_of(cls, unit, paths):
        steps = []
        for path in paths:
            step = _same_bureau(unit, path, ("process-step",))
            if step is None:
                raise InvalidPayload(STEP_INVALID, field="process_steps")
            steps.append(step)
        return steps

    def update(self, changes, actor):
        changes = dict(changes)
        if "usage_state" in changes and changes["usage_state"] != self.fields.get("usage_state"):
            if changes["usage_state"] != "archived":
                raise InvalidPayload(ONLY_ARCHIVE, field="usage_state")
            if self.fields.get("usage_state") == "active":
                raise Conflict(WORKFLOW_PROCESSING)
        if "process_steps" in changes:
            changes["process_steps"] = [normalise(p) for p in changes["process_steps"] or []]
            if changes["process_steps"] != self.fields.get("process_steps") and \
                    self.fields.get("usage_state") == "active":
                raise Conflict(WORKFLOW_PROCESSING)
            self._steps_before = list(self.fields.get("process_steps") or [])
        super().update(changes, actor)

    def consequences(self, unit):
        super().consequences(unit)
        changed = [e for e in self.pending_events if isinstance(e, Workflow.StepsChanged)]
        if not changed or self.deleted:
            return []
        path = resource_path(self.resource, self.id)
        old_paths = getattr(self, "_steps_before", None) or []
        steps = self.steps_of(unit, self.fields["process_steps"])
        touched = {s.id: s for s in steps}
        for step_path in old_paths:
            step = unit.get(step_path)
            if isinstance(step, ProcessStep) and step.id not in touched:
                touched[step.id] = step
        for step in touched.values():
            step.place(path, [p for p, s in enumerate(steps) if s.id == step.id], unit.actor)
        return [s for s in touched.values() if s.pending_events]

    def note_usage(self, state):
        """Planning's report of the line items using this workflow (an archived workflow stays archived)."""
        if self.fields.get("usage_state") != "archived" and state != self.fields.get("usage_state"):
            Resource.update(self, {"usage_state": state}, None)

    def step_facts(self, load):
        """[(position, step path, workstation type path, operation)] of the workflow's steps, `load` giving the
        step aggregate of a path."""
        facts = []
        for position, path in enumerate(self.fields.get("process_steps") or []):
            step = load(path)
            if isinstance(step, ProcessStep) and not step.deleted:
                facts.append((position, path, step.fields["workstation_type_uri"], step.operation))
        return facts

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """A replacement needs the line items using the source (planning's usage record) and, pinned to one line
        item, that line item as the caller may see it (orders)."""
        if verb != "act":
            return ctx
        ctx = dict(ctx, workflow_users=peers.app.workflow_users(resource_path("workflow", uuid)))
        line_item = payload.get("line_item") if isinstance(payload, dict) else None
        if line_item:
            try:
                peers.call("orders", "get", "line-item", parse_uri(normalise(line_item))[1], ctx)
            except (TypeError, ValueError):
                raise InvalidPayload("line_item must be a line-item URI.", field="line_item") from None
        return ctx

    @action("replace")
    def replace(self, unit, payload):
        """production.md §5.2 (F6): a new workflow with the given steps; with `line_item`, pinned to that line item
        (which is re-pointed to it by the orders service, then planning re-plans its unstarted prints); without,
        the source is renamed and archived and the line items not yet processing follow the new one."""
        name, steps = payload.get("name"), payload.get("process_steps")
        for key in ("name", "description", "process_steps"):
            if payload.get(key) in (None, "") and key != "process_steps" or (key == "process_steps" and not steps):
                raise InvalidPayload(f"The field '{key}' is required.", field=key)
        line_item = payload.get("line_item")
        fields = {"name": name, "description": payload.get("description"), "process_steps": steps,
                  "labels": payload.get("labels") or [], "integrated": bool(payload.get("integrated")),
                  "type": self.fields.get("type") or "additive_manufacturing",
                  "source_workflow": resource_path(self.resource, self.id), "materials": self.fields.get("materials")}
        saved = []
        if line_item:
            try:
                line_item = normalise(line_item)
                parse_uri(line_item)
            except (TypeError, ValueError):
                raise InvalidPayload("line_item must be a line-item URI.", field="line_item") from None
            fields["line_item"] = line_item
            users = [line_item]
        else:
            if self.fields.get("usage_state") != "active":
                raise Conflict("Only a workflow in use (usage_state active) is replaced for every line item; edit "
                               "this one instead.")
            users = [p for p, s in (unit.ctx.get("workflow_users") or {}).items()
                     if s not in PROCESSING and s not in FINISHED]
            archived_name = f"{self.fields.get('name')} (archived {str(self.id)[:8]})"
            Resource.update(self, {"name": archived_name, "usage_state": "archived"}, unit.actor)
            saved.append(self)
        new_id = uuid4()
        renamed = [] if line_item else [resource_path(self.resource, self.id)]  # the source gives its name up
        fields = dict(fields, name=_free_name(unit, name, self.bureau, renamed))
        fields, extra, _ = Workflow.on_create(unit, new_id, fields, renamed)
        new = Workflow._create(Workflow.Created, id=new_id, fields=fields, bureau=self.bureau, actor=unit.actor)
        return unit.outcome(new, extra=[*extra, *saved],
                            result={"replaced": resource_path(self.resource, self.id), "repoint": users})


def _free_name(unit, name, bureau, renamed):
    """§5.2 step 2: the new workflow is renamed if its name is taken (by a workflow other than those `renamed`)."""
    candidate, n = name, 1
    while [f for f in unit.app.referencing("workflow", "name", candidate, {"bureau": bureau})
           if f["uri"] not in renamed]:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def _unique(aggregates):
    seen = {}
    for each in aggregates:
        seen.setdefault(each.id, each)
    return list(seen.values())


class Piece(Resource):
    """production.md §3.2: one physical object of a line item. Made by planning (never by a client's POST)."""

    resource = "piece"
    private_fields = ("auto_name",)

    class StatusChanged(Resource.Updated):
        field = "status"

    class Cancelled(StatusChanged):
        value = "cancelled"

    class WorkflowChanged(Resource.Updated):
        field = "workflow"

    class PriorityChanged(Resource.Updated):
        field = "priority"

    class AdvancedToStep(Resource.Updated):  # its run completed: the piece waits for (or is at) its next step
        field = "current_step_position"

    class Renamed(Resource.Updated):
        field = "name"

    # rework (services.production.rework): recorded by the transformation as they are, never picked by `update`
    # (each names a field no change of status carries)
    class Remanufactured(StatusChanged):  # → incomplete, with remanufactured_to
        field = "remanufactured_to"

    class Scrapped(StatusChanged):  # → cancelled for good
        field = "scrapped"

    class NonConformanceFlagged(StatusChanged):  # → waiting for its review at the non-conformance post-processor
        field = "_non_conformance"

    def update(self, changes, actor):
        if "name" in changes and changes["name"] != self.fields.get("name") and self.fields.get("auto_name", True):
            raise InvalidPayload(RENAME_AUTO_PIECE, field="name")
        super().update(changes, actor)


class Print(Resource):
    """production.md §3.1: one step of one piece (status created → … ; cancelled with its line item)."""

    resource = "print"

    class StatusChanged(Resource.Updated):
        field = "status"

    class Cancelled(StatusChanged):
        value = "cancelled"

    class AssignedToRun(Resource.Updated):
        field = "run"

    class Remanufactured(Resource.Updated):  # replaced (remanufacture): remanufactured_to = the replacement print
        field = "remanufactured_to"

    class RedoScheduled(Remanufactured):  # replaced by a new print of the same step (redo)
        field = "_redo"

    @property
    def started(self):
        return bool(self.fields.get("run")) or self.fields.get("status") not in ("created", "cancelled")
