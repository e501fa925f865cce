from shared.application import ResourceApplication
from shared.generic import aggregates_for


class Production(ResourceApplication):
    name = "production"
    aggregates = aggregates_for("production")
    indexed_references = (("print", "line_item"),)  # a line item's prints: orders' delete rule asks for them
