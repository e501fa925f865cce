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


name_aggregate(PrintingRun, "materials/printing-run")
name_aggregate(RunConsumption, "materials/run-consumption")


def additive_id(consumption_id):
    """The id of the /run-actuals-additive/ made from a consumption (the same on every repeat)."""
    return uuid5(NAMESPACE_URL, f"stratum:materials:run-actuals-additive:{consumption_id}")


def apply_event(batch, event, loaded_at):
    """One public production event (shared.application feed shape). `loaded_at(printer)` → the paths of the batches
    loaded in that printer now."""
    resource = event.get("resource")
    if resource not in ("run", "run-actuals"):
        return
    fields = event.get("fields") or {}
    if resource == "run-actuals":
        run = _run(batch, fields["run"], event, create=False) if event["kind"] == "created" and fields.get(
            "run") else None
        if run is not None:  # a printing run's actuals (opened when it went in-progress)
            run.note(run_actual=resource_path("run-actuals", event["uuid"]))
        return
    run_path = resource_path("run", event["uuid"])
    printing = fields.get("operation") in (None, "printing")  # a post-processing or shipping run takes no powder
    run = _run(batch, run_path, event, create=event["kind"] == "created" and printing)
    if run is None:
        return
    if event["kind"] == "deleted":
        run.note(deleted=True)
        return
    run.note(**{k: fields[k] for k in ("printer", "operation", "status") if k in fields})
    if fields.get("status") == "complete" and run.fields.get("operation", "printing") == "printing" \
            and run.fields.get("printer") and not run.fields.get("batches"):
        printed = []
        for batch_path in loaded_at(run.fields["printer"]):
            material_batch = batch.path(batch_path)
            if material_batch is not None and material_batch.fields.get("at_machine") == run.fields["printer"] \
                    and material_batch.printed(run_path, event.get("timestamp")):
                printed.append(batch_path)
        run.note(batches=printed)


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
