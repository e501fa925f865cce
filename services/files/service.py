"""The files service: resource commands, the upload promise's RPCs for the gateway, and the background jobs that
scan, analyse and render what was uploaded (from durable queues, after the upload has committed)."""
import logging

from nameko.timer import timer

from services.files.application import Files
from services.files.bundles import Bundles
from services.files.domain import SNAPSHOT_REQUESTED, UPLOAD_RECEIVED, ZIPFILE_REQUESTED, Upload, Zipfile
from services.files.processing import Pipeline
from shared.amqp import event_handler
from shared.blobstore import Blobs
from shared.eventstore import EventStore
from shared.service import ResourceService, rpc
from shared.sweep import sweep_timer, sweeper_for

log = logging.getLogger(__name__)


class FilesService(ResourceService):
    name = "files"
    app = EventStore(Files)
    blobs = Blobs()

    @rpc
    def update(self, resource, uuid, payload, ctx):
        result = super().update(resource, uuid, payload, ctx)
        self._queue_if_waiting(resource, uuid)  # e.g. a new file_unit: the same bytes are measured again
        return result

    def _queue_if_waiting(self, resource, uuid):
        if not issubclass(self.app.aggregates[resource], Upload):
            return
        aggregate = self.app.get_upload(resource, uuid)
        if aggregate.content and aggregate.awaiting_analysis:
            self.dispatch(UPLOAD_RECEIVED, {"resource": resource, "uuid": uuid, "sha256": aggregate.content["sha256"]})

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
    def model_mesh(self, uuid, ctx):
        """Where a model's mesh is, for production's packing (/layout/): its blob, the unit its analysis settled on,
        its status and name. Bytes never cross RabbitMQ: the caller reads the blob from the shared store."""
        model = self.app.load("model", uuid, ctx)
        unit = (model.fields.get("analyses") or {}).get("unit") or model.fields.get("file_unit")
        return {"blob": model.content, "unit": unit, "status": model.fields.get("status"),
                "name": model.fields.get("name")}

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
        sweeper = sweeper_for(self.app, "zipfile-expiry", ((Zipfile, Zipfile.Created),), hours * 3600)
        sweeper.sweep(lambda z: z.fields.get("status") != "deleted", self._jobs(Bundles).expire_zipfile)

    def _jobs(self, kind=Pipeline):
        """The background jobs (a Pipeline, or Bundles) with this worker's store, blobs and publishers."""
        return kind(self.app, self.blobs, self.config, self._announce, self.dispatch)

    @sweep_timer(interval=30)
    def resume_stuck_work(self):
        """Uploads and snapshot requests whose job message was lost (see shared.sweep) are queued again."""
        grace = int(self.config["STRATUM_SWEEP_SECONDS"])
        starts = ((None, Upload.FileReceived), (None, Upload.UnitChanged), (None, Upload.SnapshotRequested),
                  (Zipfile, Zipfile.Created))
        sweeper = sweeper_for(self.app, "jobs", starts, grace)
        sweeper.sweep(_still_processing, self._requeue)

    def _requeue(self, resource):
        uuid = str(resource.id)
        if isinstance(resource, Zipfile):
            self.dispatch(ZIPFILE_REQUESTED, {"zipfile": f"/zipfile/{uuid}/"})
            return
        if resource.outcome_unannounced:
            self._jobs().announce_outcome(resource.resource, uuid)
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
    if isinstance(resource, Zipfile):
        return resource.fields.get("status") in ("pending", "processing")
    return bool(resource.content and (resource.fields.get("virus_scan") == "unscanned" or resource.awaiting_analysis)
                or resource.snapshot_request.get("status") == "in_queue" or resource.outcome_unannounced)
