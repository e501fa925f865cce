"""Device capture's rules (capture-and-platform.md A1-A4, F6): the machine catalogue, modelers and the status they
derive from what their machines report, captures (a raw file, parsed in the background) and the builds parsed from
them.

Events other services follow, by name (the feed names each event from its class, general first):
- ModelerConnectivityChanged {connected}, ModelerStatusChanged {status}, ModelerCurrentBuildChanged {current_build},
  ModelerCaptureReceived {latest_upload}, ModelerDeviceReported {error}, ModelerWatermarkAdvanced {watermark};
- CaptureContentReceived {status: processing|batch_processing}, CaptureParsed / CaptureParsingFailed {status, error}
  (both also CaptureStatusChanged);
- BuildCreated (a job the machine reported for the first time: every field, `modeler` and `name` included),
  BuildStatusChanged {status} (+ BuildCompleted, BuildFailed for the end states), BuildProgressed {current_layer},
  BuildLinkedToRun {run}.
Production follows BuildCreated + BuildStatusChanged to move a run whose uuid is the build's name (F6 step 5); the
build's `run` is written by the platform (an internal command), never by a client.
"""
import ipaddress
from uuid import NAMESPACE_URL, UUID, uuid5

from shared import uris
from shared.errors import Conflict, InvalidPayload
from shared.resource import Resource

IP_ADDRESS_INVALID = ("This means the IP address you entered is invalid. Make sure your ip address is a valid IPv4 "
                      "or IPv6 address.")
DEVICE_STATES = ("idle", "printing", "maintenance", "print_finished", "ready_to_print", "error")
PARSING = ("processing", "batch_processing")
BATCH_SUFFIXES = (".historic", ".jobs", ".log")  # multi-record files: parsed in a batch (A4)


def derive_status(connected, latest_upload, reported):
    """A modeler's `status`, from nothing but its connectivity and what its captures reported (A3):

    1. not connected → `offline`, whatever the machine said last (this beats error states);
    2. no capture ever uploaded → `not_connected`;
    3. the machine reports an error → `error`;
    4. the machine's own state, mapped into the modeler's vocabulary (idle, printing, maintenance, print_finished,
       ready_to_print);
    5. anything else (captures arrived but none told a state, or a state Stratum cannot map) → `unknown`.
    """
    if connected is False:
        return "offline"
    if not latest_upload:
        return "not_connected"
    reported = reported or {}
    if reported.get("error") or reported.get("state") == "error":
        return "error"
    state = reported.get("state")
    return state if state in DEVICE_STATES else "unknown"


def check_ip_address(value):
    if value is None:
        return
    try:
        ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise InvalidPayload(IP_ADDRESS_INVALID, field="ip_address") from None


def is_batch(capture_type_name):
    return str(capture_type_name or "").endswith(BATCH_SUFFIXES)


def _visible(aggregate, unit):
    return not aggregate.deleted and (aggregate.bureau in (None, unit.bureau) or unit.ctx.get("platform_admin"))


class ModelerType(Resource):
    """A1: a machine model Stratum knows, platform data (services.capture.machines), read-only to clients."""

    resource = "modeler-type"


class CaptureType(Resource):
    """A2: one capture kind of a modeler type, with the interval Echo should collect it at."""

    resource = "capture-type"


class Modeler(Resource):
    """A3: the connectivity twin of a machine. Clients write its configuration; its status is derived."""

    resource = "modeler"
    private_fields = ("password",)  # the EOSConnect password is a secret: accepted, never shown

    class ConnectivityChanged(Resource.Updated):
        field = "connected"

    class StatusChanged(Resource.Updated):
        field = "status"

    class CurrentBuildChanged(Resource.Updated):
        field = "current_build"

    class WatermarkAdvanced(Resource.Updated):
        field = "watermark"

    class CaptureReceived(Resource.Updated):
        """{latest_upload}: a capture of this modeler was uploaded."""

    class DeviceReported(Resource.Updated):
        """{error, _reported, _reported_at}: a parsed status capture told the machine's state."""

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields)
        check_ip_address(fields.get("ip_address"))
        if fields.get("connected") is None:
            fields["connected"] = True
        fields.update(error=None, current_build=None, latest_upload=None, watermark=None, cassettes=[],
                      _reported=None, _reported_at=None)
        fields["status"] = derive_status(fields["connected"], None, None)
        return super().create(id, fields, bureau, actor)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        cls.check_type(unit, fields.get("type"))
        return fields, [], {}

    @staticmethod
    def check_type(unit, path):
        target = unit.get(path) if path else None
        if not isinstance(target, ModelerType) or not _visible(target, unit):
            raise InvalidPayload(f"'type' does not point at an existing modeler-type: {path}", field="type")

    def update(self, changes, actor):
        changes = dict(changes)
        if "ip_address" in changes:
            check_ip_address(changes["ip_address"])
        if "connected" in changes and changes["connected"] is None:
            raise InvalidPayload("'connected' is true or false.", field="connected")
        super().update(changes, actor)
        self._settle_status(actor)

    def consequences(self, unit):
        if any(isinstance(e, Resource.Updated) and "type" in e.changes for e in self.pending_events):
            self.check_type(unit, self.fields.get("type"))
        return []

    # -- what its captures tell (internal steps, never a client's PUT) -------------------------------------------

    def capture_received(self, at, actor):
        if at > (self.fields.get("latest_upload") or ""):
            self.trigger_event(self.CaptureReceived, changes={"latest_upload": at}, actor=actor)
            self._settle_status(actor)

    def report(self, state, error, current_build, at, actor):
        """A parsed status capture taken at `at`: the machine's state, its error text and the build it is on (None:
        none). A report older than one already applied changes nothing (captures may be parsed out of order)."""
        if at < (self.fields.get("_reported_at") or ""):
            return
        reported = {"state": state, "error": error}
        if reported != self.fields.get("_reported") or error != self.fields.get("error"):
            self.trigger_event(self.DeviceReported, changes={"_reported": reported, "_reported_at": at,
                                                             "error": error}, actor=actor)
        if current_build != self.fields.get("current_build"):
            self.trigger_event(self.CurrentBuildChanged, changes={"current_build": current_build}, actor=actor)
        self._settle_status(actor)

    def advance_watermark(self, value, actor):
        """A3: the newest historic build collected; it only moves forward, so a history read twice changes nothing."""
        if value and value > (self.fields.get("watermark") or ""):
            self.trigger_event(self.WatermarkAdvanced, changes={"watermark": value}, actor=actor)

    def _settle_status(self, actor):
        status = derive_status(self.fields.get("connected"), self.fields.get("latest_upload"),
                               self.fields.get("_reported"))
        if status != self.fields.get("status"):
            self.trigger_event(self.StatusChanged, changes={"status": status}, actor=actor)

    @property
    def device(self):
        """What a parser may use to find this machine in a report about several."""
        return {k: self.fields.get(k) for k in ("ip_address", "serial_number", "name")}


class Capture(Resource):
    """A4: a snapshot a machine (or Echo for it) uploads. POST registers it and answers where to PUT the raw file;
    the file is parsed in the background (new → processing | batch_processing → complete | failed)."""

    resource = "capture"

    class ContentReceived(Resource.Updated):
        """{_content, status}: the raw file landed; parsing starts."""

    class StatusChanged(Resource.Updated):
        field = "status"

    class Parsed(StatusChanged):
        value = "complete"

    class ParsingFailed(StatusChanged):
        value = "failed"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields, status="new", user=actor, printer_names=[], error=None, content_upload=None,
                      content_download=None, content_parsed_download=None, _awaiting_upload=True)
        return super().create(id, fields, bureau, actor)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        if fields.get("addiguru_installation"):
            raise InvalidPayload("Captures of Addiguru installations (addiguru.build.analysis) are not taken yet; a "
                                 "capture names its modeler.", field="addiguru_installation")
        path = fields.get("modeler")
        modeler = unit.get(path) if path else None
        if not isinstance(modeler, Modeler) or not _visible(modeler, unit):
            raise InvalidPayload(f"'modeler' does not point at an existing modeler: {path}", field="modeler")
        return fields, [], {"upload": True}  # the gateway answers with where to PUT the bytes

    def update(self, changes, actor):
        if "modeler" in changes and changes["modeler"] != self.fields.get("modeler"):
            raise InvalidPayload("A capture stays with the modeler it was taken from.", field="modeler")
        if "capture_type_name" in changes and changes["capture_type_name"] != self.fields.get("capture_type_name") \
                and not self.fields.get("_awaiting_upload"):
            raise InvalidPayload("A capture's kind is fixed once its content is uploaded.", field="capture_type_name")
        super().update(changes, actor)

    @property
    def content(self):
        return self.fields.get("_content")

    @property
    def taken_at(self):
        return self.created_on.isoformat()

    def awaits_parsing(self, sha256=None):
        return (self.fields.get("status") in PARSING and bool(self.content)
                and (sha256 is None or self.content["sha256"] == sha256))

    def receive(self, blob, actor):
        """The raw file landed. The same bytes again (a retried PUT) change nothing; other bytes are refused: a new
        snapshot is a new capture."""
        if not self.fields.get("_awaiting_upload"):
            if self.content and self.content.get("sha256") == blob["sha256"]:
                return False
            raise Conflict("This capture already has its content; upload a new snapshot as a new capture.")
        status = "batch_processing" if is_batch(self.fields.get("capture_type_name")) else "processing"
        self.trigger_event(self.ContentReceived, changes={"_content": blob, "_awaiting_upload": False,
                                                          "status": status}, actor=actor)
        return True

    def refuse_upload(self, reason, size, actor):
        if not self.fields.get("_awaiting_upload"):
            raise Conflict("This capture already has its content; upload a new snapshot as a new capture.")
        self.trigger_event(self.ParsingFailed, changes={"_awaiting_upload": False, "status": "failed",
                                                        "error": reason}, actor=actor)

    def parsed(self, blob, actor):
        if self.fields.get("status") in PARSING:
            self.trigger_event(self.Parsed, changes={"status": "complete", "_parsed": blob, "error": None},
                               actor=actor)

    def failed(self, reason, actor):
        if self.fields.get("status") in PARSING:
            self.trigger_event(self.ParsingFailed, changes={"status": "failed", "error": reason}, actor=actor)


class Build(Resource):
    """A4 /build/: one job of a machine. Parsed captures create and update them; the id is derived from the modeler
    and the vendor's job id, so the same job read again (the same history uploaded twice) updates the same build."""

    resource = "build"

    class StatusChanged(Resource.Updated):
        field = "status"

    class Completed(StatusChanged):
        value = "complete"

    class Failed(StatusChanged):
        value = "failed"

    class Progressed(Resource.Updated):
        field = "current_layer"

    class LinkedToRun(Resource.Updated):
        field = "run"

    @staticmethod
    def id_for(modeler_path, job_key):
        return uuid5(NAMESPACE_URL, f"stratum:build:{modeler_path}:{job_key}")

    @classmethod
    def on_create(cls, unit, new_id, fields):
        path = fields.get("modeler")
        modeler = unit.get(path) if path else None
        if not isinstance(modeler, Modeler) or not _visible(modeler, unit):
            raise InvalidPayload(f"'modeler' does not point at an existing modeler: {path}", field="modeler")
        return fields, [], {}

    @property
    def run_candidate(self):
        """The run this build is for when its name is a run's uuid (A4: the platform links them), else None."""
        try:
            return uris.resource_path("run", UUID(str(self.fields.get("name"))))
        except ValueError:
            return None
