from shared.application import ResourceApplication
from shared.generic import aggregates_for


class Materials(ResourceApplication):
    name = "materials"
    aggregates = aggregates_for("materials")
