"""The files application: its resources' classes (the upload promise of models, documents, design files, build files,
assets and internal files — files.md §0.2 —, bundles), and the steps of the upload pipeline the files service and
the gateway run on them. The rules live in the classes (services.files.domain)."""
from services.files.domain import UPLOAD_CLASSES, Zipfile, ZipfileRequest
from shared.application import ResourceApplication, Unit
from shared.errors import InvalidPayload
from shared.registry import resource_classes

PIPELINE_STEPS = ("receive", "refuse_upload", "scanned", "analyzed", "processing_failed", "request_snapshot",
                  "snapshot_rendered", "snapshot_failed", "start", "complete", "fail", "expire", "unpacked",
                  "outcome_announced")
INTERNAL = {"platform_admin": True}


class Files(ResourceApplication):
    name = "files"
    aggregates = resource_classes("files", [*UPLOAD_CLASSES, Zipfile, ZipfileRequest])
    zipfile_max_bytes = 2 << 30

    def advance(self, resource_name, uuid, step, kwargs, command_id):
        """Run one pipeline step on the resource, once per command_id (redelivered jobs change nothing)."""
        if step not in PIPELINE_STEPS:
            raise InvalidPayload(f"'{step}' is not a step of the upload pipeline.")
        unit = Unit(self, INTERNAL)

        def command():
            aggregate = self.load(resource_name, uuid, INTERNAL)
            getattr(aggregate, step)(**kwargs, actor=None)
            return self.outcome(aggregate, unit)

        return self._execute({"command_id": command_id}, command)

    def get_upload(self, resource_name, uuid):
        return self.load(resource_name, uuid, INTERNAL)
