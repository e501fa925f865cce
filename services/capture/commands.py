"""A5 /modeler-command/ (capture-and-platform.md A5, F7): a command for a machine, created `new` by a client and
published, once committed, with routing key `nautilus.command` (the reference's name, kept for compatibility) for the
machine side (Echo, an edge bridge, the device simulator) to carry out. The machine side writes its status:
`new → processing → complete | error` (`new → error` too: a command refused before it started), with `response`
(and `job_external_id`, the vendor's job id) as it likes.

Validation (A5, inferred where the reference's texts are cut off): `modeler` names a modeler of the caller's bureau;
`start_job` needs `build-file` or `machine_job_file`; `pause_job`, `resume_job` and `cancel_job` need
`job_external_id`; a command's type, modeler and run never change; a finished command does not move again (409).
Production follows the capture feed (services.production.builds): a completed `start_job` moves its run to
in-progress, a completed `cancel_job` cancels it.
"""
from services.capture.domain import Modeler, _visible
from shared.errors import Conflict, InvalidPayload
from shared.resource import Resource

COMMAND_EVENT = "nautilus.command"
MOVES = {"new": {"processing", "error"}, "processing": {"complete", "error"}, "complete": set(), "error": set()}
FIXED = ("type", "modeler", "run", "build-file", "machine_job_file", "printing_preset", "bureau")
NEW_STATUS = "A new command's status is `new`; the machine side moves it."
NOT_ALLOWED = "The requested status transformation is not allowed."
NEEDS_FILE = "A start_job command needs a build-file or a machine_job_file."
NEEDS_JOB = "A {} command needs the machine's job_external_id."
FIXED_FIELD = "A command's {} is fixed once it is issued."


class ModelerCommand(Resource):
    resource = "modeler-command"

    class StatusChanged(Resource.Updated):
        field = "status"

    class PickedUp(StatusChanged):
        value = "processing"

    class Completed(StatusChanged):
        value = "complete"

    class Failed(StatusChanged):
        value = "error"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        if fields.get("status") not in (None, "", "new"):
            raise InvalidPayload(NEW_STATUS, field="status")
        path = fields.get("modeler")
        modeler = unit.get(path) if path else None
        if not isinstance(modeler, Modeler) or not _visible(modeler, unit):
            raise InvalidPayload(f"'modeler' does not point at an existing modeler: {path}", field="modeler")
        kind = fields.get("type")
        if kind == "start_job" and not (fields.get("build-file") or fields.get("machine_job_file")):
            raise InvalidPayload(NEEDS_FILE, field="build-file")
        if kind in ("pause_job", "resume_job", "cancel_job") and not fields.get("job_external_id"):
            raise InvalidPayload(NEEDS_JOB.format(kind), field="job_external_id")
        fields = dict(fields, status="new", response=fields.get("response"))
        return fields, [], {}

    def update(self, changes, actor):
        changes = dict(changes)
        for key in FIXED:
            if key in changes and changes[key] != self.fields.get(key):
                raise InvalidPayload(FIXED_FIELD.format(key), field=key)
        current, wanted = self.fields.get("status"), changes.get("status")
        if wanted is not None and wanted != current and wanted not in MOVES.get(current, set()):
            raise Conflict(NOT_ALLOWED)
        super().update(changes, actor)

    @classmethod
    def follow_ups(cls, verb, result, payload):
        """Each issued command is published on `nautilus.command` once it has committed."""
        if verb != "create":
            return []
        return [(COMMAND_EVENT, dict({k: v for k, v in payload.items() if k != "status"}, uri=result["uri"],
                                     status="new"))]
