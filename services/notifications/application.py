from shared.application import ResourceApplication
from shared.registry import resource_classes


class Notifications(ResourceApplication):
    name = "notifications"
    aggregates = resource_classes("notifications")
