from shared.application import ResourceApplication
from shared.registry import resource_classes


class Production(ResourceApplication):
    name = "production"
    aggregates = resource_classes("production")
    indexed_references = (("print", "line_item"),)  # a line item's prints: orders' delete rule asks for them
