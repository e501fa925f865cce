"""Consumption by production (materials.md §9 F3, §5 items 5–6; production.md §2.6): materials follows production's
feed (shared.follower: its own tracked position, gap-free, idempotent) and learns which runs printed from which
batch; the batch's unload measures what they consumed, and materials records it.

* A printing run's printer and its actuals come from the feed (`run` and `run-actuals` events) into a
  `PrintingRun` (materials' note of the run; production never writes here).
* When the run completes, every batch loaded in its printer then (`at_machine`, and loaded before the run
  completed: the feed may be read late) printed it: the batch notes the run (`MaterialBatch.printed`: its runs, and
  the runs printed since it was loaded).
* When that batch is unloaded (machine_unload_chamber / _hopper, services.materials.actions), the material the
  machine kept, reserved before − unloaded, was consumed by those runs (shared equally when several completed
  during one load): one `RunConsumption` per run and batch records it, and the unload action names the runs
  (`metadata.runs`). The ledger stays exact: the unload's `_effects` already took that material out of the batch.
* Each RunConsumption becomes production's `/run-actuals-additive/` (run_actual, material_batch,
  base_material_used in the batch's units), created by a command to production with an id and command id derived
  from the consumption (a repeat changes nothing); the service sends it after the unload commits
  (`run_consumption_recorded`), and a sweeper sends any the log shows unsent (a message lost in a crash).

Stock-tracked materials (F6, §3.13–3.14): a printing run no powder batch printed (filament, resin) consumes from the
`/stock/` of its material at its location. The feed gives the rest: the run's prints and location (`run` events),
each printing print's piece and base material (`print` events, noted as a `PrintedPiece`), and the run's actual
base material used (production's `/run-actuals-additive/` rows without a batch, noted on the run through a
`RunLink` from its run-actuals and from each additive row). Once the run is complete and its actual is known
(whichever comes second), one `/material-stock-action/` consume per material of its pieces records it, with the
run, `action_quantity` the actual (shared by the pieces' materials in proportion to their pieces), and the
relationship rows lot → piece (services.materials.stock). Its id is derived from the run and the stock, and the run
notes it: a feed read twice consumes once. A later correction of the actual is not re-consumed (reconcile the
stock).
"""
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from shared.topics import name_aggregate
from shared.uris import resource_path

PRODUCTION = "production"
RUN_CONSUMPTION_RECORDED = "run_consumption_recorded"


class PrintingRun(Aggregate):
    """A production run as materials needs it: its printer, its actuals, whether it completed."""

    class Started(Aggregate.Created):
        run: str
        bureau: str | None

    class Noted(Aggregate.Event):
        changes: dict

        def apply(self, run):
            run.fields.update(self.changes)

    def __init__(self, run, bureau):
        self.run = run
        self.bureau = bureau
        self.fields = {}

    @staticmethod
    def id_for(run_path):
        return uuid5(NAMESPACE_URL, f"stratum:materials:printing-run:{run_path}")

    @classmethod
    def start(cls, run_path, bureau):
        return cls._create(cls.Started, id=cls.id_for(run_path), run=run_path, bureau=bureau)

    def note(self, **changes):
        changed = {k: v for k, v in changes.items() if self.fields.get(k) != v}
        if changed:
            self.trigger_event(self.Noted, changes=changed)


class RunConsumption(Aggregate):
    """What one run consumed of one batch, measured by the batch's unload; `sent` once production has it as the
    run's /run-actuals-additive/."""

    class Recorded(Aggregate.Created):
        fields: dict
        bureau: str | None

    class Sent(Aggregate.Event):
        run_actuals_additive: str

        def apply(self, consumption):
            consumption.fields["run_actuals_additive"] = self.run_actuals_additive
            consumption.sent = True

    def __init__(self, fields, bureau):
        self.fields = dict(fields)
        self.bureau = bureau
        self.sent = False

    @staticmethod
    def id_for(run_path, batch_path):
        return uuid5(NAMESPACE_URL, f"stratum:materials:run-consumption:{run_path}:{batch_path}")

    @classmethod
    def record(cls, run_path, batch_path, fields, bureau):
        return cls._create(cls.Recorded, id=cls.id_for(run_path, batch_path), fields=fields, bureau=bureau)

    def additive(self):
        """The /run-actuals-additive/ this consumption is in production's words."""
        return {"run_actual": self.fields.get("run_actual"), "material_batch": self.fields["material_batch"],
                "base_material_used": self.fields["base_material_used"]}

    def mark_sent(self, additive_path):
        if not self.sent:
            self.trigger_event(self.Sent, run_actuals_additive=additive_path)


class PrintedPiece(Aggregate):
    """A printing print as materials needs it (F6): its piece and base material."""

    class Started(Aggregate.Created):
        fields: dict

    class Noted(Aggregate.Event):
        changes: dict

        def apply(self, printed):
            printed.fields.update(self.changes)

    def __init__(self, fields):
        self.fields = dict(fields)

    @staticmethod
    def id_for(print_path):
        return uuid5(NAMESPACE_URL, f"stratum:materials:printed-piece:{print_path}")

    @classmethod
    def start(cls, print_path, fields):
        return cls._create(cls.Started, id=cls.id_for(print_path), fields=fields)

    def note(self, **changes):
        changed = {k: v for k, v in changes.items() if self.fields.get(k) != v}
        if changed:
            self.trigger_event(self.Noted, changes=changed)


class RunLink(Aggregate):
    """Which run a run-actuals record or a run-actuals-additive row is of (their later events name only
    themselves)."""

    class Started(Aggregate.Created):
        run: str

    def __init__(self, run):
        self.run = run

    @staticmethod
    def id_for(some_path):
        return uuid5(NAMESPACE_URL, f"stratum:materials:run-link:{some_path}")

    @classmethod
    def start(cls, some_path, run_path):
        return cls._create(cls.Started, id=cls.id_for(some_path), run=run_path)


name_aggregate(PrintingRun, "materials/printing-run")
name_aggregate(RunConsumption, "materials/run-consumption")
name_aggregate(PrintedPiece, "materials/printed-piece")
name_aggregate(RunLink, "materials/run-link")


def additive_id(consumption_id):
    """The id of the /run-actuals-additive/ made from a consumption (the same on every repeat)."""
    return uuid5(NAMESPACE_URL, f"stratum:materials:run-actuals-additive:{consumption_id}")


def apply_event(batch, event, loaded_at):
    """One public production event (shared.application feed shape). `loaded_at(printer)` → the paths of the batches
    loaded in that printer now."""
    resource = event.get("resource")
    if resource not in ("run", "run-actuals", "print", "run-actuals-additive"):
        return
    fields = event.get("fields") or {}
    if resource == "print":
        _print(batch, event, fields)
        return
    if resource == "run-actuals-additive":
        _additive(batch, event, fields)
        return
    if resource == "run-actuals":
        run = _run(batch, fields["run"], event, create=False) if event["kind"] == "created" and fields.get(
            "run") else None
        if run is not None:  # a printing run's actuals (opened when it went in-progress)
            actual = resource_path("run-actuals", event["uuid"])
            run.note(run_actual=actual)
            if batch.get(RunLink.id_for(actual)) is None:
                batch.add(RunLink.start(actual, run.run))
        return
    run_path = resource_path("run", event["uuid"])
    printing = fields.get("operation") in (None, "printing")  # a post-processing or shipping run takes no powder
    run = _run(batch, run_path, event, create=event["kind"] == "created" and printing)
    if run is None:
        return
    if event["kind"] == "deleted":
        run.note(deleted=True)
        return
    run.note(**{k: fields[k] for k in ("printer", "operation", "status", "prints", "location") if k in fields})
    if fields.get("status") == "complete" and run.fields.get("operation", "printing") == "printing" \
            and run.fields.get("printer") and not run.fields.get("batches"):
        printed = []
        for batch_path in loaded_at(run.fields["printer"]):
            material_batch = batch.path(batch_path)
            if material_batch is not None and material_batch.fields.get("at_machine") == run.fields["printer"] \
                    and material_batch.printed(run_path, event.get("timestamp")):
                printed.append(batch_path)
        run.note(batches=printed)
    if fields.get("status") == "complete":
        consume_stock(batch, run)


def _print(batch, event, fields):
    """F6: a printing print's piece and base material (only printing prints consume material)."""
    print_path = resource_path("print", event["uuid"])
    noted = batch.get(PrintedPiece.id_for(print_path))
    if noted is None:
        if event["kind"] != "created" or fields.get("operation") not in (None, "printing"):
            return
        noted = batch.add(PrintedPiece.start(print_path, {}))
    changes = {}
    if "piece" in fields:
        changes["piece"] = fields["piece"]
    if "base_material" in fields:
        changes["material"] = _material_path(fields["base_material"])
    if event["kind"] == "deleted":
        changes["deleted"] = True
    noted.note(**changes)


def _material_path(value):
    if not value:
        return None
    return value if str(value).startswith("/") else resource_path("material", value)


def _additive(batch, event, fields):
    """F6: production's actual base material of a run (rows without a batch: a powder batch's are F3's)."""
    additive = resource_path("run-actuals-additive", event["uuid"])
    link = batch.get(RunLink.id_for(additive))
    if link is None:
        actual_link = batch.get(RunLink.id_for(fields.get("run_actual"))) if fields.get("run_actual") else None
        if actual_link is None or event["kind"] != "created":
            return  # not a printing run materials follows
        link = batch.add(RunLink.start(additive, actual_link.run))
    run = batch.get(PrintingRun.id_for(link.run))
    if run is None:
        return
    rows = dict(run.fields.get("additives") or {})
    row = dict(rows.get(additive) or {})
    row.update({k: fields[k] for k in ("base_material_used", "material_batch") if k in fields})
    if event["kind"] == "deleted":
        rows.pop(additive, None)
    else:
        rows[additive] = row
    run.note(additives=rows)
    if run.fields.get("status") == "complete":
        consume_stock(batch, run)


def actual_used(run):
    """The run's actual base material used, as production's run-material sums it, without powder batches' rows."""
    used = [row.get("base_material_used") for row in (run.fields.get("additives") or {}).values()
            if not row.get("material_batch") and row.get("base_material_used") is not None]
    return sum(float(u) for u in used) if used else None


def run_pieces(find, run):
    """[(piece, material)] of a run's printing prints, as the feed told them; `find(id)` loads an aggregate."""
    found = []
    for print_path in run.fields.get("prints") or []:
        noted = find(PrintedPiece.id_for(print_path))
        if noted is not None and not noted.fields.get("deleted") and noted.fields.get("piece"):
            found.append((noted.fields["piece"], noted.fields.get("material")))
    return found


def consume_stock(batch, run):
    """F6: a complete printing run no powder batch printed, whose actual is known, consumes from its materials'
    stocks at its location (once)."""
    from services.materials.stock import consume_for_run  # stock imports this module: imported when needed
    if run.fields.get("stock_consumed") is not None or run.fields.get("deleted") or run.fields.get("batches"):
        return
    if run.fields.get("operation", "printing") != "printing" or not run.fields.get("location"):
        return
    used = actual_used(run)
    pieces = run_pieces(batch.get, run)
    if not used or not pieces:
        return
    by_material = {}
    for piece, material in pieces:
        by_material.setdefault(material, []).append(piece)
    actions = []
    for material, of_material in sorted(by_material.items(), key=lambda item: str(item[0])):
        share = used * len(of_material) / len(pieces)
        action = consume_for_run(batch, run.run, run.bureau, material, run.fields["location"], share, of_material)
        if action:
            actions.append(action)
    run.note(stock_consumed=actions)


def _run(batch, run_path, event, create=True):
    run = batch.get(PrintingRun.id_for(run_path))
    if run is None and create:
        run = batch.add(PrintingRun.start(run_path, event.get("bureau")))
    return run


def consumed_by_runs(work, material_batch, consumed, action_path, actor):
    """The unload's rule: the material the machine kept was consumed by the runs printed since the batch was loaded.
    Returns [(run, RunConsumption id)] as recorded."""
    runs = list(material_batch.fields.get("_runs_in_machine") or [])
    if not runs:
        return []
    material_batch.set({"_runs_in_machine": []}, actor)
    share = consumed / len(runs)
    recorded = []
    batch_path = resource_path("material-batch", material_batch.id)
    for run_path in runs:
        run = work._get(PrintingRun.id_for(run_path))
        consumption = RunConsumption.record(run_path, batch_path, {
            "run": run_path, "run_actual": run.fields.get("run_actual") if run is not None else None,
            "material_batch": batch_path, "base_material_used": round(share, 6), "units": material_batch.units,
            "action": action_path}, material_batch.bureau)
        work.loaded[consumption.id] = consumption
        recorded.append((run_path, str(consumption.id)))
    return recorded


def consumption_of(app, consumption_id):
    return app.repository.get(UUID(str(consumption_id)))
