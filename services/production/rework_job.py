"""The background job of a run transformation (services.production.rework), in the production service: pending →
processing → the rules applied (one transaction) → the runs it schedules created (through /run/'s own rules) →
complete, or error with a note. Each step is recorded under a command id derived from (transformation, step), so a
redelivered message, or the sweep restarting a job whose message was lost or whose process died, changes nothing
that is done; the mixin below is what the production service lists (services/production/service.py)."""
import logging

from services.production.rework import (INTERNAL, TRANSFORMATION_REQUESTED, ReworkFailed, RunTransformation, apply,
                                        run_id)
from shared.amqp import event_handler
from shared.application import Unit
from shared.errors import StratumError
from shared.resource import Resource
from shared.sweep import changed_within, sweep_timer, sweeper_for
from shared.locks import keyed_lock
from shared.uris import id_of, resource_path, uuid_of

log = logging.getLogger(__name__)
RESOURCE = "run-transformation"


class ReworkJob:
    def __init__(self, app, announce):
        self.app = app
        self.announce = announce

    def _step(self, uuid, name, change, key=None):
        """One step of the transformation (a RunTransformation method), once per (transformation, step)."""
        unit = Unit(self.app, INTERNAL)

        def command():
            transformation = self.app.load(RESOURCE, uuid, INTERNAL)
            change(transformation)
            return self.app.outcome(transformation, unit)

        self.announce(self.app._execute({"command_id": f"{RESOURCE}:{uuid}:{key or name}"}, command))

    def run(self, path):
        uuid = uuid_of(path)
        # one start at a time in this process (a second process is safe through the receipts)
        with keyed_lock("run-transformation", uuid):
            self._run(uuid)

    def _run(self, uuid):
        transformation = self.app.load(RESOURCE, uuid, INTERNAL)
        if not transformation.waiting:
            return
        self._step(uuid, "start", lambda t: t.start())
        try:
            schedule = self._apply(uuid)
            runs, warnings = self._schedule(uuid, schedule)
        except ReworkFailed as failure:
            self._step(uuid, "fail", lambda t: t.fail(failure.title), "done")
            return
        except Exception as error:  # noqa: BLE001 - whatever happens, the transformation ends, not in limbo
            log.exception("run transformation %s failed", uuid)
            reason = error.title if isinstance(error, StratumError) else f"{type(error).__name__}: {error}"
            self._step(uuid, "fail", lambda t: t.fail(f"The transformation failed: {reason}"), "done")
            return
        self._step(uuid, "complete", lambda t: t.complete(runs, schedule.get("custom_workflow"), warnings), "done")

    def _apply(self, uuid):
        """The rules, in one transaction with their own receipt: a second run of this step answers the first's
        result (what to schedule) and records nothing."""
        def command():
            transformation = self.app.load(RESOURCE, uuid, INTERNAL)
            aggregates, schedule = apply(self.app, transformation)
            aggregates += self.app._index_entries(aggregates)
            return aggregates, {"uri": resource_path(RESOURCE, uuid), "schedule": schedule}

        command_id = f"{RESOURCE}:{uuid}:apply"
        return self._once(command_id, lambda c: self.app._execute({"command_id": c}, command))["schedule"]

    def _schedule(self, uuid, schedule):
        """The runs the transformation asks for, made as a client's POST /run/ would be (every rule of a run holds),
        each under its own derived id and command id. A run that cannot be made is a warning in the notes."""
        transformation = self.app.load(RESOURCE, uuid, INTERNAL)
        ctx = {"bureau": transformation.bureau, "user": transformation.fields.get("user"), "internal": True}
        made, warnings = [], []
        for position, prints in sorted((schedule.get("runs") or {}).items(), key=lambda kv: int(kv[0])):
            key = f"step-{position}"
            payload = {"prints": prints, "pieces_locked": False}
            try:
                result = self._once(f"{RESOURCE}:{uuid}:run:{key}", lambda c: self.app.create(
                    "run", payload, dict(ctx, uuid=str(run_id(uuid, key)), command_id=c)))
            except StratumError as error:
                warnings.append(f"No run was made for step {int(position) + 1}: {error.title}")
                continue
            made.append(result["uri"])
        if schedule.get("review"):
            made.append(self._review_run(uuid, ctx, schedule))
        return made, warnings

    def _review_run(self, uuid, ctx, schedule):
        """The review prints go to a waiting, unlocked run at the review post-processor (infilled), else a new one."""
        station = self.app.repository.get(id_of(schedule["station"]))
        for run_path in station.fields.get("queue") or []:
            run = self.app.repository.get(id_of(run_path))
            if run.fields.get("status") in ("queued", "queued-work-ready") and not run.fields.get("pieces_locked"):
                prints = list(run.fields.get("prints") or [])
                if set(schedule["review"]) <= set(prints):
                    return run_path  # a resumed job: infilled already
                wanted = prints + [p for p in schedule["review"] if p not in prints]
                self._once(f"{RESOURCE}:{uuid}:infill", lambda c: self.app.update(
                    "run", str(run.id), {"prints": wanted}, dict(ctx, command_id=c)))
                return run_path
        return self._once(f"{RESOURCE}:{uuid}:review", lambda c: self.app.create(
            "run", {"prints": schedule["review"], "post_processor": schedule["station"], "pieces_locked": False},
            dict(ctx, uuid=str(run_id(uuid, "review")), command_id=c)))["uri"]

    def _once(self, command_id, call):
        """A command of the job, answered from its receipt when this job, resumed, or a second start of it (the sweep
        re-asks for a slow job) did it already: its rules would refuse it now (the prints are retired, or in the run
        it made), and that refusal is no failure."""
        done = self.app._receipt(command_id)
        if done is not None:
            return done
        try:
            result = call(command_id)
        except StratumError:
            done = self.app._receipt(command_id)  # done by the other start meanwhile
            if done is not None:
                return done
            raise
        self.announce(result)
        return result


class RunTransformationJobs:
    """What the production service adds for `/run-transformation/`: the job's message handler and the sweep that
    restarts jobs whose message was lost or whose process died."""

    @event_handler("production", TRANSFORMATION_REQUESTED)
    def run_transformation(self, payload):
        try:
            ReworkJob(self.app, self._announce).run(payload["run_transformation"])
        except Exception:  # nameko would ack and drop it anyway; the sweep starts it again
            log.exception("run transformation job %s failed", payload)

    @sweep_timer(interval=30)
    def resume_run_transformations(self):
        grace = int(self.config["STRATUM_SWEEP_SECONDS"])
        sweeper = sweeper_for(self.app, "run-transformations", ((RunTransformation, Resource.Created),), grace)

        def resume(transformation):
            if changed_within(transformation, grace):
                return  # moved recently: its job may be alive
            self.dispatch(TRANSFORMATION_REQUESTED, {"run_transformation": f"/{RESOURCE}/{transformation.id}/"})

        sweeper.sweep(lambda t: isinstance(t, RunTransformation) and t.waiting, resume)
