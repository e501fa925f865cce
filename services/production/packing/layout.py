"""`/layout/` (production.md §4.13): a request to nest models on a plate, answered by a background job.

POST checks the build and the spacing (the documented 400s), resolves the plate (from the build object or the
printer type it names) and which model each entry of `models` is (a `/print/` entry packs its line item's model),
stores the layout as `queued` and asks for the job (`layout_requested`). The job (services.production.packing.job)
moves it to `processing`, records its progress, then `complete` with the positions, the copies that did not fit,
the fill and the pictures — or `error`. Feed names: LayoutCreated, LayoutProcessingStarted, LayoutProgressed,
LayoutCompleted, LayoutFailed.
"""
from services.production.packing import plates
from shared.errors import InvalidPayload, NotFound
from shared.resource import Resource
from shared.uris import parse_uri, resource_path

LAYOUT_REQUESTED = "layout_requested"
WAITING = ("queued", "processing")
MAX_COPIES = 2000


def _bad_model(uri):
    return InvalidPayload(f"{uri!r} is not a model or print you can see.", field="models")


class Layout(Resource):
    resource = "layout"

    class ProcessingStarted(Resource.Updated):
        pass

    class Progressed(Resource.Updated):
        pass

    class Completed(Resource.Updated):
        pass

    class Failed(Resource.Updated):
        pass

    # -- POST -------------------------------------------------------------------------------------------------------

    @classmethod
    def prepare(cls, payload, ctx):
        """The documented 400s come before the generic validation (which would word them differently)."""
        if isinstance(payload, dict):
            models = payload.get("models")
            if isinstance(models, list) and not 1 <= len(models) <= MAX_COPIES:
                raise InvalidPayload(f"'models' must name 1 to {MAX_COPIES} copies (one entry per copy).",
                                     field="models")
            if "min_packing_distance" in payload:
                plates.spacing(payload["min_packing_distance"])
            if "build" in payload:
                plates.options(payload["build"])
        return payload

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """Which model each entry names, as the caller may see it: a model (files), or a print's line item's model
        (this service's print, orders' line item)."""
        if verb != "create" or not isinstance(payload, dict) or not isinstance(payload.get("models"), list):
            return ctx
        resolved = {}
        for uri in payload["models"]:
            try:
                resource, uuid_ = parse_uri(uri)
            except ValueError:
                raise _bad_model(uri) from None
            path = resource_path(resource, uuid_)
            if path in resolved:
                continue
            try:
                if resource == "model":
                    model = peers.call("files", "get", "model", uuid_, ctx)
                    resolved[path] = {"model": path, "name": model.get("name")}
                elif resource == "print":
                    line_item = peers.app.read("print", uuid_, ctx).get("line_item")
                    model_path = peers.call("orders", "get", "line-item", parse_uri(line_item)[1], ctx).get("model")
                    model = peers.call("files", "get", "model", parse_uri(model_path)[1], ctx)
                    resolved[path] = {"model": resource_path("model", parse_uri(model_path)[1]),
                                      "name": model.get("name")}
                else:
                    raise _bad_model(uri)
            except (NotFound, ValueError, TypeError):
                raise _bad_model(uri) from None
        return dict(ctx, layout_models=resolved)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        build = fields["build"]
        rotations, time_limit = plates.options(build)
        spacing = plates.spacing(fields["min_packing_distance"])
        printer_type = None
        if build.get("printer_type") is not None:
            try:
                _, pt_uuid = parse_uri(build["printer_type"])
                printer_type = unit.load("printer-type", pt_uuid).fields
            except (ValueError, NotFound):
                raise InvalidPayload(f"{plates.BUILD_INVALID} 'printer_type' is not a printer type you can see.",
                                     field="build") from None
        plate = plates.plate_of(build, printer_type)
        packer = plates.packer(build)
        if packer == "pack3d":
            plates.volume_of(plate)
        resolved = unit.ctx.get("layout_models") or {}
        targets = {}
        for uri in fields["models"]:
            resource, uuid_ = parse_uri(uri)
            path = resource_path(resource, uuid_)
            if path not in resolved:
                raise _bad_model(uri)
            targets[uri] = resolved[path]
        fields = dict(fields, status="queued", positions=None, fill_percentage=None, error=None,
                      _plate=plate, _spacing=spacing, _rotations=rotations, _time_limit=time_limit, _models=targets,
                      _packer=packer)
        return fields, [], {}

    @classmethod
    def follow_ups(cls, verb, result, payload):
        return [(LAYOUT_REQUESTED, {"layout": result["uri"]})] if verb == "create" else []

    # -- the job's steps (each recorded once per command id: see job.py) ----------------------------------------------

    @property
    def waiting(self):
        return not self.deleted and self.fields.get("status") in WAITING

    def start(self, actor=None):
        if self.fields.get("status") == "queued":
            self.trigger_event(self.ProcessingStarted, changes={"status": "processing"}, actor=actor)

    def progressed(self, progress, actor=None):
        if self.fields.get("status") == "processing":
            self.trigger_event(self.Progressed, changes={"progress": progress}, actor=actor)

    def complete(self, result, png=None, svg=None, actor=None):
        if self.fields.get("status") in WAITING:
            self.trigger_event(self.Completed, changes={
                "status": "complete", "positions": result["positions"], "unfitted": result["unfitted"],
                "fill_percentage": result["fill_percentage"], "error": None,
                "progress": dict(self.fields.get("progress") or {}, phase="done", placed=len(result["positions"]),
                                 fill_percentage=result["fill_percentage"], engine=result.get("engine")),
                "_snapshot": png, "_snapshot_svg": svg}, actor=actor)

    def fail(self, reason, actor=None):
        if self.fields.get("status") in WAITING:
            self.trigger_event(self.Failed, changes={"status": "error", "error": reason,
                                                     "progress": dict(self.fields.get("progress") or {},
                                                                      phase="failed")}, actor=actor)
