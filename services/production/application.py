from shared.application import ResourceApplication
from shared.generic import aggregates_for


class Production(ResourceApplication):
    name = "production"
    aggregates = aggregates_for("production")
