from shared.application import ResourceApplication
from shared.registry import resource_classes


class Materials(ResourceApplication):
    name = "materials"
    aggregates = resource_classes("materials")
