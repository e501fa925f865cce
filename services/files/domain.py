"""The upload promise shared by every file-bearing resource (files.md §0.2), as one aggregate shape.

POST creates the promise; the bytes land (`FileReceived`); a scan passes or quarantines them (`VirusScanned`);
models are then analysed (`Analyzed`, or `ProcessingFailed` with a reason) and get a snapshot
(`SnapshotRendered`). Each step is a named event (ModelAnalyzed, DocumentFileReceived, …) that still carries its
field changes, so the read side projects it like any update and other services can react to it by name.

Blob references live in fields whose names start with `_` (`_content`, `_snapshot`): the read side keeps them (the
gateway turns them into signed download links) but they are never rendered as API fields.
"""
from dataclasses import dataclass
from datetime import datetime, timezone

from services.files.callbacks import check_callback
from shared.errors import Conflict, InvalidPayload
from shared.resource import Resource
from shared.uris import resource_path


@dataclass(frozen=True)
class UploadProfile:
    """How one resource shows the life of its file: which field holds the upload link, its status values (None
    where the resource has no status), where a failure's reason is shown, and whether it is a mesh to analyse."""
    upload_field: str
    status_field: str | None = None
    initial: str | None = None
    receiving: str | None = None
    done: str | None = None
    failed: str | None = None
    too_large: str | None = None
    reason_field: str | None = None
    is_mesh: bool = False
    received_stamp: str | None = None
    unpacks: bool = False  # its bytes become a model of their own, whose analysis settles this resource's status


_MODEL = UploadProfile("upload-location", "status", "not-uploaded", "processing", "processed", "error",
                       "file-too-large", "analyses", is_mesh=True)
PROFILES = {
    "model": _MODEL,
    "asset": _MODEL,
    "design-file": UploadProfile("upload_location", "status", "new", "processing", "processed", "error", "error",
                                 "notes", unpacks=True),
    "build-file": UploadProfile("upload_location", "status", "pending", "processing", "complete", "error", "error",
                                "error"),
    "document": UploadProfile("upload_location"),
    "file": UploadProfile("upload-location", received_stamp="uploaded"),
}

MESH_FIGURES = ("volume_mm", "surface_area_mm", "size", "polygons", "file_size", "analyses")
USABLE_MODEL_STATUSES = ("processed", "repaired")  # files.md §1.1: what slicing, layout and line items accept


def now_iso():
    return datetime.now(timezone.utc).isoformat()


class Upload(Resource):
    """A resource whose bytes follow its POST. Subclasses set `resource` and `profile`."""

    profile = None  # an UploadProfile (not annotated: eventsourcing would take it for a constructor argument)

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


def check_model_deletable(printed_by):
    """A model that line items print is part of their record (what was made, from which file): it goes only once
    no line item prints it any more."""
    if printed_by:
        raise Conflict(f"The model is printed by {len(printed_by)} line item(s); give them another model (or delete "
                       "them) before deleting it.")


def _fields_of(resource_name):
    from shared import catalogue
    return catalogue.resource(resource_name).fields


def upload_class(resource_name):
    """The aggregate class of a file-bearing resource: `Model`, `Document`, …, each with its own stored topic."""
    from shared.generic import class_name
    return type(class_name(resource_name), (Upload,),
                {"resource": resource_name, "profile": PROFILES[resource_name], "__module__": __name__})


UPLOAD_CLASSES = {name: upload_class(name) for name in PROFILES}
Model = UPLOAD_CLASSES["model"]

# Stored events name their class by topic; make every generated class and its events resolvable from this module.
globals().update({cls.__name__: cls for cls in UPLOAD_CLASSES.values()})



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
