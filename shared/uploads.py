"""Which resources carry an uploaded file, and how each shows its file's life (files.md §0.2): shared data, so the
gateway (upload links, the OpenAPI document) and the files service (the upload aggregates) read one table.
"""
from dataclasses import dataclass


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
    format_fields: tuple = ("name", "key")  # where the client says what the bytes are (a type, a format, a name)
    default_format: str = ""


_MODEL = UploadProfile("upload-location", "status", "not-uploaded", "processing", "processed", "error",
                       "file-too-large", "analyses", is_mesh=True, format_fields=("type",), default_format="stl")
PROFILES = {
    "model": _MODEL,
    "asset": _MODEL,
    "design-file": UploadProfile("upload_location", "status", "new", "processing", "processed", "error", "error",
                                 "notes", unpacks=True, format_fields=("format", "name")),
    "build-file": UploadProfile("upload_location", "status", "pending", "processing", "complete", "error", "error",
                                "error"),
    "document": UploadProfile("upload_location"),
    "file": UploadProfile("upload-location", received_stamp="uploaded"),
    # capture-and-platform.md A4: a capture's raw file, parsed by the capture service (services/capture)
    "capture": UploadProfile("content_upload", "status", "new", "processing", "complete", "failed", "failed", "error"),
}
