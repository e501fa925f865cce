"""The upload promise shared by every file-bearing resource (files.md §0.2), as one aggregate shape.

POST creates the promise; the bytes land (`FileReceived`); a scan passes or quarantines them (`VirusScanned`);
models are then analysed (`Analyzed`, or `ProcessingFailed` with a reason) and get a snapshot
(`SnapshotRendered`). Each step is a named event (ModelAnalyzed, DocumentFileReceived, …) that still carries its
field changes, so the read side projects it like any update and other services can react to it by name.

Blob references live in fields whose names start with `_` (`_content`, `_snapshot`): the read side keeps them (the
gateway turns them into signed download links) but they are never rendered as API fields.
"""
import re
from datetime import datetime, timedelta, timezone
from uuid import uuid4, uuid5

from services.files.callbacks import check_callback
from shared.errors import Conflict, InvalidPayload, NotFound
from shared.resource import Resource, action
from shared.uploads import PROFILES
from shared.uris import parse_uri, resource_path, uuid_of

MESH_TYPES = ("stl", "obj", "ply", "3mf")  # the model `type`s Stratum reads
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
SNAPSHOT_LIMITS = {"width": (16, 4096), "height": (16, 4096), "samples": (1, 64)}
DEFAULT_SNAPSHOT = {"width": 640, "height": 480, "color": "#FF7F00"}
ZIPFILE_REQUESTED = "zipfile_requested"
SNAPSHOT_REQUESTED = "snapshot_requested"
UPLOAD_RECEIVED = "upload_received"
MESH_FIGURES = ("volume_mm", "surface_area_mm", "size", "polygons", "file_size", "analyses")
USABLE_MODEL_STATUSES = ("processed", "repaired")  # files.md §1.1: what slicing, layout and line items accept


def now_iso():
    return datetime.now(timezone.utc).isoformat()


class Upload(Resource):
    """A resource whose bytes follow its POST. Subclasses set `resource` and `profile`."""

    profile = None  # an UploadProfile (not annotated: eventsourcing would take it for a constructor argument)
    tells_orders = False

    class FileReceived(Resource.Updated):
        pass

    class UploadRefused(Resource.Updated):
        pass

    class VirusScanned(Resource.Updated):
        pass

    class Analyzed(Resource.Updated):
        pass

    class ProcessingFailed(Resource.Updated):
        pass

    class SnapshotRequested(Resource.Updated):
        pass

    class OutcomeAnnounced(Resource.Updated):
        pass

    class SnapshotRendered(Resource.Updated):
        pass

    @classmethod
    def create(cls, id, fields, bureau, actor):
        p = cls.profile
        fields = dict(fields, _awaiting_upload=True, virus_scan="unscanned")
        if fields.get("callback"):
            fields["callback"] = check_callback(fields["callback"])
        if p.status_field:
            fields[p.status_field] = p.initial
        for owner_field in ("user_uri", "user", "created_by"):
            if owner_field in _fields_of(cls.resource):
                fields[owner_field] = actor
        return super().create(id, fields, bureau, actor)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        return fields, [], {"upload": True}  # the gateway answers with where to PUT the bytes

    @property
    def declared_format(self):
        """What the client said the bytes are: the mesh type or format, else the file's name."""
        for name in self.profile.format_fields:
            if self.fields.get(name):
                return self.fields[name]
        return self.profile.default_format

    # -- the steps of the promise ------------------------------------------------------------------------------

    def update(self, changes, actor):
        if changes.get("callback"):
            changes = dict(changes, callback=check_callback(changes["callback"]))
        if "file_unit" in changes and changes["file_unit"] != self.fields.get("file_unit") and self.content \
                and self.profile.is_mesh:
            self._change_unit(changes, actor)
            return
        super().update(changes, actor)

    class UnitChanged(Resource.Updated):
        pass

    def _change_unit(self, changes, actor):
        """A file uploaded in the wrong unit (inches read as mm: the classic) is measured again in the new one, from
        the same bytes, instead of asking for a new upload. The figures stay until the new analysis replaces them."""
        p = self.profile
        if self.fields.get(p.status_field) == p.receiving:
            raise Conflict("The model is being analysed; change its unit once that has ended.")
        if self.fields.get("virus_scan") != "passed" or self.fields.get(p.status_field) == p.too_large:
            raise InvalidPayload("Only a model whose file was scanned and read can be measured again in another "
                                 "unit; upload the file again instead.", field="file_unit")
        again = dict(changes, **{p.status_field: p.receiving, "_announced": None,
                                 "_round": (self.fields.get("_round") or 1) + 1})  # a new round of processing
        self.trigger_event(self.UnitChanged, changes=again, actor=actor)

    @classmethod
    def has_field(cls, name):
        return name in _fields_of(cls.resource)

    @property
    def awaiting_upload(self):
        return bool(self.fields.get("_awaiting_upload"))

    @property
    def content(self):
        return self.fields.get("_content")

    def receive(self, blob, actor):
        """The bytes landed. The same bytes again (a retried PUT) change nothing; other bytes after the first are
        refused: a file is replaced by a new resource (files.md §1.1: models are immutable), not overwritten."""
        if not self.awaiting_upload:
            if self.content and self.content.get("sha256") == blob["sha256"]:
                return
            raise Conflict("This resource already has its file; upload a new one as a new resource.")
        p = self.profile
        changes = {"_content": blob, "_awaiting_upload": False, "virus_scan": "unscanned"}
        if "file_size" in _fields_of(self.resource):
            changes["file_size"] = blob["size"]
        if p.status_field:
            changes[p.status_field] = p.receiving
        if p.received_stamp:
            changes[p.received_stamp] = now_iso()
        self.trigger_event(self.FileReceived, changes=changes, actor=actor)

    def refuse_upload(self, reason, size, actor):
        """The bytes were refused at the door (too large): the promise ends with that reason."""
        if not self.awaiting_upload:
            raise Conflict("This resource already has its file; upload a new one as a new resource.")
        changes = {"_awaiting_upload": False, **self._failure(self.profile.too_large, reason)}
        if "file_size" in _fields_of(self.resource):
            changes["file_size"] = size
        self.trigger_event(self.UploadRefused, changes=changes, actor=actor)

    def scanned(self, verdict, reason, actor):
        if self.fields.get("virus_scan") != "unscanned":
            return
        changes = {"virus_scan": verdict}
        if verdict == "quarantined":
            changes.update(self._failure(self.profile.failed, f"Quarantined: {reason}"))
        elif not (self.profile.is_mesh or self.profile.unpacks) and self.profile.status_field:
            changes[self.profile.status_field] = self.profile.done
        self.trigger_event(self.VirusScanned, changes=changes, actor=actor)

    @property
    def awaiting_analysis(self):
        p = self.profile
        return (p.is_mesh and self.fields.get("virus_scan") == "passed"
                and self.fields.get(p.status_field) == p.receiving)

    def analyzed(self, figures, actor):
        if not self.awaiting_analysis:
            return
        changes = {key: figures[key] for key in MESH_FIGURES if key in _fields_of(self.resource)}
        changes[self.profile.status_field] = self.profile.done
        self.trigger_event(self.Analyzed, changes=changes, actor=actor)

    def processing_failed(self, status, reason, actor):
        if not self.awaiting_analysis:
            return
        self.trigger_event(self.ProcessingFailed, changes=self._failure(status, reason), actor=actor)

    def _failure(self, status, reason):
        p = self.profile
        changes = {}
        if p.status_field:
            changes[p.status_field] = status
        if p.reason_field == "analyses":
            changes["analyses"] = {"error": reason}
        elif p.reason_field:
            changes[p.reason_field] = reason
        return changes

    # -- telling others (the event log is the outbox) ----------------------------------------------------------

    @property
    def outcome_unannounced(self):
        """Processing of these bytes has ended, but other services (and the client's callback) were not yet told."""
        status = self.fields.get(self.profile.status_field) if self.profile.status_field else None
        return bool(self.profile.is_mesh and self.content and status not in (None, self.profile.initial,
                                                                               self.profile.receiving)
                    and self.fields.get("_announced") != self.content["sha256"])

    def outcome_announced(self, sha256, actor):
        if self.fields.get("_announced") != sha256:
            self.trigger_event(self.OutcomeAnnounced, changes={"_announced": sha256}, actor=actor)

    # -- design files (files.md §1.3) ----------------------------------------------------------------------------

    @property
    def awaiting_unpack(self):
        p = self.profile
        return (p.unpacks and self.fields.get("virus_scan") == "passed"
                and self.fields.get(p.status_field) == p.receiving)

    def unpacked(self, model_status, reason, actor):
        """Its model was analysed: processed when the model is usable, else error with the model's reason."""
        if not self.awaiting_unpack:
            return
        if model_status in USABLE_MODEL_STATUSES:
            self.trigger_event(self.Unpacked, changes={self.profile.status_field: self.profile.done}, actor=actor)
        else:
            self.trigger_event(self.UnpackFailed, changes=self._failure(self.profile.failed, reason), actor=actor)

    class Unpacked(Resource.Updated):
        pass

    class UnpackFailed(Resource.Updated):
        pass

    # -- snapshots (files.md §2.1) --------------------------------------------------------------------------------

    @action("snapshot")
    def ask_for_snapshot(self, unit, payload):
        """POST /model/{uuid}/snapshot/: render again with these settings (the default one follows analysis)."""
        params = dict(DEFAULT_SNAPSHOT)
        params.update({k: v for k, v in payload.items() if v is not None and k not in ("model", "callback")})
        if not _COLOUR.match(str(params.get("color", ""))):
            raise InvalidPayload("'color' must be an RGB colour like #FF7F00.", field="color")
        for name, (low, high) in SNAPSHOT_LIMITS.items():
            if name in params and not low <= params[name] <= high:
                raise InvalidPayload(f"'{name}' must be between {low} and {high}.", field=name)
        self.request_snapshot(params, unit.actor)
        aggregates, result = unit.outcome(self)
        return aggregates, dict(result, uri=result["uri"] + "snapshot/", render=True,
                                request_id=self.snapshot_request["requested"])

    @action("binary")
    def ask_for_snapshot_binary(self, unit, payload):
        return self.ask_for_snapshot(unit, payload)

    @classmethod
    def follow_ups(cls, verb, result, payload):
        if result.get("render"):
            uuid = parse_uri(result["uri"].removesuffix("snapshot/"))[1]
            return [(SNAPSHOT_REQUESTED, {"resource": cls.resource, "uuid": uuid, "request_id": result["request_id"]})]
        return []

    def request_snapshot(self, params, actor):
        """Ask for a (re-)render with these camera and image settings; renders once the model is processed."""
        if not self.profile.is_mesh:
            raise InvalidPayload(f"A {self.resource} has no snapshot.")
        request = dict(params, status="in_queue", requested=now_iso())
        self.trigger_event(self.SnapshotRequested, changes={"_snapshot_request": request}, actor=actor)

    @property
    def snapshot_request(self):
        return self.fields.get("_snapshot_request") or {}

    def snapshot_rendered(self, blob, request_id, actor):
        if self.snapshot_request.get("requested") != request_id:
            return  # a newer request superseded this render
        request = dict(self.snapshot_request, status="rendered", rendered=now_iso())
        changes = {"_snapshot": blob, "_snapshot_request": request,
                   "snapshot": resource_path(self.resource, self.id) + "snapshot/"}
        self.trigger_event(self.SnapshotRendered, changes=changes, actor=actor)

    def snapshot_failed(self, reason, request_id, actor):
        if self.snapshot_request.get("requested") != request_id:
            return
        request = dict(self.snapshot_request, status="error", error=reason)
        self.trigger_event(self.ProcessingFailed, changes={"_snapshot_request": request}, actor=actor)


def _fields_of(resource_name):
    from shared import catalogue
    return catalogue.resource(resource_name).fields


class Model(Upload):
    resource = "model"
    profile = PROFILES["model"]
    tells_orders = True  # orders re-estimates the line items printing it when its processing ends

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """Deleting needs to know which line items print the model (orders)."""
        if verb != "delete":
            return ctx
        peers.app.load("model", uuid, ctx)  # an unknown or foreign model is a 404 first
        printed_by = peers.call("orders", "referencing", "line-item", "model", f"/model/{uuid}/",
                                {"platform_admin": True})
        return dict(ctx, printed_by=printed_by)

    def check_deletable(self, unit):
        """A model that line items print is part of their record (what was made, from which file): it goes only
        once no line item prints it any more."""
        printed_by = unit.ctx.get("printed_by") or []
        if printed_by:
            raise Conflict(f"The model is printed by {len(printed_by)} line item(s); give them another model (or "
                           "delete them) before deleting it.")


class Asset(Upload):
    resource = "asset"
    profile = PROFILES["asset"]


class DesignFile(Upload):
    """files.md §1.3: a single-mesh design file comes with its model (Model-Location), which its bytes become.
    Formats that need a CAD converter get none: the design file's scan then ends it in error, saying so."""

    resource = "design-file"
    profile = PROFILES["design-file"]

    @classmethod
    def on_create(cls, unit, new_id, fields):
        result = {"upload": True}
        extra = []
        if fields.get("format") in MESH_TYPES:
            model_id = uuid5(new_id, "model")
            extra.append(unit.new("model", model_id, {
                "name": fields.get("name"), "type": fields["format"], "file_unit": "mm",
                "design_file": resource_path("design-file", new_id)}))
            fields = dict(fields, _model=resource_path("model", model_id))
            result["model"] = fields["_model"]
        return fields, extra, result


class BuildFile(Upload):
    resource = "build-file"
    profile = PROFILES["build-file"]


class Document(Upload):
    resource = "document"
    profile = PROFILES["document"]

    @action("replace")
    def replace(self, unit, payload):
        """POST /document/{uuid}/replace/ (files.md §2.5): a new document with the source's relations takes its
        place, the source is archived, and the new one waits for its bytes like any new document."""
        if not payload.get("name"):
            raise InvalidPayload("The field 'name' is required.", field="name")
        if self.fields.get("archived"):
            raise InvalidPayload("This document was replaced already; replace its newest version.")
        source_path = resource_path(self.resource, self.id)
        fields = {key: self.fields.get(key) for key in ("related_table_name", "related_uuid",
                                                        "related_resources", "parser_template", "auto_parse")}
        fields.update(name=payload["name"], previous_document=source_path,
                      previous_documents=[source_path, *(self.fields.get("previous_documents") or [])],
                      archived=None)
        replacement = unit.new(self.resource, uuid4(), fields, self.bureau)
        self.update({"archived": now_iso()}, unit.actor)
        aggregates, result = unit.outcome(replacement, extra=[self])
        return aggregates, dict(result, upload=True)


class File(Upload):
    resource = "file"
    profile = PROFILES["file"]


UPLOAD_CLASSES = [Model, Asset, DesignFile, BuildFile, Document, File]


class Zipfile(Resource):
    """files.md §2.8: an order's files bundled by a background job, kept until `expiry`, then gone for good."""

    resource = "zipfile"
    MOVES = {"pending": {"processing", "error"}, "processing": {"completed", "error"},
             "completed": {"deleted"}, "error": {"deleted"}}

    class CompilationStarted(Resource.Updated):
        pass

    class Completed(Resource.Updated):
        pass

    class Failed(Resource.Updated):
        pass

    class Expired(Resource.Updated):
        pass

    def _move(self, event, status, **changes):
        if status not in self.MOVES.get(self.fields.get("status"), ()):
            return False
        self.trigger_event(event, changes=dict(changes, status=status), actor=None)
        return True

    def start(self, actor=None):
        return self._move(self.CompilationStarted, "processing")

    def complete(self, blob, actor=None):
        return self._move(self.Completed, "completed", _content=blob)

    def fail(self, reason, actor=None):
        return self._move(self.Failed, "error", manifest=dict(self.fields.get("manifest") or {}, error=reason))

    def expire(self, actor=None):
        return self._move(self.Expired, "deleted", _content=None)


class ZipfileRequest(Resource):
    """files.md §2.8: asking for an order's files as one bundle. The answer's Location is the bundle to poll."""

    resource = "zipfile-request"

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """What goes in: the order's line items (all, or those asked for) and their models, as the caller may see
        them (orders); and how long the bundle is kept."""
        if verb != "create":
            return ctx
        missing = NotFound("Some of the requested data cannot be found.")
        try:
            order = peers.call("orders", "get", "order", str(payload.get("related_uuid")), ctx)
        except NotFound:
            raise missing from None
        order_items = order.get("line_items") or []
        line_items, models = [], []
        for uri in payload.get("line_items") or order_items:
            try:
                path = f"/line-item/{parse_uri(uri)[1]}/"
            except ValueError:
                raise missing from None
            if path not in order_items:
                raise missing
            item = peers.call("orders", "get", "line-item", parse_uri(path)[1], ctx)
            line_items.append(path)
            if item.get("model"):
                models.append(item["model"])
        plan = {"line_items": line_items, "models": list(dict.fromkeys(models))}
        return dict(ctx, zip_plan=plan, zipfile_hours=float(peers.config["STRATUM_ZIPFILE_HOURS"]))

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """Pre-flight: the models must exist and fit, else nothing is created."""
        plan = unit.ctx.get("zip_plan") or {}
        models, total = [], 0
        for path in plan.get("models", []):
            try:
                model = unit.load("model", uuid_of(path))
            except NotFound:
                raise NotFound("Some of the requested data cannot be found.") from None
            if model.content:
                models.append(path)
                total += model.content["size"]
        if total > unit.app.zipfile_max_bytes:
            raise InvalidPayload("Requested data size too large to fulfill request")
        expiry = datetime.now(timezone.utc) + timedelta(hours=unit.ctx.get("zipfile_hours", 24))
        manifest = {"line_items": plan.get("line_items", []), "models": models, "bytes": total}
        zipfile = Zipfile.create(uuid5(new_id, "zipfile"), {
            "related_table_name": fields["related_table_name"], "related_uuid": fields["related_uuid"],
            "bureau": unit.bureau, "created_by": unit.actor, "expiry": expiry.isoformat(),
            "manifest": manifest, "status": "pending"}, unit.bureau, unit.actor)
        path = resource_path("zipfile", zipfile.id)
        return fields, [zipfile], {"zipfile": path, "uri": path}

    @classmethod
    def follow_ups(cls, verb, result, payload):
        return [(ZIPFILE_REQUESTED, {"zipfile": result["zipfile"]})] if verb == "create" else []
