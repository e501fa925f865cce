"""bambu.modeler.status: a Bambu Lab printer's MQTT report, the `print` object it publishes on
`device/{serial}/report` (command `push_status`).

Format: Doridian/OpenBambuAPI, mqtt.md, "print.push_status" (the community's reverse-engineered protocol notes; the
fixture in tests/fixtures/capture/bambu/ is that document's example). `gcode_state` takes the values the community
Home Assistant integration enumerates (greghesp/ha-bambulab, custom_components/bambu_lab/pybambu/const.py,
GCODE_STATE_OPTIONS): IDLE, PREPARE, SLICING, INIT, RUNNING, PAUSE, FINISH, FAILED, OFFLINE, UNKNOWN.

Reports are often partial (a printer sends only what changed): a report without `gcode_state` still yields its
figures but leaves the modeler's state as it was.
"""
from datetime import datetime, timezone

from services.capture.parsers import Job, Outcome, ParseError, expect, number, read_json

FORMAT = "bambu.mqtt.print.push_status"
# gcode_state → (modeler state, build status of the job it is on; None: no job)
STATES = {
    "IDLE": ("idle", None),
    "INIT": ("printing", "preheat"),
    "SLICING": ("printing", "preheat"),
    "PREPARE": ("printing", "preheat"),
    "RUNNING": ("printing", "processing"),
    "PAUSE": ("printing", "paused"),
    "FINISH": ("print_finished", "complete"),
    "FAILED": ("error", "failed"),
    "OFFLINE": ("unknown", None),
    "UNKNOWN": ("unknown", None),
}
TEMPERATURES = ("bed_temper", "bed_target_temper", "nozzle_temper", "nozzle_target_temper", "chamber_temper")


def parse(data, device):
    report = expect(read_json(data, "A Bambu Lab report"), dict, "A Bambu Lab report")
    if "print" not in report:
        raise ParseError("A Bambu Lab status report is an object with a 'print' member (the MQTT report of "
                         f"device/<serial>/report); this one has: {', '.join(sorted(report)) or 'nothing'}.")
    print_ = expect(report["print"], dict, "'print'")
    gcode_state = print_.get("gcode_state")
    state, job_status = None, None
    if gcode_state is not None:
        gcode_state = expect(gcode_state, str, "'print.gcode_state'").upper()
        state, job_status = STATES.get(gcode_state, ("unknown", None))
    error = _error(print_)
    if error and state is not None:
        state = "error"
    job = _job(print_, job_status)
    content = {
        "command": print_.get("command"),
        "sequence_id": print_.get("sequence_id"),
        "gcode_state": gcode_state,
        "progress_percent": number(print_.get("mc_percent")),
        "remaining_minutes": number(print_.get("mc_remaining_time")),
        "layer": number(print_.get("layer_num")),
        "total_layers": number(print_.get("total_layer_num")),
        "gcode_file": print_.get("gcode_file") or None,
        "subtask_name": print_.get("subtask_name") or None,
        "temperatures": {key: number(print_.get(key)) for key in TEMPERATURES if key in print_},
        "wifi_signal": print_.get("wifi_signal"),
        "hms": print_.get("hms") if isinstance(print_.get("hms"), list) else [],
        "error": error,
    }
    return Outcome(FORMAT, content, state=state, error=error, current_job=job.key if job else None,
                   jobs=[job] if job else [])


def _error(print_):
    """The printer's own error: a non-zero print_error / mc_print_error_code, or HMS (health) alerts."""
    parts = []
    for key in ("print_error", "mc_print_error_code"):
        code = number(print_.get(key))
        if code:
            parts.append(f"{key} {print_.get(key)}")
    hms = print_.get("hms")
    if isinstance(hms, list) and hms:
        parts.append(f"{len(hms)} HMS alert(s): " + "; ".join(_hms(item) for item in hms[:5]))
    return ", ".join(parts) or None


def _hms(item):
    if isinstance(item, dict):
        return " ".join(f"{k}={item[k]}" for k in ("attr", "code") if k in item) or "alert"
    return str(item)


def _job(print_, job_status):
    """The job the printer is on, when its state says there is one and the report names it."""
    if job_status is None:
        return None
    key = next((str(print_[k]) for k in ("task_id", "subtask_id") if print_.get(k) not in (None, "", "0")), None)
    name = print_.get("subtask_name") or print_.get("gcode_file") or None
    started = _epoch(print_.get("gcode_start_time"))
    if key is None and name:
        key = f"{name}@{started or ''}"
    if key is None:
        return None
    remaining = number(print_.get("mc_remaining_time"))
    return Job(key=f"bambu:{key}", name=str(name or key), status=job_status,
               layers=_int(print_.get("total_layer_num")), current_layer=_int(print_.get("layer_num")),
               start_time=started, estimated_time=remaining * 60 if remaining is not None else None)


def _int(value):
    value = number(value)
    return int(value) if value is not None else None


def _epoch(value):
    seconds = number(value)
    if not seconds:
        return None
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        raise ParseError(f"'print.gcode_start_time' {value!r} is not a time.") from None
