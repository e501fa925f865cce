from services.production.packing.layout import Layout
from shared.application import ResourceApplication
from shared.registry import resource_classes


class Production(ResourceApplication):
    name = "production"
    aggregates = resource_classes("production", [Layout])  # Layout: /layout/ (services/production/packing)
    indexed_references = (("print", "line_item"),)  # a line item's prints: orders' delete rule asks for them
