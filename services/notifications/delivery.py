"""Delivering what the subscriber (or a client's POST) queued: e-mails through the configured transport, webhooks
by HTTP POST, each attempt recorded before it is made and its outcome after.

Exactly once, and the crash window. An attempt is: record AttemptStarted (status `sending`) → send → record
Delivered, or AttemptFailed (retried after backoff × 2^(n-1) s) / GaveUp after STRATUM_DELIVERY_MAX_ATTEMPTS.
Recording the start first means two workers (two timer ticks, two replicas) never send the same notification at
once: the second one's write of AttemptStarted conflicts in the store and it backs off. A notification is queued
once per triggering event (its id is derived from the event), so a mail is sent once per event.

The one window left is a crash after the mail server accepted the message and before Delivered is recorded. No
SMTP server can be asked afterwards whether it got a message, so the choice is between possibly never sending and
possibly sending twice. Stratum chooses to send again, after a lease (STRATUM_DELIVERY_LEASE_SECONDS) has passed
since the interrupted attempt started: the resend carries the same Message-ID (and a webhook the same
X-Stratum-Delivery), derived from the notification, so mail clients, MTAs and receivers can recognise and drop the
duplicate. The interrupted attempt stays in the record with outcome `interrupted`. A crash anywhere else (before
the event's notification was recorded, before AttemptStarted, after Delivered) sends exactly once.

Which deliveries wait is read from the store's own log, once: after each pass the deliverer checkpoints how far it
has read and the deliveries still unfinished (shared.sweep's checkpoints, row `deliveries`), so a restarted process
reads only what was queued since, and still attempts what was pending before the restart.
"""
import logging
import threading
from datetime import datetime, timedelta, timezone
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.notifications.domain import Notification, WebhookDelivery
from services.notifications.webhooks import Refused
from shared.sweep import Checkpoints

log = logging.getLogger(__name__)
BATCH = 500
CHECKPOINT = "deliveries"


def _now():
    return datetime.now(timezone.utc)


class Deliverer:
    def __init__(self, app, send_email, send_webhook, max_attempts=5, backoff_seconds=30, lease_seconds=120,
                 now=_now):
        """`send_email(notification, facts)` / `send_webhook(delivery)` make one attempt: they return extra fields
        to record with Delivered, and raise Refused (not retried) or any other exception (retried)."""
        self.app = app
        self.send = {Notification: send_email, WebhookDelivery: send_webhook}
        self.max_attempts = max_attempts
        self.backoff = backoff_seconds
        self.lease = lease_seconds
        self.now = now
        self.position = 0  # how far the store's log has been read for queued deliveries
        self.pending = set()  # queued at or before `position`, not seen finished
        self.not_before = {}  # delivery id → when it is due (known from its record: no load before then)
        self.lock = threading.Lock()
        self._queued_topics = {Notification.Created.TOPIC, WebhookDelivery.Created.TOPIC}
        self.checkpoints = Checkpoints(app) if Checkpoints.supports(app) else None
        self.saved = None  # (position, pending) as last checkpointed; None: not loaded yet

    def _load(self):
        if self.saved is not None:
            return
        self.saved = (0, set())
        found = self.checkpoints.load(CHECKPOINT) if self.checkpoints is not None else None
        if found is not None:
            self.position, waiting = found
            self.pending = {UUID(delivery_id) for delivery_id in waiting}
            self.saved = (self.position, set(self.pending))

    def _save(self):
        """Checkpoint what this pass proved (never moving back: shared.sweep.Checkpoints.save)."""
        if self.checkpoints is None or self.saved == (self.position, self.pending):
            return
        if self.checkpoints.save(CHECKPOINT, self.position, {str(i): 0 for i in self.pending}):
            self.saved = (self.position, set(self.pending))

    def _read_new(self):
        """Deliveries queued since the last look (since the checkpoint after a restart)."""
        while True:
            notifications = self.app.recorder.select_notifications(start=self.position + 1, limit=BATCH)
            for notification in notifications:
                if notification.topic in self._queued_topics:
                    event = self.app.mapper.to_domain_event(notification)
                    # records of the generic resource from older releases were never deliveries: no status
                    if event.fields.get("status") == "queued":
                        self.pending.add(event.originator_id)
                self.position = notification.id
            if len(notifications) < BATCH:
                return

    def deliver_due(self, facts):
        """Make one attempt for every delivery that is due now; returns how many were attempted. One pass at a time
        per process (a second caller returns at once: the running pass picks up what it would have done)."""
        if not self.lock.acquire(blocking=False):
            return 0
        try:
            self._load()
            self._read_new()
            attempted = 0
            now = self.now()
            for delivery_id in sorted(self.pending, key=str):
                if delivery_id in self.not_before and now < self.not_before[delivery_id]:
                    continue
                attempted += self.attempt(delivery_id, facts)
            self._save()
            return attempted
        finally:
            self.lock.release()

    def attempt(self, delivery_id, facts):
        try:
            delivery = self.app.repository.get(delivery_id)
        except AggregateNotFoundError:
            self.pending.discard(delivery_id)
            return 0
        now = self.now()
        if delivery.finished:
            self._forget(delivery_id)
            return 0
        if not delivery.due(now, self.lease):
            self.not_before[delivery_id] = delivery.due_at(self.lease)
            return 0
        delivery.start_attempt(now)
        try:
            self.app.save(delivery)
        except IntegrityError:  # another worker started it first: look again once its lease is over
            self.not_before[delivery_id] = now + timedelta(seconds=self.lease)
            return 0
        send = self.send[type(delivery)]
        try:
            extra = send(delivery, facts) or {}
        except Refused as refused:
            delivery.give_up(str(refused), delivery._last_attempt(outcome="refused", error=str(refused)))
        except Exception as error:  # noqa: BLE001 - every failure is recorded with its reason, then retried
            reason = f"{type(error).__name__}: {error}"
            log.warning("%s %s: attempt failed: %s", delivery.resource, delivery_id, reason)
            delivery.attempt_failed(self.now(), reason, self.max_attempts, self.backoff)
        else:
            delivery.delivered(self.now(), **extra)
        self.app.save(delivery)
        if delivery.finished:
            self._forget(delivery_id)
        else:
            self.not_before[delivery_id] = delivery.due_at(self.lease)
        return 1

    def _forget(self, delivery_id):
        self.pending.discard(delivery_id)
        self.not_before.pop(delivery_id, None)
