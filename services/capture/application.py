from shared.application import ResourceApplication
from shared.generic import aggregates_for


class Capture(ResourceApplication):
    name = "capture"
    aggregates = aggregates_for("capture")
