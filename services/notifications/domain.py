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
from shared.uris import uuid_of
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


INTERNAL = {"platform_admin": True, "internal": True}
SUPPORT_TEMPLATE = "customer.support_request"


def _author(peers, ctx):
    """The caller as identity has them (name, e-mail), for what a command records under their name."""
    if not ctx.get("user"):
        return {}
    return peers.call("identity", "get", "users", uuid_of(ctx["user"]), INTERNAL) or {}


class Announcement(Resource):
    """capture-and-platform.md E3: a markdown announcement shown in the app to a bureau's users (not an e-mail).
    Posted by the bureau's managers (shared.access.MANAGER_ONLY) for their own bureau, never changed or deleted
    (no PUT or DELETE: 405); `author_name` is the poster's, from the session, not the payload. Its event is
    BureauAnnouncementPosted, which reaches the bureau's users on /event-stream/ as it happens."""

    resource = "bureau-notification"
    display_name = "BureauAnnouncement"

    class Posted(Resource.Created):
        pass

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return cls._create(cls.Posted, id=id, fields=fields, bureau=bureau, actor=actor)

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        if verb != "create":
            return ctx
        author = _author(peers, ctx)
        return dict(ctx, author_name=author.get("name") or author.get("username"))

    @classmethod
    def on_create(cls, unit, new_id, fields):
        return dict(fields, author_name=unit.ctx.get("author_name")), [], {}


class SupportRequest(Resource):
    """capture-and-platform.md E5, /contact-us/: a user's request to the deployment's support, mailed with
    `customer.support_request` to STRATUM_SUPPORT_EMAIL (by default the platform administrator's address,
    STRATUM_ADMIN_EMAIL), with the user's address as Reply-To. The request and its mail are recorded together."""

    resource = "contact-us"
    display_name = "SupportRequest"

    class Submitted(Resource.Created):
        pass

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return cls._create(cls.Submitted, id=id, fields=fields, bureau=bureau, actor=actor)

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        if verb != "create":
            return ctx
        author = _author(peers, ctx)
        bureau = peers.call("identity", "get", "bureau", uuid_of(ctx["bureau"]), INTERNAL) if ctx.get("bureau") \
            else {}
        return dict(ctx, author={"name": author.get("name") or author.get("username"),
                                 "email": author.get("email")},
                    bureau_name=(bureau or {}).get("name"),
                    support_email=peers.config.get("STRATUM_SUPPORT_EMAIL") or peers.config.get("STRATUM_ADMIN_EMAIL"))

    @classmethod
    def on_create(cls, unit, new_id, fields):
        author = unit.ctx.get("author") or {}
        support = unit.ctx.get("support_email")
        fields = dict(fields, user=unit.actor)
        mail = {"template": SUPPORT_TEMPLATE, "emails": [support] if support else None, "user": None,
                "reply_to": author.get("email"), "trigger": f"notifications:contact-us:{new_id}",
                "context": {"support_request_payload": fields["support_request_payload"],
                            "user_name": author.get("name"), "user_email": author.get("email"),
                            "user_uri": unit.actor, "requesting_bureau": unit.ctx.get("bureau_name")}}
        return fields, [unit.new("notifications", Notification.id_for(mail["trigger"], SUPPORT_TEMPLATE), mail)], {}


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


class WebhookKey(Aggregate):
    """Which generation of its webhook signing secret a bureau uses (services.notifications.webhooks.bureau_secret).
    Only the number is stored, never a secret; a bureau that never rotated has none (generation 0)."""

    class Started(Aggregate.Created):
        bureau: str

    class Rotated(Aggregate.Event):
        generation: int

        def apply(self, aggregate):
            aggregate.generation = self.generation

    def __init__(self, bureau):
        self.bureau = bureau
        self.generation = 0

    @staticmethod
    def id_for(bureau):
        return uuid5(NAMESPACE_URL, f"stratum:notifications:webhook-key:{bureau}")

    @classmethod
    def start(cls, bureau):
        return cls._create(cls.Started, id=cls.id_for(bureau), bureau=bureau)

    def rotate(self):
        self.trigger_event(self.Rotated, generation=self.generation + 1)


name_aggregate(WebhookKey, "notifications/webhook-key")
