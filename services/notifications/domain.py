"""Notifications aggregates: the e-mails (`/notifications/`, capture-and-platform.md E2) and the order webhooks
(`/webhook-delivery/`, a Stratum extension) this service delivers, and where it stands in each feed it follows.

A delivery is recorded before anything leaves the system, and each attempt is recorded before it is made:

    Created (status queued) → AttemptStarted (sending) → Delivered (sent)
                                                       → AttemptFailed (retrying, next try after a backoff) → …
                                                       → GaveUp (failed, with the reason)

The events are named (NotificationAttemptStarted, NotificationDelivered, WebhookDeliveryGaveUp, …) and carry their
field changes, so the read side shows status and attempts like any other field.
"""
from datetime import datetime, timedelta, timezone
from uuid import NAMESPACE_URL, uuid5

from eventsourcing.domain import Aggregate

from shared.resource import Resource
from shared.topics import name_aggregate

QUEUED, SENDING, RETRYING, SENT, FAILED = "queued", "sending", "retrying", "sent", "failed"
FINISHED = (SENT, FAILED)


def now_utc():
    return datetime.now(timezone.utc)


class Delivery(Resource):
    """What an e-mail and a webhook share: queued once, attempted, then sent or given up."""

    class AttemptStarted(Resource.Updated):
        pass

    class Delivered(Resource.Updated):
        pass

    class AttemptFailed(Resource.Updated):
        pass

    class GaveUp(Resource.Updated):
        pass

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields, status=QUEUED, attempts=[], error=None, sent=None)
        return super().create(id, fields, bureau, actor)

    @property
    def status(self):
        return self.fields.get("status")

    @property
    def finished(self):
        return self.deleted or self.status in FINISHED

    def due_at(self, lease_seconds):
        """When the next attempt may start (None: never again): a queued one at once, a retrying one after its
        backoff, one left `sending` after the lease (the process making that attempt died between recording it and
        recording its outcome)."""
        if self.finished:
            return None
        if self.status == RETRYING:
            return datetime.fromisoformat(self.fields["_next_attempt"])
        if self.status == SENDING:
            return datetime.fromisoformat(self.fields["_attempt_started"]) + timedelta(seconds=lease_seconds)
        return datetime.min.replace(tzinfo=timezone.utc)

    def due(self, now, lease_seconds):
        due_at = self.due_at(lease_seconds)
        return due_at is not None and now >= due_at

    def start_attempt(self, now):
        number = len(self.fields.get("attempts") or []) + 1
        attempts = list(self.fields.get("attempts") or [])
        if self.status == SENDING and attempts:  # the previous attempt was interrupted: say so
            attempts[-1] = dict(attempts[-1], outcome="interrupted")
            number = len(attempts) + 1
        attempts.append({"number": number, "at": now.isoformat(), "outcome": "started", "error": None})
        self.trigger_event(self.AttemptStarted, changes={"status": SENDING, "attempts": attempts,
                                                         "_attempt_started": now.isoformat()}, actor=None)
        return number

    def _last_attempt(self, **outcome):
        attempts = list(self.fields.get("attempts") or [])
        attempts[-1] = dict(attempts[-1], **outcome)
        return attempts

    def delivered(self, now, **extra):
        self.trigger_event(self.Delivered, changes={"status": SENT, "sent": now.isoformat(), "error": None,
                                                    "attempts": self._last_attempt(outcome="sent"), **extra},
                           actor=None)

    def attempt_failed(self, now, error, max_attempts, backoff_seconds):
        """A failed attempt: retried after backoff × 2^(n-1) seconds, or given up after `max_attempts`."""
        attempts = self._last_attempt(outcome="failed", error=error)
        if len(attempts) >= max_attempts:
            self.give_up(error, attempts)
            return
        wait = backoff_seconds * 2 ** (len(attempts) - 1)
        self.trigger_event(self.AttemptFailed, changes={
            "status": RETRYING, "error": error, "attempts": attempts,
            "_next_attempt": (now + timedelta(seconds=wait)).isoformat()}, actor=None)

    def give_up(self, error, attempts=None):
        self.trigger_event(self.GaveUp, changes={"status": FAILED, "error": error,
                                                 "attempts": attempts or self.fields.get("attempts") or []},
                           actor=None)


class Notification(Delivery):
    """An e-mail from one of the 36 templates: POSTed by a client, or made by a trigger of the E2 matrix."""

    resource = "notifications"

    @staticmethod
    def id_for(trigger, template, key=""):
        """Deterministic: one notification per (triggering event, template[, key]); a trigger seen twice (a
        repeated batch, a replayed feed) makes the same id, which the store refuses to create again."""
        return uuid5(NAMESPACE_URL, f"stratum:notification:{trigger}:{template}:{key}")


class WebhookDelivery(Delivery):
    """One JSON POST of an order's event to the order's callback_url."""

    resource = "webhook-delivery"

    @staticmethod
    def id_for(trigger, url):
        return uuid5(NAMESPACE_URL, f"stratum:webhook:{trigger}:{url}")


class FeedPosition(Aggregate):
    """How far this service has read another service's feed. Saved in the same transaction as the notifications
    the read events made, so they and the position move together; optimistic concurrency on this aggregate makes
    two concurrent readers of one feed (two replicas, a doorbell and a timer) conflict instead of both recording."""

    class Started(Aggregate.Created):
        application: str

    class Advanced(Aggregate.Event):
        position: int

        def apply(self, aggregate):
            aggregate.position = self.position

    def __init__(self, application):
        self.application = application
        self.position = 0

    @staticmethod
    def id_for(application):
        return uuid5(NAMESPACE_URL, f"stratum:notifications:feed-position:{application}")

    @classmethod
    def start(cls, application):
        return cls._create(cls.Started, id=cls.id_for(application), application=application)

    def advance(self, position):
        if position > self.position:
            self.trigger_event(self.Advanced, position=position)


name_aggregate(FeedPosition, "notifications/feed-position")
