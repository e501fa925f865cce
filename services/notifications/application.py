from shared.application import ResourceApplication
from shared.generic import aggregates_for


class Notifications(ResourceApplication):
    name = "notifications"
    aggregates = aggregates_for("notifications")
