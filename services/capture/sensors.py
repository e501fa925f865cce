"""Environmental sensors (capture-and-platform.md A12, F8): a sensor is registered once, attached to one sub-location,
and its state follows what its readings say. An ordinary event-sourced resource with these rules:

- `serial_number` (at most 255 characters) names one physical device on the whole platform: a second registration
  of the same serial, in any bureau, is 400 "The requested sensor is already stored in the database" (a device
  cannot feed two bureaus; a UniqueKey claim, saved with the sensor, settles the race between two registrations).
- A sensor is attached to its sub-location once, at registration: a PUT naming another sub-location is 400 "The
  requested sensor is already attached to a sub-location". Readings are attributed to the batches of the
  sub-location the sensor sits in (services.capture.batch_data), which must not change under past readings. Moving
  a device to another shelf is not supported yet: its serial stays claimed, even once the sensor is deleted
  (UniqueKey claims are never released), so a moved device would need an attachment history first.
- `frequency` is minutes between readings, at least 1 (default 15).
- `state` is the platform's: `new` until the first reading is stored, `idle` while readings arrive, `error` when
  the device (or its bridge) reports a failure instead of readings; the next reading brings it back to `idle`.
  The readings themselves never pass through this aggregate (services.capture.readings stores them in batches);
  the sensor records only its changes of state: SensorStateChanged.

The feature gate (`sensors`) is not enforced: this codebase has no feature flags yet (identity's /feature/ is a
generic resource), so every bureau may register sensors.
"""
from shared.errors import InvalidPayload
from shared.resource import Resource

SERIAL_TAKEN = "The requested sensor is already stored in the database"
ALREADY_ATTACHED = "The requested sensor is already attached to a sub-location"
MAX_SERIAL = 255
STATES = ("new", "idle", "error")
SERIAL_NAMESPACE = "sensor-serial"


def check_serial(value):
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload("'serial_number' is required: the sensor's serial number.", field="serial_number")
    if len(value) > MAX_SERIAL:
        raise InvalidPayload(f"'serial_number' cannot exceed {MAX_SERIAL} characters ({len(value)} given).",
                             field="serial_number")


def check_frequency(value):
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidPayload("'frequency' is the minutes between two readings: a whole number, at least 1.",
                             field="frequency")


class Sensor(Resource):
    resource = "sensor"

    class StateChanged(Resource.Updated):
        field = "state"

    class AttachedToSubLocation(Resource.Updated):
        field = "sub_location"  # (never emitted after creation today: a sensor is attached once)

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields, state="new")
        if fields.get("frequency") is None:
            fields["frequency"] = 15
        return super().create(id, fields, bureau, actor)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        serial = fields.get("serial_number")
        check_serial(serial)
        check_frequency(fields.get("frequency"))
        claim = unit.claim_unique(SERIAL_NAMESPACE, serial.strip(), {"sensor": str(new_id)}, SERIAL_TAKEN,
                                  "serial_number")
        return fields, [claim], {}

    def update(self, changes, actor):
        changes = dict(changes)
        if "serial_number" in changes and changes["serial_number"] != self.fields.get("serial_number"):
            raise InvalidPayload("A sensor's serial number names its device and cannot change; register the other "
                                 "device as a new sensor.", field="serial_number")
        if "sub_location" in changes and changes["sub_location"] != self.fields.get("sub_location"):
            raise InvalidPayload(ALREADY_ATTACHED, field="sub_location")
        check_frequency(changes.get("frequency"))
        if "frequency" in changes and changes["frequency"] is None:
            changes.pop("frequency")
        super().update(changes, actor)

    # -- what its readings say (internal steps, never a client's PUT) ------------------------------------------------

    def readings_arrived(self):
        """Readings were stored: a new or failed sensor is idle (working) now. True when the state changed."""
        if self.fields.get("state") != "idle":
            self.trigger_event(self.StateChanged, changes={"state": "idle"}, actor=None)
            return True
        return False

    def failed(self, error):
        """The device or its bridge reported a failure instead of readings."""
        if self.fields.get("state") != "error" or self.fields.get("_error") != error:
            self.trigger_event(self.StateChanged, changes={"state": "error", "_error": error}, actor=None)
            return True
        return False
