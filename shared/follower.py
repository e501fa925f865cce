"""Following another service's feed (a domain service reacting to another's events, never writing its store).

The follower keeps its own position in the followed feed as an eventsourcing tracking record, written in the same
transaction as what a batch of the feed changed (the application's recorder is a process recorder). So:
* gap-free: it always pulls from its own position + 1, never from what a doorbell said;
* idempotent: a batch at or below the position changes nothing; ids it makes are derived from what it follows;
* a concurrent follower (another process) that got there first makes the write fail, and the batch is not ours
  to apply any more;
* lazy about batches that change nothing (most of a feed, for most followers: a new order means nothing to
  production): their position is held in memory and written with the next batch that changes something, or once
  it runs UNRECORDED_LIMIT past the last recorded one. No transaction, no ring for them. A crash forgets it and
  re-applies those batches, which changed nothing; never skips one.

`FeedFollower` is the application side (mixed into a ResourceApplication), `pull` the service side: the loop a
doorbell handler and a catch-up timer both run. Production follows orders (F1, planning); orders follows production
(F3, line items and orders moved by their pieces' progress).
"""
import logging
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Tracking

from shared.locks import keyed_lock
from shared.uris import parse_uri

log = logging.getLogger(__name__)
BATCH_SIZE = 200
CATCH_UP_INTERVAL = 2  # seconds: a lost doorbell costs this much latency, never an effect
UNRECORDED_LIMIT = 1000  # notifications a follower may hold in memory only: what a restart re-reads at most



class Batch:
    """The aggregates one feed batch loads and changes (each loaded once, saved together). `get(path)` makes it
    usable where a rule expects a unit's `get`."""

    def __init__(self, app, ctx=None):
        self.app = app
        self.ctx = ctx or {"platform_admin": True}
        self.loaded = {}

    def load_id(self, aggregate_id):
        if aggregate_id not in self.loaded:
            try:
                self.loaded[aggregate_id] = self.app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                self.loaded[aggregate_id] = None
        return self.loaded[aggregate_id]

    def path(self, path):
        try:
            return self.load_id(UUID(parse_uri(path)[1]))
        except (TypeError, ValueError):
            return None

    def get(self, key):
        """By id, or by path as a rule's unit is asked (`unit.get("/order/<uuid>/")`)."""
        return self.load_id(key) if isinstance(key, UUID) else self.path(key)

    actor = None
    bureau = None

    def add(self, aggregate):
        self.loaded[aggregate.id] = aggregate
        return aggregate

    def changed(self):
        return [a for a in self.loaded.values() if a is not None and a.pending_events]


class FeedFollower:
    """Mixed into a ResourceApplication that follows other services' feeds."""

    def __init__(self, *args, **kwargs):
        self._unrecorded = {}  # feed → (position recorded when its batches began to change nothing, position held)
        self._stored = {}  # feed → its tracking record's position as this process last read or wrote it
        self._recorded = {}  # feed → the highest notification id its batches recorded, not yet announced
        super().__init__(*args, **kwargs)

    def construct_recorder(self):
        """A process recorder: a feed batch's events and the position reached in that feed are recorded in one
        transaction (the tracking table the migrate step creates)."""
        return self.factory.process_recorder()

    def position(self, application):
        return max(self.stored_position(application), self._unrecorded.get(application, (0, 0))[1])

    def stored_position(self, application):
        """The feed's tracking record, read from the store once and then kept as this process moves it: a doorbell
        costs no query. Another process (a replica) may have moved it since: a position kept too low only makes
        batches that were applied already be read again, and before a batch that changes something is recorded the
        store's record is read afresh (follow_batch), so such a batch is never applied twice."""
        if application not in self._stored:
            self._stored[application] = self.recorder.max_tracking_id(application) or 0
        return self._stored[application]

    def recorded_since_asked(self, application):
        """The highest notification id recorded for `application`'s batches since the last call (None: nothing
        recorded): what our own ring announces (pull)."""
        return self._recorded.pop(application, None)

    def latest_position(self):
        return self.recorder.max_notification_id() or 0

    def follow_batch(self, application, feed, apply_event):
        """Apply one batch of `application`'s feed (events after our position) with the new position, atomically:
        `apply_event(batch, event)` for each public event. Returns the position now held. `feed["read_after"]`:
        the position the caller read the batch after, holding this feed's lock (pull): not asked again."""
        position = feed["read_after"] if "read_after" in feed else self.position(application)
        last = feed.get("last")
        if last is None or last <= position:
            return position
        # the caller pulled from our position + 1, so the batch is contiguous with what we hold; a concurrent
        # follower may have moved on meanwhile: what it applied is skipped
        batch = Batch(self)
        for event in feed["events"]:
            if event["position"] > position:
                apply_event(batch, event)
        changed = batch.changed()
        recorded_at = self._unrecorded.get(application, (position, None))[0]
        if not changed and last - recorded_at < UNRECORDED_LIMIT:
            self._unrecorded[application] = (recorded_at, last)
            return last
        stored = self.recorder.max_tracking_id(application) or 0
        if stored != self._stored.get(application, stored):  # another process recorded meanwhile: not ours to apply
            self._stored[application] = stored
            self._unrecorded.pop(application, None)
            return self.position(application)
        processing = ProcessingEvent(tracking=Tracking(application_name=application, notification_id=last))
        processing.collect_events(*changed, *self._index_entries(changed))
        try:
            recordings = self._record(processing)
        except IntegrityError:
            self._unrecorded.pop(application, None)  # another follower recorded past it: the store's position holds
            self._stored.pop(application, None)
            return self.position(application)
        self._stored[application] = last
        self._unrecorded.pop(application, None)
        if recordings:
            self._recorded[application] = recordings[-1].notification.id
        self._notify(recordings)
        return last


def pull(app, services, followed, apply_batch, announce, news=None, batch_size=BATCH_SIZE):
    """Pull `followed`'s feed from our own position until it is exhausted, one puller per process and feed at a
    time. `apply_batch(feed)` applies one batch (returns the position held); `announce(payload)` rings our own
    doorbell when the batch changed our store (FeedFollower.recorded_since_asked). A failure is logged: the next
    doorbell or timer pulls again.
    `news`: the doorbell that woke us (None: a timer); nothing is pulled when we already hold its position."""
    read = from_news(lambda start, limit: services.call(followed, "get_notifications", start, limit), news)
    with keyed_lock("follow", id(app), followed):
        try:
            # read once per pull, under the lock (no other puller here moves it), and handed to the batch
            position = app.position(followed)
            if news is not None and position >= int(news.get("position") or 0):
                return
            stalled = 0
            while True:
                feed = read(position + 1, batch_size)
                if feed["last"] is None:
                    return
                reached = apply_batch(dict(feed, read_after=position))
                if reached > position:
                    position = reached
                    stalled = 0
                    recorded = app.recorded_since_asked(followed)
                    if recorded is not None:  # a batch that changed nothing is no news to our own followers
                        announce({"application": app.name, "position": recorded})
                    if feed["complete"]:
                        return
                else:  # a concurrent write to what the batch changes: try again on fresh copies, a few times
                    stalled += 1
                    if stalled >= 3:
                        return
                    position = app.position(followed)
        except Exception:  # the followed service may be away: the timer pulls again
            log.warning("following the %s feed failed; will retry", followed, exc_info=True)


def from_news(fetch, news):
    """A feed reader (`fetch(start, limit)`) that answers from a doorbell's own events when they continue `start`
    without a gap, and pulls otherwise (no events in the ring, a gap before them, or a position past them). The slice
    holds every notification `first`..`last` (shared.service), so answering from it is what the pull would answer
    up to `last`; what came after has its own ring, or the timer."""
    events = (news or {}).get("events")
    if events is None:
        return fetch
    first, last = news["first"], news["last"]

    def read(start, limit):
        if first <= start <= last:
            return {"application": news.get("application"), "events": [e for e in events if e["position"] >= start],
                    "last": last, "complete": True}
        return fetch(start, limit)

    return read
