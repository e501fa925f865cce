"""Finding background work that a crash left undone, from the service's own event log.

Background jobs (an upload's analysis, an order's clone) start with a message published after the command that
asks for them commits. A crash between the two loses the message; a job killed half-way may have been acked.
The log still says the work was asked for, so a sweeper reads it (once from the start, then only what is new) and
re-publishes any job whose resource still waits after a grace period. Jobs are idempotent, so a job that was only
slow gets a harmless second start.
"""
import logging
import threading
import time
from datetime import datetime

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import resolve_topic
from nameko.timer import Timer

from shared.topics import aggregate_of

log = logging.getLogger(__name__)
BATCH = 500


class Sweeper:
    def __init__(self, app, starts, grace_seconds):
        """`starts`: the events that ask for background work, as (aggregate class, event class) pairs: an event of
        that class (or a subclass) of that aggregate; None as the aggregate class means any aggregate's."""
        self.app = app
        self.starts = tuple(starts)
        self.grace = grace_seconds
        self.position = 0
        self.waiting = {}  # aggregate id → when its work was asked for (epoch seconds)
        self.lock = threading.Lock()

    def _read_new(self):
        while True:
            notifications = self.app.recorder.select_notifications(start=self.position + 1, limit=BATCH)
            for notification in notifications:
                if self._asks_for_work(notification.topic):
                    event = self.app.mapper.to_domain_event(notification)
                    self.waiting[event.originator_id] = _epoch(event.timestamp)
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
            self._read_new()
            due = [i for i, asked in self.waiting.items() if now - asked >= self.grace]
            for aggregate_id in due:
                try:
                    aggregate = self.app.repository.get(aggregate_id)
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


def _epoch(timestamp):
    return timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)


def sweeper_for(app, name, starts, grace_seconds):
    """The process's Sweeper called `name` for `app` (kept on the application, which lives as long as the
    container, so each sweeper reads the log from the start only once)."""
    sweepers = app.__dict__.setdefault("_stratum_sweepers", {})
    if name not in sweepers:
        sweepers[name] = Sweeper(app, starts, grace_seconds)
    return sweepers[name]


class SweepTimer(Timer):
    """A nameko timer whose interval is the deployment's STRATUM_SWEEP_INTERVAL (seconds), read when the service
    starts, so an operator (or a crash-recovery test) can sweep more or less often without code changes."""

    def setup(self):
        self.interval = float(self.container.config.get("STRATUM_SWEEP_INTERVAL") or self.interval)
        super().setup()


sweep_timer = SweepTimer.decorator
