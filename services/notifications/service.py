"""The notifications service: generic resource commands (shared.service), plus a subscriber of the orders,
identity and files feeds that turns named domain events into e-mail notifications and order webhooks (the E2
trigger matrix, services.notifications.triggers), and the delivery of both (services.notifications.delivery).

Doorbells (`events_recorded`) make it pull at once; timers pull and deliver anyway, so a lost doorbell, a restart or
an unreachable mail server costs time, never a notification.
"""
import logging

from nameko.events import BROADCAST
from nameko.extensions import DependencyProvider
from nameko.timer import timer

from services.notifications import mail, webhooks
from services.notifications.application import Notifications
from services.notifications.delivery import Deliverer
from services.notifications.facts import Facts, SettingsCopy
from services.notifications.subscriber import SOURCES, Subscriber
from shared.amqp import event_handler
from shared.follower import from_news
from shared.eventstore import EventStore
from shared.service import NEWS_EVENT, ResourceService, rpc
from shared.settings import secret_key

log = logging.getLogger(__name__)
CATCH_UP_INTERVAL = 2  # seconds
DELIVERY_INTERVAL = 1  # seconds


class Outbound(DependencyProvider):
    """Where mails and webhooks go, as configured; the subscriber and the deliverer of this container."""

    def setup(self):
        config = self.container.config
        self.config = config
        self.transport = mail.transport_for(config)
        self.sender = config.get("STRATUM_MAIL_FROM") or mail.DEFAULT_FROM
        self.base_url = (config.get("STRATUM_BASE_URL")
                         or f"http://{config.get('STRATUM_HOST', '127.0.0.1')}:{config.get('STRATUM_PORT', '8000')}")
        self.secret = webhooks.webhook_secret(config, secret_key(config))
        self.allow_private = config.get("STRATUM_CALLBACKS_ALLOW_PRIVATE", "")
        self.subscriber = None
        self.deliverer = None
        self.settings = SettingsCopy()  # bureaus' settings, dropped on any bureau-settings event read here
        if isinstance(self.transport, mail.OutboxTransport):
            log.warning("notifications: STRATUM_SMTP_URL is not set; e-mails are written to the outbox folder %s",
                        self.transport.folder)
        else:
            log.info("notifications: e-mails are sent through %s", self.transport.describe())

    def get_dependency(self, worker_ctx):
        return self

    def over(self, app):
        """The subscriber and deliverer over this container's store (made on first use: the store is ready then)."""
        if self.subscriber is None:
            config = self.config
            self.app = app
            self.subscriber = Subscriber(app)
            self.deliverer = Deliverer(
                app, self.send_email, self.send_webhook,
                max_attempts=int(config.get("STRATUM_DELIVERY_MAX_ATTEMPTS") or 5),
                backoff_seconds=float(config.get("STRATUM_DELIVERY_BACKOFF_SECONDS") or 30),
                lease_seconds=float(config.get("STRATUM_DELIVERY_LEASE_SECONDS") or 120))
        return self

    def send_email(self, notification, facts):
        fields = dict(notification.fields)
        if not fields.get("emails") and fields.get("user"):  # a POSTed notification naming its user
            fields["emails"] = [e for e in [facts.email_of(fields["user"])] if e]
        if not fields.get("emails"):
            raise webhooks.Refused("no recipient: neither emails nor a user with an e-mail address")
        settings = facts.settings(notification.bureau)
        bureau = facts.bureau(notification.bureau) if notification.bureau else {}
        reply_to = fields.get("reply_to") or settings.get("email_reply_to") or bureau.get("reply_to")
        sender_name = settings.get("email_sender_name") or bureau.get("name")
        context = dict(fields.get("context") or {})
        context.setdefault("bureau_name", sender_name)
        if fields["template"] == "users.password_reset":  # the token goes into the mail only, never a record
            reset = facts.password_reset(fields.get("user"))
            if not reset:
                raise webhooks.Refused("the password reset was already used, replaced by a newer one, or expired")
            context.update(reset_token=reset["token"], reset_expires=reset["expires"],
                           reset_uri=facts.absolute("/password-reset/confirm/"))
        message = mail.build_message(notification.id, dict(fields, context=context), self.sender, sender_name,
                                     reply_to)
        self.transport.send(message)
        return {"message_id": message["Message-ID"]}

    def bureau_secret(self, app, bureau):
        return webhooks.bureau_secret(self.secret, bureau, app.webhook_generation(bureau))

    def send_webhook(self, delivery, facts):
        fields = delivery.fields
        payload = dict(fields.get("payload") or {}, delivery=str(delivery.id))
        secret = self.bureau_secret(self.app, delivery.bureau or fields.get("bureau"))
        webhooks.post(fields["url"], payload, secret, delivery.id, fields.get("event") or "", self.allow_private)
        return {}


class NotificationsService(ResourceService):
    name = "notifications"
    app = EventStore(Notifications)
    outbound = Outbound()

    def _facts(self):
        return Facts(self.services.call, self.outbound.base_url, self.outbound.settings)

    def _follow(self, source, until=None, news=None):
        fetch = from_news(self.services.fetcher(source), news)
        if source == "identity":  # every identity batch this process reads, recorded by it or not
            fetch = self.outbound.settings.watching(fetch)
        self.outbound.over(self.app).subscriber.catch_up(source, fetch, self._facts(), until)

    def _deliver(self):
        self.outbound.over(self.app).deliverer.deliver_due(self._facts())

    # -- the bureau's webhook signing secret (the gateway's GET/POST /webhook-secret/, for managers) ---------------

    @rpc
    def webhook_secret(self, bureau):
        return {"bureau": bureau, "secret": self.outbound.bureau_secret(self.app, bureau).decode(),
                "generation": self.app.webhook_generation(bureau)}

    @rpc
    def rotate_webhook_secret(self, bureau):
        self.app.rotate_webhook_key(bureau)
        return self.webhook_secret(bureau)

    @timer(interval=CATCH_UP_INTERVAL)
    def catch_up_all(self):
        for source in SOURCES:
            try:
                self._follow(source)
            except Exception:  # one unreachable service must not stop the others' notifications
                log.warning("notifications: catch-up of %s failed; will retry", source, exc_info=True)

    @timer(interval=DELIVERY_INTERVAL)
    def deliver_due(self):
        try:
            self._deliver()
        except Exception:
            log.warning("notifications: delivery pass failed; will retry", exc_info=True)

    def _on_news(self, source, payload):
        try:
            self._follow(source, until=int(payload.get("position") or 0) or None, news=payload)
            if self.app.recorded_since_asked(source) is not None:  # it queued something to send: at once
                self._deliver()
        except Exception:  # e.g. the source is stopping; the timer pulls whatever this doorbell announced
            log.warning("notifications: catch-up of %s after its doorbell failed; the timer will retry", source,
                        exc_info=True)

    @event_handler("identity", NEWS_EVENT, handler_type=BROADCAST, reliable_delivery=False)
    def on_identity_news_here(self, payload):
        """Every replica hears each identity ring (the handlers above share one queue: one replica pulls) and drops
        its copy of the bureaus' settings when the ring shows a bureau-settings event, or does not say what it
        holds (a bulk write, rings merged across a gap)."""
        if "events" in payload:
            self.outbound.settings.saw(payload["events"])
        else:
            self.outbound.settings.forget()

    # One doorbell handler per followed service (nameko binds a handler to one source service).
    for _source in SOURCES:
        def _handler(self, payload, _source=_source):
            self._on_news(_source, payload)

        _handler.__name__ = f"on_{_source}_news"
        locals()[_handler.__name__] = event_handler(_source, NEWS_EVENT)(_handler)
    del _source, _handler
