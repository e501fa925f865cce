"""The notifications service (see ../shared/DESIGN.md for what it owns): its resources (e-mail notifications,
webhook deliveries, announcements) and its place in each feed it follows.

`record_batch` is the subscriber's one write: the notifications and webhook deliveries a batch of another service's
events asks for, saved in one transaction with the new feed position. A batch already recorded (a repeated or
late doorbell, a second replica) records nothing: events at or below the position are skipped, ids are derived from
the events (a notification that exists is not made again), and two writers of one position conflict in the store.
"""
import logging

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.notifications.domain import (Announcement, FeedPosition, Notification, SupportRequest, WebhookDelivery,
                                          WebhookKey)
from services.notifications.triggers import intents_for
from shared.application import ResourceApplication
from shared.registry import resource_classes

KINDS = {"email": Notification, "webhook": WebhookDelivery}
log = logging.getLogger(__name__)
# An event the triggers cannot read (a shape no rule expected) would stop every notification after it if retried
# forever; it is logged and makes none. Anything else (a service that does not answer) stops the batch, retried.
UNREADABLE = (KeyError, TypeError, ValueError, AttributeError)


class PositionMoved(Exception):
    """Someone else recorded this feed's batch first: read the position again."""


class Notifications(ResourceApplication):
    name = "notifications"
    aggregates = resource_classes("notifications", [Notification, WebhookDelivery, Announcement,
                                                         SupportRequest])

    def feed_position(self, application):
        try:
            return self.repository.get(FeedPosition.id_for(application)).position
        except AggregateNotFoundError:
            return 0

    def record_batch(self, application, events, last, facts):
        """Turn the events after this service's position in `application`'s feed into notifications; move the
        position to `last`. Returns the new position."""
        try:
            position = self.repository.get(FeedPosition.id_for(application))
        except AggregateNotFoundError:
            position = FeedPosition.start(application)
        if last is None or last <= position.position:
            return position.position
        made = {}
        for event in events:
            if event["position"] <= position.position:
                continue
            try:
                intents = intents_for(event, facts)
            except UNREADABLE:
                log.exception("notifications: the triggers could not read %s event %s at position %s; it makes no "
                              "notification", application, event.get("names"), event.get("position"))
                continue
            for intent in intents:
                if intent.id in made or self._exists(intent.id):
                    continue
                made[intent.id] = KINDS[intent.kind].create(intent.id, intent.fields, intent.bureau, None)
        position.advance(last)
        try:
            self.save(position, *made.values())
        except IntegrityError:
            raise PositionMoved(application) from None
        return position.position

    def begin_at(self, application, position):
        """Where the subscriber starts in a feed it has never read: set once (by the migrate step), never moved
        back. Returns the position it will read after."""
        try:
            return self.repository.get(FeedPosition.id_for(application)).position
        except AggregateNotFoundError:
            pass
        start = FeedPosition.start(application)
        start.advance(position)
        try:
            self.save(start)
        except IntegrityError:  # another migrate got there first
            return self.feed_position(application)
        return start.position

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

    def _exists(self, aggregate_id):
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True
