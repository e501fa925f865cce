from shared.application import ResourceApplication
from shared.registry import resource_classes


class Capture(ResourceApplication):
    name = "capture"
    aggregates = resource_classes("capture")
