"""The background work after an upload: scan, analyse, render (files.md §5 F1 steps 3-4).

Each step reloads the resource and does only what its state still asks for, and records its result under a
command id derived from (step, resource, bytes), so a redelivered or repeated job changes nothing. Parsing and
rendering run in a child process (services.files.worker) with memory and CPU limits: a hostile or broken file can
fail its own job, never the service.
"""
import contextlib
import logging
import os
import tempfile

import eventlet.semaphore

from services.files import callbacks, worker
from services.files.scan import scan
from shared.blobstore import Blob, CorruptBlob
from shared.uris import uuid_of

log = logging.getLogger(__name__)
MODEL_ANALYZED = "model_analyzed"
DESIGN_FILE_UNPACKED = "design_file_unpacked"


class Pipeline:
    def __init__(self, app, blobs, config, announce, notify):
        self.app = app
        self.blobs = blobs
        self.announce = announce
        self.notify = notify  # (event type, payload) → published to other services, after the commit
        self.timeout = int(config["STRATUM_ANALYSIS_TIMEOUT"])
        self.memory_mb = int(config["STRATUM_ANALYSIS_MEMORY_MB"])
        self.base_url = (config.get("STRATUM_BASE_URL") or "").rstrip("/")
        self.allow_private_callbacks = config.get("STRATUM_CALLBACKS_ALLOW_PRIVATE") in ("1", "true", "yes")
        self.slots = _slots(int(config["STRATUM_ANALYSIS_CONCURRENCY"]))

    def _step(self, resource_name, uuid, step, kwargs, key):
        self.announce(self.app.advance(resource_name, uuid, step, kwargs, f"{step}:{resource_name}:{uuid}:{key}"))

    def process(self, resource_name, uuid, sha256):
        resource = self.app.get_upload(resource_name, uuid)
        if not resource.content or resource.content["sha256"] != sha256:
            return  # not (or no longer) these bytes
        unscanned = resource.fields.get("virus_scan") == "unscanned"
        if unscanned or resource.awaiting_analysis:  # a repeated job for finished work decrypts nothing
            try:
                with self.blobs.plaintext_path(Blob.from_dict(resource.content)) as path:
                    if unscanned:
                        verdict, reason = scan(path, resource.declared_format)
                        self._step(resource_name, uuid, "scanned", {"verdict": verdict, "reason": reason}, sha256)
                        resource = self.app.get_upload(resource_name, uuid)
                    if resource.awaiting_analysis:
                        self._analyse(resource_name, uuid, resource, path)
            except CorruptBlob as error:
                # before the scan: quarantined; in a later round (a new file_unit): that round fails
                if unscanned:
                    self._step(resource_name, uuid, "scanned", {"verdict": "quarantined", "reason": str(error)},
                               sha256)
                else:
                    self._step(resource_name, uuid, "processing_failed", {"status": "error", "reason": str(error)},
                               _round(resource))
                self.announce_outcome(resource_name, uuid)
                return
        if resource.awaiting_unpack:
            self._unpack(resource_name, uuid, resource, sha256)
        elif resource.profile.unpacks and resource.fields.get("virus_scan") == "quarantined":
            self._unpacked(resource_name, uuid, resource, resource.fields.get("_model"), "error")
        self.announce_outcome(resource_name, uuid)

    def announce_outcome(self, resource_name, uuid):
        """Analysed, failed or quarantined: orders re-estimates the line items printing the model, the client's
        callback is called (files.md §0.2), then that is recorded. A crash before the record leaves the work to the
        sweeper, which announces again (others may hear twice, never not at all)."""
        resource = self.app.get_upload(resource_name, uuid)
        if not resource.outcome_unannounced:
            return
        if resource.tells_orders:
            self.notify(MODEL_ANALYZED, {"model": f"/model/{uuid}/"})
        if resource.fields.get("callback"):
            body = {"uri": f"{self.base_url}/{resource_name}/{uuid}/", "status": resource.fields.get("status"),
                    "virus_scan": resource.fields.get("virus_scan")}
            callbacks.deliver(resource.fields["callback"], body, self.allow_private_callbacks)
        sha256 = resource.content["sha256"]
        self._step(resource_name, uuid, "outcome_announced", {"sha256": sha256}, _round(resource))

    def _unpack(self, resource_name, uuid, resource, sha256):
        """files.md §1.3: a single-mesh design file's bytes become its model's; the model's analysis settles the
        design file, and orders hears which model the product's line item prints."""
        model_path = resource.fields.get("_model")
        if not model_path:
            reason = (f"Converting a '{resource.fields.get('format')}' design file to a mesh needs a CAD converter, "
                      "which this deployment does not have; upload an STL, OBJ, PLY or 3MF.")
            self._step(resource_name, uuid, "unpacked", {"model_status": "error", "reason": reason}, sha256)
            return
        model_uuid = uuid_of(model_path)
        model = self.app.get_upload("model", model_uuid)
        if model.awaiting_upload:
            self._step("model", model_uuid, "receive", {"blob": resource.content}, sha256)
        self.process("model", model_uuid, model.content["sha256"] if model.content else sha256)
        model = self.app.get_upload("model", model_uuid)
        status = model.fields.get("status")
        self._step(resource_name, uuid, "unpacked",
                   {"model_status": status, "reason": (model.fields.get("analyses") or {}).get("error")}, sha256)
        self._unpacked(resource_name, uuid, resource, model_path, status)

    def _unpacked(self, resource_name, uuid, resource, model_path, model_status):
        self.notify(DESIGN_FILE_UNPACKED, {"design_file": f"/{resource_name}/{uuid}/", "model": model_path,
                                           "product": resource.fields.get("product"), "model_status": model_status})

    def _analyse(self, resource_name, uuid, resource, path):
        key = _round(resource)
        # a 3MF states its own unit (the format requires it); other formats take the declared or autodetected one
        unit = resource.fields.get("file_unit") or "-"
        if resource.declared_format == "3mf":
            unit = "-"
        with self.slots:
            outcome = worker.run(["analyze", path, unit], timeout=self.timeout, memory_mb=self.memory_mb)
        if not outcome.get("ok"):
            self._step(resource_name, uuid, "processing_failed",
                       {"status": outcome.get("status", "error"), "reason": outcome.get("reason")}, key)
            return
        self._step(resource_name, uuid, "analyzed", {"figures": outcome["result"]}, key)
        if resource.has_field("snapshot"):  # the default snapshot follows the analysis (files.md §2.1)
            self._step(resource_name, uuid, "request_snapshot", {"params": {"width": 640, "height": 480,
                                                                           "color": "#FF7F00"}}, key)
            request_id = self.app.get_upload(resource_name, uuid).snapshot_request["requested"]
            self.render(resource_name, uuid, request_id, path)  # the plaintext is already at hand

    def render(self, resource_name, uuid, request_id, path=None):
        resource = self.app.get_upload(resource_name, uuid)
        request = resource.snapshot_request
        if request.get("requested") != request_id or request.get("status") != "in_queue":
            return
        if resource.fields.get("status") not in ("processed", "repaired"):
            reason = f"The model is '{resource.fields.get('status')}'; snapshots render once it is processed."
            self._step(resource_name, uuid, "snapshot_failed", {"reason": reason, "request_id": request_id},
                       request_id)
            return
        # render in the unit the analysis settled on, so the picture and the figures agree
        unit = (resource.fields.get("analyses") or {}).get("unit") or resource.fields.get("file_unit") or "mm"
        fd, out = tempfile.mkstemp(suffix=".png")
        os.close(fd)
        try:
            plaintext = contextlib.nullcontext(path) if path else self.blobs.plaintext_path(
                Blob.from_dict(resource.content))
            with plaintext as path, self.slots:
                outcome = worker.run(["render", path, out, str(request["width"]), str(request["height"]),
                                      request["color"], unit], timeout=self.timeout, memory_mb=self.memory_mb)
            if outcome.get("ok"):
                blob = self.blobs.put_file(out, "image/png", "snapshot.png")
                self._step(resource_name, uuid, "snapshot_rendered",
                           {"blob": blob.as_dict(), "request_id": request_id}, request_id)
            else:
                self._step(resource_name, uuid, "snapshot_failed",
                           {"reason": outcome.get("reason"), "request_id": request_id}, request_id)
        finally:
            os.unlink(out)


def _round(resource):
    """One round of processing of these bytes (a new file_unit starts another): its steps' idempotency key."""
    return f"{resource.content['sha256']}:{resource.fields.get('_round') or 1}"


_SLOTS = {}


def _slots(size):
    """One semaphore per process and size: analyses compete for the CPU, not for the service's worker pool."""
    return _SLOTS.setdefault(size, eventlet.semaphore.Semaphore(size))

