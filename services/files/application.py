from shared.application import ResourceApplication
from shared.generic import aggregates_for


class Files(ResourceApplication):
    name = "files"
    aggregates = aggregates_for("files")
