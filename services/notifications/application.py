"""The notifications service (see ../shared/DESIGN.md for what it owns): its resources (e-mail notifications,
webhook deliveries, announcements) and its place in each feed it follows.

`record_batch` is the subscriber's one write: the notifications and webhook deliveries a batch of another service's
events asks for, saved in one transaction with the new feed position (a tracking record, shared.follower). A batch
already recorded (a repeated or late doorbell, a second replica) records nothing: events at or below the position
are skipped, ids are derived from the events (a notification that exists is not made again), and a writer whose
position another has passed meanwhile is refused by the store.
"""
import logging

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Tracking

from services.notifications.domain import (Announcement, FeedPosition, Notification, SupportRequest, WebhookDelivery,
                                          WebhookKey)
from services.notifications.triggers import intents_for
from shared.application import ResourceApplication
from shared.follower import FeedFollower
from shared.registry import resource_classes

KINDS = {"email": Notification, "webhook": WebhookDelivery}
log = logging.getLogger(__name__)
# An event the triggers cannot read (a shape no rule expected) would stop every notification after it if retried
# forever; it is logged and makes none. Anything else (a service that does not answer) stops the batch, retried.
UNREADABLE = (KeyError, TypeError, ValueError, AttributeError)


class Notifications(FeedFollower, ResourceApplication):
    """Follows the other services' feeds as production and orders do (shared.follower.FeedFollower): the position
    in each feed is an eventsourcing tracking record, written in the transaction of the notifications a batch made.

    Releases before this one kept the position as a FeedPosition aggregate. Its stored events still load (the class
    and its topics stay), and the position in a feed is the higher of the two, so an upgraded deployment goes on
    from where it stood: nothing is mailed twice, nothing skipped. Nothing writes FeedPosition any more."""

    name = "notifications"
    aggregates = resource_classes("notifications", [Notification, WebhookDelivery, Announcement,
                                                     SupportRequest])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._legacy = {}  # feed → the FeedPosition an earlier release left (read once: nothing moves it now)

    def legacy_position(self, application):
        """The FeedPosition an earlier release left in this feed, or None (none: nothing writes one any more)."""
        if application not in self._legacy:
            try:
                self._legacy[application] = self.repository.get(FeedPosition.id_for(application)).position
            except AggregateNotFoundError:
                self._legacy[application] = None
        return self._legacy[application]

    def position(self, application):
        return max(super().position(application), self.legacy_position(application) or 0)

    def feed_position(self, application):
        return self.position(application)

    def record_batch(self, application, events, last, facts, read_after=None):
        """Turn the events after this service's position in `application`'s feed into notifications; move the
        position to `last`. Returns the position now held (below `last` when a concurrent reader recorded first).
        `read_after`: the position the caller read the events after, holding the feed's lock (not asked again)."""
        feed = {"events": events, "last": last}
        if read_after is not None:
            feed["read_after"] = read_after
        return self.follow_batch(application, feed,
                                 lambda batch, event: self._apply(application, batch, event, facts))

    def _apply(self, application, batch, event, facts):
        try:
            intents = intents_for(event, facts)
        except UNREADABLE:
            log.exception("notifications: the triggers could not read %s event %s at position %s; it makes no "
                          "notification", application, event.get("names"), event.get("position"))
            return
        for intent in intents:
            if batch.load_id(intent.id) is not None:  # made by this batch or an earlier one
                continue
            batch.add(KINDS[intent.kind].create(intent.id, intent.fields, intent.bureau, None))

    def begin_at(self, application, position):
        """Where the subscriber starts in a feed it has never read: set once (by the migrate step; position 0 on a
        new deployment, recorded as well), never moved. Returns the position it will read after."""
        begun = self.recorder.max_tracking_id(application) is not None or self.legacy_position(application) is not None
        if not begun:
            try:
                self._record(ProcessingEvent(tracking=Tracking(application_name=application,
                                                               notification_id=int(position or 0))))
            except IntegrityError:  # another migrate got there first
                pass
        return self.position(application)

    def webhook_generation(self, bureau):
        try:
            return self.repository.get(WebhookKey.id_for(bureau)).generation
        except AggregateNotFoundError:
            return 0

    def rotate_webhook_key(self, bureau):
        """A new generation of the bureau's webhook secret. Returns the new generation."""
        try:
            key = self.repository.get(WebhookKey.id_for(bureau))
        except AggregateNotFoundError:
            key = WebhookKey.start(bureau)
        key.rotate()
        self.save(key)
        return key.generation
