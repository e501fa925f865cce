"""Finding background work that a crash left undone, from the service's own event log.

Background jobs (an upload's analysis, an order's clone) start with a message published after the command that
asks for them commits. A crash between the two loses the message; a job killed half-way may have been acked.
The log still says the work was asked for, so a sweeper reads it and re-publishes any job whose resource still
waits after a grace period. Jobs are idempotent, so a job that was only slow gets a harmless second start.

A sweeper reads each notification once, ever: after each sweep it checkpoints, in the service's own database
(table `stratum_sweeps`, one row per sweeper), the position it has read to and the jobs it still watches (asked
for at or before that position, not yet seen done). A restarted sweeper starts from that row, so it reads only
what is new and still finds a job asked for before the restart. The row is written in one statement, after the
sweep it describes, and holds only what that sweep proved: a crash before the write leaves the previous row, whose
sweep is simply done again; nothing is ever dropped from the row before its resource was loaded and seen done.
"""
import json
import logging
import threading
import time
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import resolve_topic
from nameko.timer import Timer

from shared.topics import aggregate_of

log = logging.getLogger(__name__)
BATCH = 500
TABLE = "stratum_sweeps"


class Sweeper:
    def __init__(self, app, starts, grace_seconds, name=None):
        """`starts`: the events that ask for background work, as (aggregate class, event class) pairs: an event of
        that class (or a subclass) of that aggregate; None as the aggregate class means any aggregate's.
        `name`: where the sweeper checkpoints (None: it keeps nothing, and reads the whole log once per life)."""
        self.app = app
        self.starts = tuple(starts)
        self.grace = grace_seconds
        self.checkpoints = Checkpoints(app) if name and Checkpoints.supports(app) else None
        self.name = name
        self.position = 0
        self.waiting = {}  # aggregate id (str) → when its work was asked for (epoch seconds)
        self.loaded = False
        self.saved = None  # (position, waiting) as last checkpointed
        self.lock = threading.Lock()

    def _load(self):
        if self.loaded:
            return
        self.loaded = True
        if self.checkpoints is None:
            return
        found = self.checkpoints.load(self.name)
        if found is not None:
            self.position, self.waiting = found
            self.saved = (self.position, dict(self.waiting))

    def _save(self):
        if self.checkpoints is None or self.saved == (self.position, self.waiting):
            return
        if self.checkpoints.save(self.name, self.position, self.waiting):
            self.saved = (self.position, dict(self.waiting))

    def _read_new(self):
        while True:
            notifications = self.app.recorder.select_notifications(start=self.position + 1, limit=BATCH)
            for notification in notifications:
                if self._asks_for_work(notification.topic):
                    event = self.app.mapper.to_domain_event(notification)
                    self.waiting[str(event.originator_id)] = _epoch(event.timestamp)
                self.position = notification.id
            if len(notifications) < BATCH:
                return

    def _asks_for_work(self, topic):
        event_cls = resolve_topic(topic)  # stable and legacy topics alike
        return any(issubclass(event_cls, kind) and aggregate in (None, aggregate_of(event_cls))
                   for aggregate, kind in self.starts)

    def sweep(self, still_waiting, resume, now=None):
        """For each job asked for more than `grace` seconds ago: `still_waiting(aggregate)` says whether its
        resource still waits (then `resume(aggregate)` re-publishes it) or is done (then it is forgotten)."""
        now = time.time() if now is None else now
        with self.lock:
            self._load()
            self._read_new()
            due = [i for i, asked in self.waiting.items() if now - asked >= self.grace]
            for aggregate_id in due:
                try:
                    aggregate = self.app.repository.get(UUID(aggregate_id))
                except AggregateNotFoundError:
                    self.waiting.pop(aggregate_id, None)
                    continue
                if still_waiting(aggregate):
                    log.warning("resuming background work for %s, asked for %.0f s ago", aggregate_id,
                                now - self.waiting[aggregate_id])
                    resume(aggregate)
                    self.waiting[aggregate_id] = now  # give the resumed job its own grace period
                else:
                    self.waiting.pop(aggregate_id, None)
            self._save()


class Checkpoints:
    """Sweepers' checkpoints in the service's own event-store database: SQLite file or PostgreSQL schema.

    The table is made by the migrate step (shared.eventstore.create_store) and, where the store makes its own tables
    (SQLite, tests), on first use. A store without it (a deployment not migrated since) sweeps as before: from the
    start of the log once per process life, with a warning."""

    @staticmethod
    def supports(app):
        return type(getattr(app.recorder, "datastore", None)).__module__ in ("eventsourcing.postgres",
                                                                             "eventsourcing.sqlite")

    def __init__(self, app):
        self.app = app
        datastore = app.recorder.datastore
        self.postgres = type(datastore).__module__ == "eventsourcing.postgres"
        self.table = f'"{datastore.schema}".{TABLE}' if self.postgres else TABLE
        self.mark = "%s" if self.postgres else "?"
        self.warned = False

    def create_table(self):
        with self.app.recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (name TEXT PRIMARY KEY, "
                           "position BIGINT NOT NULL, waiting TEXT NOT NULL)")

    def load(self, name):
        """(position, {aggregate id: asked at}) of sweeper `name`, or None when it never checkpointed."""
        try:
            if not self.postgres and self.app.factory.env_create_table():
                self.create_table()
            with self.app.recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(f"SELECT position, waiting FROM {self.table} WHERE name = {self.mark}", (name,))
                row = cursor.fetchone()
        except Exception as error:  # no table: sweep as if never checkpointed
            self._warn(error)
            return None
        if row is None:
            return None
        return int(row["position"]), {str(k): float(v) for k, v in json.loads(row["waiting"]).items()}

    def save(self, name, position, waiting):
        """Record the checkpoint (never moving a sweeper back: two processes of one service sweep the same log)."""
        m = self.mark
        try:
            with self.app.recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(
                    f"INSERT INTO {self.table} (name, position, waiting) VALUES ({m}, {m}, {m}) "
                    f"ON CONFLICT (name) DO UPDATE SET position = excluded.position, waiting = excluded.waiting "
                    f"WHERE {TABLE}.position <= excluded.position",
                    (name, position, json.dumps(waiting, sort_keys=True)))
            return True
        except Exception as error:  # the next sweep tries again; meanwhile a restart re-reads a little more
            self._warn(error)
            return False

    def _warn(self, error):
        if not self.warned:
            self.warned = True
            log.warning("sweeps of %s are not checkpointed (%s): a restart reads its log from the start; run the "
                        "migrate step", self.app.name, error)


def create_checkpoint_table(app):
    """Migrate step: the table where `app`'s sweepers checkpoint."""
    Checkpoints(app).create_table()


def _epoch(timestamp):
    return timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)


def changed_within(aggregate, seconds):
    """Whether `aggregate` changed in the last `seconds`: a job that moved it so recently may be alive, and is not
    started again by a sweep."""
    return time.time() - _epoch(aggregate.modified_on) < seconds


def sweeper_for(app, name, starts, grace_seconds):
    """The process's Sweeper called `name` for `app` (kept on the application, which lives as long as the
    container; it checkpoints under `name` in the service's database, so a new process goes on from there)."""
    sweepers = app.__dict__.setdefault("_stratum_sweepers", {})
    if name not in sweepers:
        sweepers[name] = Sweeper(app, starts, grace_seconds, name=name)
    return sweepers[name]


class SweepTimer(Timer):
    """A nameko timer whose interval is the deployment's STRATUM_SWEEP_INTERVAL (seconds), read when the service
    starts, so an operator (or a crash-recovery test) can sweep more or less often without code changes."""

    def setup(self):
        self.interval = float(self.container.config.get("STRATUM_SWEEP_INTERVAL") or self.interval)
        super().setup()


sweep_timer = SweepTimer.decorator
