"""The capture service: resource commands, the upload RPCs the gateway calls when a capture's raw file lands, the
background parsing of captures (from a durable queue, after the upload has committed; a sweep restarts lost jobs),
and the machines' live status reports off the broker, AMQP or MQTT (services.capture.telemetry)."""
import logging

from kombu import Exchange, Queue

from services.capture.application import Capture
from services.capture.domain import Capture as CaptureRecord
from services.capture import ingest, sensor_data, telemetry
from services.capture.commands import COMMAND_EVENT
from services.capture.processing import CAPTURE_RECEIVED, Pipeline
from shared.amqp import Publisher, consume, event_handler
from shared.blobstore import Blobs
from shared.errors import NotFound, StratumError
from shared import uris
from shared.eventstore import EventStore
from shared.service import ResourceService, rpc
from shared.sweep import sweep_timer, sweeper_for

log = logging.getLogger(__name__)
DEVICES = Exchange(telemetry.EXCHANGE, type="topic", durable=True)  # amq.topic: where MQTT meets AMQP
REPORTS = Queue(telemetry.QUEUE, exchange=DEVICES, routing_key=telemetry.ROUTING_KEYS, durable=True)
COMMAND_STATUS = Queue(telemetry.COMMAND_STATUS_QUEUE, exchange=DEVICES, routing_key=telemetry.COMMAND_STATUS_KEYS,
                       durable=True)


class CaptureStore(EventStore):
    """The capture event store, which on every start writes the platform's machine catalogue (new or changed
    entries only; services.capture.machines)."""

    def start(self):
        try:
            self.app.seed_platform()
        except Exception:  # the service still serves; the next start tries again
            log.exception("could not write the machine catalogue")


class CaptureService(ResourceService):
    name = "capture"
    app = CaptureStore(Capture)
    blobs = Blobs()

    @rpc
    def upload_received(self, resource, uuid, blob, ctx):
        """The gateway stored a capture's raw file: record it, then queue its parsing."""
        self._only_captures(resource)
        result = self._announce(self.app.receive(uuid, blob, f"upload:capture:{uuid}:{blob['sha256']}"))
        # published on every call, retries included: a crash between the commit and this publish is healed by the
        # client's retried PUT (or the sweep); parsing the same bytes twice records nothing new
        self.dispatch(CAPTURE_RECEIVED, {"uuid": uuid, "sha256": blob["sha256"]})
        return result

    @rpc
    def upload_refused(self, resource, uuid, reason, size, ctx):
        self._only_captures(resource)
        return self._announce(self.app.refuse_upload(uuid, reason, size, f"refused:capture:{uuid}"))

    @event_handler("capture", CAPTURE_RECEIVED)
    def parse_capture(self, payload):
        try:
            Pipeline(self.app, self.blobs, self._announce, self._find_run).process(payload["uuid"], payload["sha256"])
        except Exception:  # nameko would ack and drop it anyway; the sweep restarts it
            log.exception("parsing %s failed", payload)

    @consume(REPORTS)
    def device_report(self, body, routing_key, message_id):
        """A machine's status report off `amq.topic` (MQTT through RabbitMQ's plugin, or AMQP), taken as a status
        capture of its modeler (services.capture.telemetry)."""
        try:
            telemetry.Telemetry(self.app, self.blobs, self._announce, self._find_run).take(routing_key, body,
                                                                                          message_id)
        except Exception:  # acked and logged: a capture left awaiting parsing is found by the sweep
            log.exception("taking the report on %s failed", routing_key)

    # -- sensors (A12, F8): readings off the broker a batch at a time, and the reads over them ---------------------

    @ingest.consume_batches(ingest.READINGS)
    def sensor_readings(self, messages):
        """A delivery batch of sensor readings (services.capture.ingest): stored in one transaction before the
        batch is acknowledged; raising gives the batch back to the broker."""
        ingest.Ingest(self.app, self._announce).take(messages)

    @rpc
    def sensor_data(self, sensors, query, ctx):
        """LIST /sensor-data/ (the gateway asks): readings of the sensors (uuids) the caller can see."""
        return sensor_data.sensor_data(self.app, sensors, query, ctx)

    @rpc
    def sensor_data_point(self, uuid, ctx):
        return sensor_data.sensor_point(self.app, uuid, ctx)

    @rpc
    def batch_sensor_data(self, batch_uuid, query, ctx):
        """LIST /material_batch_sensor_data/: materials says where the batch sat and when; the readings of those
        sub-locations' sensors in those intervals are its data points."""
        residency = self.services.call("materials", "batch_residency", batch_uuid, ctx)
        return sensor_data.batch_data(self.app, residency, batch_uuid, query, ctx)

    @rpc
    def batch_sensor_data_point(self, uuid, ctx):
        return sensor_data.batch_point(
            self.app, uuid, lambda batch: self.services.call("materials", "batch_residency", batch, ctx), ctx)

    # -- commands (A5): relayed to their machine, answered by it ----------------------------------------------------

    devices = Publisher(exchange=DEVICES)

    @event_handler("capture", COMMAND_EVENT)
    def relay_command(self, payload):
        """An issued command (published on nautilus.command) goes on to its machine's command topic."""
        try:
            modeler = uris.parse_uri(payload["modeler"])[1]
        except (KeyError, TypeError, ValueError):
            log.warning("a command names no modeler: %s", payload)
            return
        self.devices(payload, routing_key=telemetry.command_routing_key(modeler))

    @consume(COMMAND_STATUS)
    def command_status(self, body, routing_key, message_id):
        """A machine's answer to a command moves it (processing, complete, error), as the machine side's PUT."""
        try:
            result = telemetry.take_command_status(self.app, routing_key, body)
        except StratumError as error:  # a move the table refuses (409) or a bad field: the machine's mistake
            log.warning("a command status on %s was refused: %s", routing_key, error)
            return
        if result is not None:
            self._announce(result)

    def _find_run(self, run_uuid, bureau):
        """The path of run `run_uuid` when the bureau has it (production answers; NotFound otherwise)."""
        try:
            self.services.call("production", "get", "run", run_uuid, {"bureau": bureau}, timeout=10)
        except NotFound:
            return None
        return f"/run/{run_uuid}/"

    @sweep_timer(interval=30)
    def resume_stuck_captures(self):
        """Captures whose parsing message was lost (see shared.sweep) are queued again."""
        grace = int(self.config["STRATUM_SWEEP_SECONDS"])
        sweeper = sweeper_for(self.app, "captures", ((CaptureRecord, CaptureRecord.ContentReceived),), grace)
        sweeper.sweep(lambda c: isinstance(c, CaptureRecord) and c.awaits_parsing(),
                      lambda c: self.dispatch(CAPTURE_RECEIVED, {"uuid": str(c.id), "sha256": c.content["sha256"]}))

    @staticmethod
    def _only_captures(resource):
        if resource != "capture":
            raise NotFound(f"The capture service receives no uploads for '{resource}'.")
