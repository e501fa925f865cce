from services.notifications.application import Notifications
from shared.eventstore import EventStore
from shared.service import ResourceService


class NotificationsService(ResourceService):
    name = "notifications"
    app = EventStore(Notifications)
