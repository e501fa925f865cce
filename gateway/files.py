"""The gateway's side of files (files.md §0.2, §1.2, §2.1): the PUT that receives an upload, the content download,
the links rendered into resources, and the snapshot views of a model.

Bytes never cross RabbitMQ: the gateway streams them into the shared blob store and tells the files service what
landed (hash and size); downloads stream from the store after the hash check.
"""
from urllib.parse import quote
from uuid import UUID

from werkzeug.wrappers import Response

from gateway import gantt, links
from shared import catalogue, uris
from shared.blobstore import Blob, CorruptBlob, TooLarge
from shared.errors import Conflict, NotFound, PayloadTooLarge, StoredContentDamaged

# (stored blob key, the field whose signed link serves it): a capture (capture-and-platform.md A4) serves its raw
# file as content_download and its parsed content as content_parsed_download; a layout its picture as PNG and SVG
BLOB_FIELDS = (("_content", "content"), ("_snapshot", "snapshot_content"), ("_snapshot_svg", "snapshot_svg_content"),
               ("_content", "content_download"), ("_parsed", "content_parsed_download"))
SCHEDULE_PICTURE = "schedule_svg_content"  # a printer's or post-processor's Gantt picture (gateway.gantt)
UPLOAD_FIELDS = ("upload-location", "upload_location", "content_upload")
SNAPSHOT_SETTINGS = ("width", "height", "color", "samples", "slice_height", "x", "y", "z", "u", "v", "w")


class Links:
    """Mints the signed links a rendered resource carries."""

    def __init__(self, config, base):
        self.config = config
        self.base = base

    def decorate(self, spec, path, doc, body):
        if not _carries_links(spec):  # most resources (an order): nothing to mint, and no path to parse
            return body
        resource, uuid = uris.parse_uri(path)
        for blob_key, field in BLOB_FIELDS:
            if field in spec.fields and doc.get(blob_key):
                body[field] = links.content_link(self.config, self.base, resource, uuid, field)
        for field in UPLOAD_FIELDS:
            if field in spec.fields:
                body[field] = links.upload_link(self.config, self.base, resource, uuid) \
                    if doc.get("_awaiting_upload") else None
        if field_of_picture(spec):  # a workstation's schedule, drawn when its link is followed (gateway.gantt)
            body[SCHEDULE_PICTURE] = links.content_link(self.config, self.base, resource, uuid, SCHEDULE_PICTURE)
        for field in ("snapshot", "model_render"):  # paths of snapshot views, stored relative like every URI
            if field in spec.fields and doc.get(field):
                body[field] = uris.absolute(self.base, doc[field])
        return body


_LINK_FIELDS = {field for _, field in BLOB_FIELDS} | set(UPLOAD_FIELDS) | {"snapshot", "model_render"}
_CARRIES_LINKS = {}  # id(spec) → (spec, whether Links.decorate has anything to do for it), once per resource


def _carries_links(spec):
    known = _CARRIES_LINKS.get(id(spec))
    if known is None or known[0] is not spec:
        known = _CARRIES_LINKS[id(spec)] = (spec, bool(_LINK_FIELDS & spec.fields.keys()) or field_of_picture(spec))
    return known[1]


def receive_upload(gateway, request, resource, uuid):
    """PUT <X-Upload-Location>: stream the body into the blob store, then hand its hash to the resource's owning
    service (files, or capture for a capture's raw file)."""
    uuid = _uuid(uuid)
    links.check(gateway.config, "upload", resource, uuid, "", request.args)
    path = uris.resource_path(resource, uuid)
    doc = gateway.read.store.document(path, None)
    if doc is None:
        raise NotFound("The resource this upload link was made for no longer exists.")
    if not doc.get("_awaiting_upload"):
        raise Conflict("This resource already has its file; upload a new one as a new resource.")
    limit = int(float(gateway.config["STRATUM_MAX_UPLOAD_MB"]) * 1024 * 1024)
    declared = request.content_length
    ctx = {"user": None, "bureau": None, "platform_admin": True}
    owner = _owner(resource)
    try:
        if declared is not None and declared > limit:
            raise TooLarge(limit, declared)
        blob = gateway.blobs.receive(request.stream.read, limit, request.mimetype or "application/octet-stream",
                                     doc.get("name") or "")
    except TooLarge as refused:
        _drain(request.stream, 4 * limit)  # let the client finish sending, so it can read the answer
        result = gateway.services.call(owner, "upload_refused", resource, uuid, str(refused), refused.received, ctx)
        gateway._catch_up(result)
        raise PayloadTooLarge(str(refused)) from None
    result = gateway.services.call(owner, "upload_received", resource, uuid, blob.as_dict(), ctx)
    gateway._catch_up(result)
    return Response(status=204)


def _owner(resource):
    spec = catalogue.catalogue().get(resource)
    return spec.service if spec is not None and spec.service == "capture" else "files"


def _drain(stream, most):
    read = 0
    while read < most and (chunk := stream.read(1 << 20)):
        read += len(chunk)


def download(gateway, request, uuid):
    """GET /content/{uuid}/?resource=…&field=…: the signed link's bytes, after checking them against their hash."""
    uuid = _uuid(uuid)
    resource, field = request.args.get("resource", ""), request.args.get("field", "")
    links.check(gateway.config, "content", resource, uuid, field, request.args)
    if field == SCHEDULE_PICTURE and field_of_picture(catalogue.catalogue().get(resource)):
        picture = gantt.workstation_picture(gateway.read.store, uris.resource_path(resource, uuid))
        if picture is None:
            raise NotFound("The requested content cannot be found.")
        return Response(picture, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})
    doc = gateway.read.store.document(uris.resource_path(resource, uuid), None)
    blob_key = next((k for k, f in BLOB_FIELDS if f == field), None)
    if doc is None or blob_key is None or not doc.get(blob_key):
        raise NotFound("The requested content cannot be found.")
    return _send(gateway, Blob.from_dict(doc[blob_key]))


def field_of_picture(spec):
    return spec is not None and spec.name in ("printer", "post-processor") and SCHEDULE_PICTURE in spec.fields


def snapshot_view(gateway, action, path, doc, base, request):
    """GET /model/{uuid}/snapshot/ (the default snapshot's settings and link) or …/binary/ (the PNG itself)."""
    snapshot = doc.get("_snapshot_request") or {}
    if action == "binary":
        if not doc.get("_snapshot"):
            raise NotFound(f"The snapshot is not rendered yet (status: {snapshot.get('status') or 'none'}).")
        return _send(gateway, Blob.from_dict(doc["_snapshot"]))
    resource, uuid = uris.parse_uri(path)
    body = {key: snapshot.get(key) for key in SNAPSHOT_SETTINGS}
    body.update(uri=base + path + "snapshot/", model=base + path, model_status=doc.get("status"),
                status=snapshot.get("status"), created=snapshot.get("requested"),
                content=links.content_link(gateway.config, base, resource, uuid, "snapshot_content")
                if doc.get("_snapshot") else None)
    return body


def document_snapshot_view(gateway, action, path, doc, base, request):
    """GET /document/{uuid}/snapshot/: documents get no rendered thumbnail yet; say which state explains that."""
    status = "not-uploaded" if doc.get("_awaiting_upload") else \
        "document-error" if doc.get("virus_scan") == "quarantined" else "skipped"
    return {"uri": base + path + "snapshot/", "document": base + path, "status": status, "content": None,
            "width": 640, "height": 480, "created": doc.get("created")}


def parsed_capture_view(gateway, action, path, doc, base, request):
    """GET /capture/{uuid}/parsed/ (capture-and-platform.md A4, the hidden "parsed content of a capture"): the
    parsed content itself, as content_parsed_download serves it; 404 saying why while there is none."""
    if not doc.get("_parsed"):
        reason = f" ({doc['error']})" if doc.get("error") else ""
        raise NotFound(f"The capture has no parsed content (status: {doc.get('status')}){reason}.")
    return _send(gateway, Blob.from_dict(doc["_parsed"]))


VIEWS = {("model", "snapshot"): snapshot_view, ("model", "binary"): snapshot_view,
         ("document", "snapshot"): document_snapshot_view, ("capture", "parsed"): parsed_capture_view}


def _send(gateway, blob):
    try:
        chunks = gateway.blobs.verified_chunks(blob)  # checked whole before the first byte is sent
    except CorruptBlob as damaged:
        raise StoredContentDamaged(str(damaged)) from None
    response = Response(chunks, mimetype=blob.media_type, direct_passthrough=True)
    response.content_length = blob.size
    response.headers["ETag"] = f'"{blob.sha256}"'
    if blob.name:
        response.headers["Content-Disposition"] = _disposition(blob.name)
    return response


def _disposition(name):
    """`attachment` with the file's name (RFC 6266): an ASCII `filename` for every client, and the name itself in
    `filename*` (RFC 8187, UTF-8) when it is not ASCII. A header is Latin-1 at most, so a name such as 零件.stl
    written into `filename` as it is would leave the answer unsendable."""
    safe = _safe_name(name)
    ascii_name = "".join(c if " " <= c <= "~" else "_" for c in safe)
    if ascii_name == safe:
        return f'attachment; filename="{safe}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe, safe='')}"


def _safe_name(name):
    return "".join(c for c in name.rsplit("/", 1)[-1] if c.isprintable() and c not in '"\\') or "download"


def _uuid(value):
    try:
        return str(UUID(value))
    except (TypeError, ValueError):
        raise NotFound("The requested content cannot be found.") from None
