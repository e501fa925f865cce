"""Flow F6 step 5 in production (capture-and-platform.md F6, production.md §1.1 "Machine data … can drive the
status", §2.5): production follows the capture service's feed (with its own tracked position, shared.follower) and
moves a run whose machine reports its build, through the run's own state machine (services.production.runs). The
capture service never writes here; it only records what its machines report (BuildCreated, BuildStatusChanged,
BuildLinkedToRun, …).

Production keeps, per build, a `BuildFollow`: its copy of the build's fields as the feed told them (an update names
only what changed) and the run status it last moved the run to. Rules:
* the mapping (`run_target`): build processing / preheat → run `in-progress`, paused / suspended → `paused`,
  complete → `complete`, failed / machine_error / user_abort / error / cancelled / part_exceeds_boundaries →
  `error`; new / backlogged / waiting_for_resolution / unknown move nothing (the machine has not started it, or
  cannot say);
* only a build linked to a run (`build.run`, set by the capture service when the build's name is the run's uuid)
  moves it, along the §1.1 table without `force`; a target one edge away through `in-progress` is walked through
  (a machine first heard of when it already finished: queued → in-progress → complete);
* never twice, never backwards: a build moves its run to a status once (a repeated report changes nothing), and a
  build that ended (complete or error) never moves its run again (a stale report parsed late says nothing). Paused
  and in-progress alternate freely (pause, resume). Another build of the same run (a retry) may start it again;
* the run's actuals carry the machine's times: `start_in_progress_time` is the build's `start_time`,
  `end_in_progress_time` its `end_time`; a format that tells no such time (Bambu's report has no end time) gives the
  time the capture service recorded the report that told the change;
* a move the run refuses (no printer, the printer busy, a step input missing, a run already finished or cancelled)
  is recorded on the BuildFollow with its reason and logged, never raised: the feed goes on, and the next report of
  the build tries again.

Modeler commands (A5, F7 step 4), kept per command as a `CommandFollow`: a `start_job` command of a run, once
complete, moves the run to in-progress (telemetry then confirms), a `cancel_job` one cancels it; once per command,
along the same table, a refusal recorded, not raised.
"""
import copy
import logging
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate

from services.production.runs import MOVES, Run
from shared.errors import StratumError
from shared.topics import name_aggregate
from shared.uris import resource_path

log = logging.getLogger(__name__)

ERRORS = ("failed", "machine_error", "user_abort", "error", "cancelled", "part_exceeds_boundaries")
TARGETS = {"preheat": "in-progress", "processing": "in-progress", "paused": "paused", "suspended": "paused",
           "complete": "complete", **{status: "error" for status in ERRORS}}
STAGE = {"in-progress": 1, "paused": 1, "complete": 2, "error": 2}  # a build never moves its run to a lower stage
FOLLOWED_FIELDS = ("name", "modeler", "run", "status", "start_time", "end_time", "layers", "current_layer")


def run_target(build_status):
    """The run status a build's status moves its run to (None: none)."""
    return TARGETS.get(build_status)


def moves(run_status, target):
    """The run's moves from `run_status` to `target` along the §1.1 table, without force: [] when it is there
    already, None when the table has no way (a finished or cancelled run, a paused run asked to pause…)."""
    if run_status == target:
        return []
    allowed = MOVES.get(run_status, set())
    if target in allowed:
        return [target]
    if target != "in-progress" and "in-progress" in allowed and target in MOVES["in-progress"]:
        return ["in-progress", target]
    return None


class BuildFollow(Aggregate):
    """Production's view of one build of the capture service (from its feed) and what it did to the build's run."""

    class Started(Aggregate.Created):
        build: str

    class Noted(Aggregate.Event):
        changes: dict

        def apply(self, follow):
            follow.fields.update(self.changes)

    class MovedRun(Aggregate.Event):
        run: str
        status: str

        def apply(self, follow):
            follow.applied = self.status
            follow.refused = None

    class Refused(Aggregate.Event):
        run: str
        status: str
        reason: str

        def apply(self, follow):
            follow.refused = self.reason

    def __init__(self, build):
        self.build = build
        self.fields = {}
        self.applied = None  # the run status this build last moved its run to (or found it at)
        self.refused = None  # why the last move was refused

    @staticmethod
    def id_for(build_path):
        return uuid5(NAMESPACE_URL, f"stratum:production:build-follow:{build_path}")

    @classmethod
    def start(cls, build_path):
        return cls._create(cls.Started, id=cls.id_for(build_path), build=build_path)

    def note(self, changes):
        changes = {k: v for k, v in changes.items() if k in FOLLOWED_FIELDS and self.fields.get(k) != v}
        if changes:
            self.trigger_event(self.Noted, changes=changes)

    def wants(self):
        """The run status this build now asks its run to take, or None (nothing new, or a step backwards)."""
        target = run_target(self.fields.get("status"))
        if not self.fields.get("run") or target is None or target == self.applied:
            return None
        if self.applied is not None and STAGE[target] < STAGE[self.applied]:
            return None
        return target


class CommandFollow(Aggregate):
    """Production's view of one modeler command (A5, F7 step 4): a completed start_job starts its run, a completed
    cancel_job cancels it, once."""

    class Started(Aggregate.Created):
        command: str

    class Noted(Aggregate.Event):
        changes: dict

        def apply(self, follow):
            follow.fields.update(self.changes)

    class Done(Aggregate.Event):
        outcome: str

        def apply(self, follow):
            follow.outcome = self.outcome

    def __init__(self, command):
        self.command = command
        self.fields = {}
        self.outcome = None  # what its completion did to its run (or why it did nothing)

    @staticmethod
    def id_for(command_path):
        return uuid5(NAMESPACE_URL, f"stratum:production:command-follow:{command_path}")

    @classmethod
    def start(cls, command_path):
        return cls._create(cls.Started, id=cls.id_for(command_path), command=command_path)


name_aggregate(BuildFollow, "production/build-follow")
name_aggregate(CommandFollow, "production/command-follow")
COMMAND_TARGETS = {"start_job": "in-progress", "cancel_job": "cancelled"}


def apply_event(batch, event):
    """One public capture event (shared.application feed shape): a build's report, or a completed command, moves
    its run."""
    if event.get("resource") == "modeler-command" and event.get("kind") in ("created", "updated"):
        apply_command_event(batch, event)
        return
    if event.get("resource") != "build" or event.get("kind") not in ("created", "updated"):
        return
    path = resource_path("build", event["uuid"])
    follow = batch.get(BuildFollow.id_for(path))
    if follow is None:
        follow = batch.add(BuildFollow.start(path))
    follow.note(dict(event.get("fields") or {}))
    reconcile(batch, follow, event.get("timestamp"))


def reconcile(batch, follow, reported_at):
    target = follow.wants()
    if target is None:
        return
    run_path = follow.fields["run"]
    run = batch.path(run_path)
    if not isinstance(run, Run) or run.deleted:
        _refuse(follow, run_path, target, "The build's run does not exist (any more).")
        return
    steps = moves(run.fields.get("status"), target)
    if steps is None:
        _refuse(follow, run_path, target, f"A {run.fields.get('status')} run does not move to {target}.")
        return
    for status in steps:
        error = _move(batch, run, status, _machine_time(follow, status, reported_at))
        if error is not None:
            _refuse(follow, run_path, target, error)
            return
        run = batch.path(run_path)
    follow.trigger_event(follow.MovedRun, run=run_path, status=target)


def _machine_time(follow, status, reported_at):
    """When the machine did it: its own start / end time when the format tells one, else when the report came."""
    if status == "in-progress":
        return follow.fields.get("start_time") or reported_at
    if status in ("complete", "error"):
        return follow.fields.get("end_time") or reported_at
    return reported_at


def _move(batch, run, status, at):
    """Move the run (and what its move carries: prints, pieces, the printer's queue, the actuals) inside the batch;
    the reason when the run refuses, with the run left as it was."""
    before = copy.deepcopy(run)
    try:
        run.update({"status": status}, None, at=at)
        for each in run.consequences(batch):
            batch.add(each)
    except StratumError as error:
        batch.add(before)  # its checks come before it touches anything else: only the run has to be put back
        log.info("build-driven move of %s to %s refused: %s", resource_path("run", run.id), status, error)
        return str(getattr(error, "title", None) or error)
    return None


def _refuse(follow, run_path, target, reason):
    if follow.refused != reason:
        follow.trigger_event(follow.Refused, run=run_path, status=target, reason=reason)


def apply_command_event(batch, event):
    path = resource_path("modeler-command", event["uuid"])
    follow = batch.get(CommandFollow.id_for(path))
    if follow is None:
        follow = batch.add(CommandFollow.start(path))
    changes = {k: v for k, v in (event.get("fields") or {}).items()
               if k in ("type", "run", "status") and follow.fields.get(k) != v}
    if changes:
        follow.trigger_event(follow.Noted, changes=changes)
    target = COMMAND_TARGETS.get(follow.fields.get("type"))
    if follow.outcome is not None or follow.fields.get("status") != "complete" or target is None:
        return
    run_path = follow.fields.get("run")
    run = batch.path(run_path) if run_path else None
    if not isinstance(run, Run) or run.deleted:
        follow.trigger_event(follow.Done, outcome="The command names no run.")
        return
    current = run.fields.get("status")
    steps = [] if current == target else ([target] if target in MOVES.get(current, set()) else None)
    if steps is None:
        follow.trigger_event(follow.Done, outcome=f"A {current} run does not move to {target}.")
        return
    for status in steps:
        error = _move(batch, run, status, event.get("timestamp"))
        if error is not None:
            follow.trigger_event(follow.Done, outcome=error)
            return
    follow.trigger_event(follow.Done, outcome=target)
