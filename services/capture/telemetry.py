"""Live telemetry over the broker (capture-and-platform.md F6, DESIGN.md "Devices"): a machine, or an edge bridge
beside it, publishes its status reports on RabbitMQ, and the capture service takes each one exactly as an uploaded
status capture: a capture of the modeler (status `processing`), its raw content kept as a blob, parsed by the same
parser (services.capture.parsers) with the same effects on the modeler, its builds and, through them, their runs.

The topic, one per modeler (its uuid, as in its URI):

    MQTT (RabbitMQ's MQTT plugin, runtime/mqtt.py):  stratum/modeler/<modeler uuid>/status
    AMQP:  exchange `amq.topic`, routing key          stratum.modeler.<modeler uuid>.status

(the plugin publishes MQTT messages to `amq.topic`, a topic's `/` becoming `.`: both are the same messages). The
body is the report exactly as the machine sends it, e.g. a Bambu Lab `print` report (bambu.modeler.status), with no
content type (as MQTT gives it; AMQP publishers may say application/json). It is read as the modeler's type's status
capture kind (the one of its `capture_types` ending in `.status`); a modeler whose type has none, or that does not
exist, has its reports logged and dropped. An MQTT client picks the vhost with a `vhost:user` user name.

Idempotent: the capture's id is derived from the modeler and the message (its AMQP `message_id` when the publisher
sets one, else the SHA-256 of its bytes), so a redelivered message (at-least-once, reliability.md N1/R1) finds its
capture already there and changes nothing. A printer repeating the very same bytes says nothing new either. Reports
of one modeler are taken one at a time, in the order the broker delivers them, so its builds and runs move in the
order the machine reported.
"""
import hashlib
import io
import json
import logging
import threading
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError

from services.capture.domain import Capture as CaptureRecord, Modeler, ModelerType
from services.capture.processing import Pipeline
from shared import uris

log = logging.getLogger(__name__)

EXCHANGE = "amq.topic"
ROUTING_KEYS = "stratum.modeler.*.status"
QUEUE = "capture-device-reports"
MAX_REPORT_BYTES = 1024 * 1024  # a status report is kilobytes
INTERNAL = {"platform_admin": True}

# Commands (A5, services.capture.commands), the other way: each issued command is relayed to its machine on
#   MQTT stratum/modeler/<modeler uuid>/command            (AMQP: amq.topic, stratum.modeler.<uuid>.command)
# as the command's JSON document, and the machine answers on
#   MQTT stratum/modeler/<modeler uuid>/command-status     (AMQP: amq.topic, stratum.modeler.<uuid>.command-status)
# with {"command": <its uri>, "status": processing|complete|error, "response": …, "job_external_id": …}, which moves
# the command as the machine side's PUT would (idempotent per command and status).
COMMAND_STATUS_KEYS = "stratum.modeler.*.command-status"
COMMAND_STATUS_QUEUE = "capture-device-command-status"
COMMAND_ANSWER_FIELDS = ("status", "response", "job_external_id")
ANSWER_RANK = {"new": 0, "processing": 1, "complete": 2, "error": 2}  # an answer overtaken by a later one is late

_locks = {}
_locks_guard = threading.Lock()


def command_topic(modeler_uuid):
    return f"stratum/modeler/{modeler_uuid}/command"


def command_routing_key(modeler_uuid):
    return f"stratum.modeler.{modeler_uuid}.command"


def command_status_topic(modeler_uuid):
    return f"stratum/modeler/{modeler_uuid}/command-status"


def take_command_status(app, key, body):
    """A machine's answer to a command: the command moved (the app's result), or None when it is dropped."""
    parts = (key or "").split(".")
    try:
        modeler_id = UUID(parts[2]) if len(parts) == 4 and parts[3] == "command-status" else None
        answer = json.loads(report_bytes(body))
        command_id = UUID(uris.parse_uri(answer["command"])[1])
    except (ValueError, TypeError, KeyError, IndexError):
        log.warning("dropped a command status on %s: not {command, status, …}", key)
        return None
    try:
        command = app.repository.get(command_id)
    except AggregateNotFoundError:
        command = None
    modeler_path = uris.resource_path("modeler", modeler_id) if modeler_id else None
    if command is None or command.deleted or command.fields.get("modeler") != modeler_path:
        log.warning("dropped a command status on %s: no such command of this modeler", key)
        return None
    changes = {k: answer[k] for k in COMMAND_ANSWER_FIELDS if k in answer}

    def move(changes):
        ctx = dict(INTERNAL, bureau=command.bureau, user=None,
                   command_id=f"command-status:{command_id}:{changes.get('status')}")
        return app.update("modeler-command", str(command_id), changes, ctx)

    with _lock(command_id):  # one command's answers one at a time
        current, wanted = app.repository.get(command_id).fields.get("status"), changes.get("status")
        if wanted in ANSWER_RANK and current in ANSWER_RANK and ANSWER_RANK[wanted] < ANSWER_RANK[current]:
            log.info("dropped a late %s answer to %s, already %s", wanted, answer["command"], current)
            return None
        if wanted == "complete" and current == "new":
            # answers may overtake each other: a command the machine completed was picked up (its "processing",
            # arriving later, finds its receipt and changes nothing)
            move({"status": "processing"})
        return move(changes)


def mqtt_topic(modeler_uuid):
    return f"stratum/modeler/{modeler_uuid}/status"


def routing_key(modeler_uuid):
    return f"stratum.modeler.{modeler_uuid}.status"


def modeler_of_routing_key(key):
    """The modeler uuid a routing key names, or None."""
    parts = (key or "").split(".")
    if len(parts) != 4 or parts[:2] != ["stratum", "modeler"] or parts[3] != "status":
        return None
    try:
        return UUID(parts[2])
    except ValueError:
        return None


def report_bytes(body):
    """The report's bytes, whatever kombu made of the body (raw bytes without a content type; JSON decoded)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def capture_id(modeler_path, message_key):
    return uuid5(NAMESPACE_URL, f"stratum:capture:telemetry:{modeler_path}:{message_key}")


class Telemetry:
    """One report off the broker, taken as a status capture (the capture service's `app`, `blobs`, `announce` and
    the Pipeline's `find_run`)."""

    def __init__(self, app, blobs, announce, find_run):
        self.app, self.blobs, self.announce, self.find_run = app, blobs, announce, find_run

    def take(self, key, body, message_id=None, source="mqtt"):
        """The capture uri the report became (or already was), None when it is dropped. One modeler's reports are
        taken one at a time, in the order their workers started (the broker's order): the lock is taken before
        anything that could let another worker run first."""
        with _lock(key):
            return self._take(key, body, message_id, source)

    def _take(self, key, body, message_id, source):
        modeler_id = modeler_of_routing_key(key)
        data = report_bytes(body)
        modeler = self._modeler(modeler_id)
        if modeler is None:
            log.warning("dropped a report on %s: no such modeler", key)
            return None
        kind = self._status_kind(modeler)
        if kind is None:
            log.warning("dropped a report on %s: the modeler's type has no status capture kind", key)
            return None
        if len(data) > MAX_REPORT_BYTES:
            log.warning("dropped a report of %s bytes on %s (reports are taken up to %s)", len(data), key,
                        MAX_REPORT_BYTES)
            return None
        sha256 = hashlib.sha256(data).hexdigest()
        modeler_path = uris.resource_path("modeler", modeler.id)
        uuid = capture_id(modeler_path, message_id or sha256)
        capture = self._capture(uuid)
        if capture is None:
            self.announce(self.app.create("capture", {"modeler": modeler_path, "capture_type_name": kind,
                                                      "meta": {"source": source, "topic": key}},
                                          dict(INTERNAL, bureau=modeler.bureau, user=None, uuid=str(uuid),
                                               command_id=f"telemetry:create:{uuid}")))
            capture = self._capture(uuid)
        if capture.fields.get("_awaiting_upload"):
            blob = self.blobs.receive(io.BytesIO(data).read, MAX_REPORT_BYTES, "application/json",
                                      f"capture-{uuid}.json")
            self.announce(self.app.receive(str(uuid), blob.as_dict(),
                                           f"upload:capture:{uuid}:{blob.sha256}"))
            capture = self._capture(uuid)
        if capture.awaits_parsing():
            Pipeline(self.app, self.blobs, self.announce, self.find_run).process(str(uuid),
                                                                                 capture.content["sha256"])
        return uris.resource_path("capture", uuid)

    def _modeler(self, modeler_id):
        if modeler_id is None:
            return None
        try:
            modeler = self.app.repository.get(modeler_id)
        except AggregateNotFoundError:
            return None
        return modeler if isinstance(modeler, Modeler) and not modeler.deleted else None

    def _status_kind(self, modeler):
        try:
            kind = self.app.repository.get(UUID(uris.parse_uri(modeler.fields.get("type"))[1]))
        except (AggregateNotFoundError, TypeError, ValueError):
            return None
        if not isinstance(kind, ModelerType):
            return None
        names = [c.get("capture_type") for c in kind.fields.get("capture_types") or [] if isinstance(c, dict)]
        status = [n for n in names if str(n).endswith(".status")]
        return status[0] if len(status) == 1 else None

    def _capture(self, uuid):
        try:
            found = self.app.repository.get(uuid)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, CaptureRecord) else None


def _lock(key):
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())
