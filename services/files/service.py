"""The files service: resource commands, the upload promise's RPCs for the gateway, and the background jobs that
scan, analyse and render what was uploaded (from durable queues, after the upload has committed)."""
import logging

from nameko.dependency_providers import Config
from nameko.events import event_handler
from nameko.timer import timer

from services.files.application import Files
from services.files.bundles import Bundles
from services.files.domain import PROFILES as UPLOADS
from services.files.domain import check_model_deletable
from services.files.processing import Pipeline
from shared.blobstore import Blobs
from shared.errors import NotFound
from shared.eventstore import EventStore
from shared.rpc import Services
from shared.service import ResourceService, rpc
from shared.sweep import sweep_timer, sweeper_for
from shared.uris import parse_uri

ZIPFILE_REQUESTED = "zipfile_requested"
UPLOAD_RECEIVED = "upload_received"
SNAPSHOT_REQUESTED = "snapshot_requested"
log = logging.getLogger(__name__)


class FilesService(ResourceService):
    name = "files"
    app = EventStore(Files)
    blobs = Blobs()
    config = Config()
    services = Services()

    @rpc
    def create(self, resource, payload, ctx):
        if resource != "zipfile-request":
            return super().create(resource, payload, ctx)
        ctx = dict(ctx, zip_plan=self._zip_plan(payload, ctx),
                   zipfile_hours=float(self.config["STRATUM_ZIPFILE_HOURS"]))
        result = super().create(resource, payload, ctx)
        self.dispatch(ZIPFILE_REQUESTED, {"zipfile": result["zipfile"]})
        return dict(result, uri=result["zipfile"])  # the answer's Location is the bundle to poll

    def _zip_plan(self, payload, ctx):
        """The order's line items (all, or those asked for) and their models, as the caller may see them."""
        missing = NotFound("Some of the requested data cannot be found.")
        try:
            order = self.services.call("orders", "get", "order", str(payload.get("related_uuid")), ctx)
        except NotFound:
            raise missing from None
        order_items = order.get("line_items") or []
        asked = payload.get("line_items") or order_items
        line_items, models = [], []
        for uri in asked:
            try:
                path = f"/line-item/{parse_uri(uri)[1]}/"
            except ValueError:
                raise missing from None
            if path not in order_items:
                raise missing
            item = self.services.call("orders", "get", "line-item", parse_uri(path)[1], ctx)
            line_items.append(path)
            if item.get("model"):
                models.append(item["model"])
        return {"line_items": line_items, "models": list(dict.fromkeys(models))}

    @rpc
    def update(self, resource, uuid, payload, ctx):
        result = super().update(resource, uuid, payload, ctx)
        self._queue_if_waiting(resource, uuid)  # e.g. a new file_unit: the same bytes are measured again
        return result

    def _queue_if_waiting(self, resource, uuid):
        aggregate = self.app.get_upload(resource, uuid) if resource in UPLOADS else None
        if aggregate is not None and aggregate.content and aggregate.awaiting_analysis:
            self.dispatch(UPLOAD_RECEIVED, {"resource": resource, "uuid": uuid, "sha256": aggregate.content["sha256"]})

    @rpc
    def delete(self, resource, uuid, ctx):
        if resource == "model":
            self.app.load(resource, uuid, ctx)  # an unknown or foreign model is a 404 first
            check_model_deletable(self.services.call("orders", "referencing", "line-item", "model",
                                                     f"/model/{uuid}/", {"platform_admin": True}))
        return super().delete(resource, uuid, ctx)

    @rpc
    def upload_received(self, resource, uuid, blob, ctx):
        """The gateway stored the PUT's bytes: record them, then queue the scan and analysis."""
        command_id = f"upload:{resource}:{uuid}:{blob['sha256']}"
        result = self._announce(self.app.advance(resource, uuid, "receive", {"blob": blob}, command_id))
        # Dispatched on every call, retries included: a crash between the commit above and this publish is healed
        # by the client's retried PUT (the job itself is idempotent).
        self.dispatch(UPLOAD_RECEIVED, {"resource": resource, "uuid": uuid, "sha256": blob["sha256"]})
        return result

    @rpc
    def upload_refused(self, resource, uuid, reason, size, ctx):
        command_id = f"refused:{resource}:{uuid}"
        return self._announce(self.app.advance(resource, uuid, "refuse_upload", {"reason": reason, "size": size},
                                               command_id))

    @rpc
    def act(self, resource, uuid, action, payload, ctx):
        result = super().act(resource, uuid, action, payload, ctx)
        if result.get("render"):
            self.dispatch(SNAPSHOT_REQUESTED, {"resource": resource, "uuid": uuid, "request_id": result["request_id"]})
        return result

    @event_handler("files", UPLOAD_RECEIVED)
    def process_upload(self, payload):
        self._run("processing", payload, lambda p: p.process(payload["resource"], payload["uuid"], payload["sha256"]))

    @event_handler("files", SNAPSHOT_REQUESTED)
    def render_snapshot(self, payload):
        self._run("rendering", payload, lambda p: p.render(payload["resource"], payload["uuid"], payload["request_id"]))

    @event_handler("files", ZIPFILE_REQUESTED)
    def compile_zipfile(self, payload):
        self._run("zipping", payload, lambda jobs: jobs.compile_zipfile(payload["zipfile"]), Bundles)

    @timer(interval=60)
    def expire_zipfiles(self):
        """files.md §2.8: at its expiry a bundle is deleted for good (status `deleted`, bytes removed)."""
        hours = float(self.config["STRATUM_ZIPFILE_HOURS"])
        sweeper = sweeper_for(self.app, "zipfile-expiry", ("Zipfile.Created",), hours * 3600)
        sweeper.sweep(lambda z: z.fields.get("status") != "deleted", self._jobs(Bundles).expire_zipfile)

    def _jobs(self, kind=Pipeline):
        """The background jobs (a Pipeline, or Bundles) with this worker's store, blobs and publishers."""
        return kind(self.app, self.blobs, self.config, self._announce, self.dispatch)

    @sweep_timer(interval=30)
    def resume_stuck_work(self):
        """Uploads and snapshot requests whose job message was lost (see shared.sweep) are queued again."""
        grace = int(self.config["STRATUM_SWEEP_SECONDS"])
        sweeper = sweeper_for(self.app, "jobs", ("FileReceived", "UnitChanged", "SnapshotRequested", "Zipfile.Created"),
                              grace)
        sweeper.sweep(_still_processing, self._requeue)

    def _requeue(self, resource):
        uuid = str(resource.id)
        if resource.resource != "zipfile" and resource.outcome_unannounced:
            self._jobs().announce_outcome(resource.resource, uuid)
            return
        if resource.resource == "zipfile":
            self.dispatch(ZIPFILE_REQUESTED, {"zipfile": f"/zipfile/{uuid}/"})
            return
        if resource.snapshot_request.get("status") == "in_queue":
            self.dispatch(SNAPSHOT_REQUESTED, {"resource": resource.resource, "uuid": uuid,
                                               "request_id": resource.snapshot_request["requested"]})
        if resource.content and (resource.fields.get("virus_scan") == "unscanned" or resource.awaiting_analysis):
            self.dispatch(UPLOAD_RECEIVED, {"resource": resource.resource, "uuid": uuid,
                                            "sha256": resource.content["sha256"]})

    def _run(self, what, payload, job, kind=Pipeline):
        try:
            job(self._jobs(kind))
        except Exception:  # nameko would ack and drop it anyway; say so loudly rather than silently
            log.exception("%s %s failed", what, payload)


def _still_processing(resource):
    if resource.resource == "zipfile":
        return resource.fields.get("status") in ("pending", "processing")
    return bool(resource.content and (resource.fields.get("virus_scan") == "unscanned" or resource.awaiting_analysis)
                or resource.snapshot_request.get("status") == "in_queue" or resource.outcome_unannounced)
