"""The files application: generic resources, plus the upload promise of models, documents, design files, build
files, assets and internal files (files.md §0.2), document replacement (§2.5) and snapshot requests (§2.1)."""
import re
from datetime import datetime, timedelta, timezone
from uuid import uuid4, uuid5

from services.files.domain import UPLOAD_CLASSES, Upload, Zipfile, now_iso
from shared.application import ResourceApplication
from shared.errors import InvalidPayload, NotFound
from shared.generic import aggregates_for
from shared.uris import resource_path, uuid_of

_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
SNAPSHOT_LIMITS = {"width": (16, 4096), "height": (16, 4096), "samples": (1, 64)}
DEFAULT_SNAPSHOT = {"width": 640, "height": 480, "color": "#FF7F00"}
MESH_TYPES = ("stl", "obj", "ply", "3mf")  # the model `type`s Stratum reads
PIPELINE_STEPS = ("receive", "refuse_upload", "scanned", "analyzed", "processing_failed", "request_snapshot",
                  "snapshot_rendered", "snapshot_failed", "start", "complete", "fail", "expire", "unpacked",
                  "outcome_announced")


class Files(ResourceApplication):
    name = "files"
    aggregates = aggregates_for("files", {**UPLOAD_CLASSES, "zipfile": Zipfile})
    zipfile_max_bytes = 2 << 30

    def on_create(self, resource_name, new_id, fields, ctx):
        if resource_name == "design-file":
            return self._design_file_model(new_id, fields, ctx)
        if issubclass(self.aggregates[resource_name], Upload):
            return fields, [], {"upload": True}  # the gateway answers with where to PUT the bytes
        if resource_name == "zipfile-request":
            zipfile = self._zipfile_for(new_id, fields, ctx)
            return fields, [zipfile], {"zipfile": resource_path("zipfile", zipfile.id)}
        return fields, [], {}

    def _design_file_model(self, new_id, fields, ctx):
        """files.md §1.3: a single-mesh design file comes with its model (Model-Location), which its bytes become.
        Formats that need a CAD converter get none: the design file's scan then ends it in error, saying so."""
        result = {"upload": True}
        extra = []
        if fields.get("format") in MESH_TYPES:
            model_id = uuid5(new_id, "model")
            model = self.aggregates["model"].create(model_id, {
                "name": fields.get("name"), "type": fields["format"], "file_unit": "mm",
                "design_file": resource_path("design-file", new_id)}, ctx.get("bureau"), ctx.get("user"))
            extra.append(model)
            fields = dict(fields, _model=resource_path("model", model_id))
            result["model"] = fields["_model"]
        return fields, extra, result

    def _zipfile_for(self, request_id, fields, ctx):
        """files.md §2.8 pre-flight: what goes in (the models of the order's chosen line items, as the orders
        service listed them in ctx['zip_plan']) must exist and fit, else nothing is created."""
        plan = ctx.get("zip_plan") or {}
        models, total = [], 0
        for path in plan.get("models", []):
            try:
                model = self.load("model", uuid_of(path), ctx)
            except NotFound:
                raise NotFound("Some of the requested data cannot be found.") from None
            if model.content:
                models.append(path)
                total += model.content["size"]
        if total > self.zipfile_max_bytes:
            raise InvalidPayload("Requested data size too large to fulfill request")
        expiry = datetime.now(timezone.utc) + timedelta(hours=ctx.get("zipfile_hours", 24))
        manifest = {"line_items": plan.get("line_items", []), "models": models, "bytes": total}
        return Zipfile.create(uuid5(request_id, "zipfile"), {
            "related_table_name": fields["related_table_name"], "related_uuid": fields["related_uuid"],
            "bureau": ctx.get("bureau"), "created_by": ctx.get("user"), "expiry": expiry.isoformat(),
            "manifest": manifest, "status": "pending"}, ctx.get("bureau"), ctx.get("user"))

    # -- steps of the upload pipeline (the gateway's PUT and the service's background jobs) -----------------------

    def advance(self, resource_name, uuid, step, kwargs, command_id):
        """Run one pipeline step on the resource, once per command_id (redelivered jobs change nothing)."""
        if step not in PIPELINE_STEPS:
            raise InvalidPayload(f"'{step}' is not a step of the upload pipeline.")

        def command():
            aggregate = self.load(resource_name, uuid, {"platform_admin": True})
            getattr(aggregate, step)(**kwargs, actor=None)
            return self.outcome(resource_name, aggregate, {})

        return self._execute({"command_id": command_id}, command)

    def get_upload(self, resource_name, uuid):
        return self.load(resource_name, uuid, {"platform_admin": True})

    # -- actions ------------------------------------------------------------------------------------------------

    def action_snapshot(self, resource_name, uuid, payload, ctx):
        """POST /model/{uuid}/snapshot/: render again with these settings (the default one is made after analysis)."""
        params = dict(DEFAULT_SNAPSHOT)
        params.update({k: v for k, v in payload.items() if v is not None and k not in ("model", "callback")})
        if not _COLOUR.match(str(params.get("color", ""))):
            raise InvalidPayload("'color' must be an RGB colour like #FF7F00.", field="color")
        for name, (low, high) in SNAPSHOT_LIMITS.items():
            if name in params and not low <= params[name] <= high:
                raise InvalidPayload(f"'{name}' must be between {low} and {high}.", field=name)

        def command():
            aggregate = self.load(resource_name, uuid, ctx)
            aggregate.request_snapshot(params, ctx.get("user"))
            aggregates, result = self.outcome(resource_name, aggregate, ctx)
            return aggregates, dict(result, uri=result["uri"] + "snapshot/", render=True,
                                    request_id=aggregate.snapshot_request["requested"])

        return self._execute(ctx, command)

    action_binary = action_snapshot

    def action_replace(self, resource_name, uuid, payload, ctx):
        """POST /document/{uuid}/replace/ (files.md §2.5): a new document with the source's relations takes its
        place, the source is archived, and the new one waits for its bytes like any new document."""
        if not payload.get("name"):
            raise InvalidPayload("The field 'name' is required.", field="name")
        new_id = uuid4()

        def command():
            source = self.load(resource_name, uuid, ctx)
            if source.fields.get("archived"):
                raise InvalidPayload("This document was replaced already; replace its newest version.")
            source_path = resource_path(resource_name, source.id)
            fields = {key: source.fields.get(key) for key in ("related_table_name", "related_uuid",
                                                              "related_resources", "parser_template", "auto_parse")}
            fields.update(name=payload["name"], previous_document=source_path,
                          previous_documents=[source_path, *(source.fields.get("previous_documents") or [])],
                          archived=None)
            replacement = self.aggregates[resource_name].create(new_id, fields, source.bureau, ctx.get("user"))
            source.update({"archived": now_iso()}, ctx.get("user"))
            aggregates, result = self.outcome(resource_name, replacement, ctx, extra=[source])
            return aggregates, dict(result, upload=True)

        return self._execute(ctx, command)
