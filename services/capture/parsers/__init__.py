"""Parsers of machine captures, by `capture_type_name` (capture-and-platform.md A4, F6 step 3).

A parser reads the raw bytes a machine (or Echo for it) uploaded and returns an `Outcome`: what the machine says about
itself (its state in the modeler's vocabulary, an error, the job it is on), the jobs it lists (builds) and the
normalised content served at the capture's `content_parsed_download`. Content it cannot read raises `ParseError` with
a reason a person can act on; the pipeline records that reason on the capture (status `failed`). Parsers are pure
functions of (bytes, device): no store, no clock, no network, so the fixtures in tests/fixtures/capture/ test them.

Each format is one a vendor or its community documents publicly; each module names its source. A capture kind with
no parser here ends `failed` saying so, rather than being guessed at.
"""
import json
from dataclasses import dataclass, field

MAX_BYTES = 20 * 1024 * 1024  # a status report is kilobytes, a job list rarely a megabyte
MODELER_STATES = ("idle", "printing", "maintenance", "print_finished", "ready_to_print", "error", "unknown")
BUILD_STATUSES = ("complete", "failed", "machine_error", "new", "part_exceeds_boundaries", "processing",
                  "suspended", "user_abort", "paused", "preheat", "waiting_for_resolution", "error", "cancelled",
                  "backlogged", "unknown")


class ParseError(Exception):
    """The content is not what this capture kind's format says it is; str() is the reason shown on the capture."""


@dataclass
class Job:
    """One job the machine reports, as a build (A4 /build/ fields). `key` is the vendor's own id for the job: with
    the modeler it names the build, so reading the same job again updates that build instead of making another."""
    key: str
    name: str
    status: str  # one of BUILD_STATUSES
    layers: int | None = None
    current_layer: int | None = None
    start_time: str | None = None  # ISO 8601
    end_time: str | None = None
    estimated_time: float | None = None  # seconds
    materials: list = field(default_factory=list)
    created: str | None = None  # when the machine queued it (orders a history: the watermark)

    def build_fields(self):
        return {"name": self.name, "status": self.status, "layers": self.layers, "current_layer": self.current_layer,
                "start_time": self.start_time, "end_time": self.end_time, "estimated_time": self.estimated_time,
                "materials": list(self.materials)}


@dataclass
class Outcome:
    format: str
    content: dict  # served as the parsed content
    state: str | None = None  # the machine's state (MODELER_STATES); None when this capture does not tell it
    error: str | None = None  # the machine's own error text
    current_job: str | None = None  # key of the job it is on now (one of `jobs`)
    jobs: list = field(default_factory=list)
    watermark: str | None = None  # the newest job of a history or job list (ISO time)

    @property
    def reports_state(self):
        return self.state is not None

    def as_content(self):
        return dict(self.content, format=self.format, machine={"state": self.state, "error": self.error,
                                                               "current_job": self.current_job},
                    jobs=[dict(job.build_fields(), key=job.key) for job in self.jobs], watermark=self.watermark)


def parser_for(capture_type_name):
    from services.capture.parsers import bambu, formlabs, mtconnect, ultimaker
    return {"bambu.modeler.status": bambu.parse, "ultimaker.modeler.log": ultimaker.parse,
            "formlabs.modeler.status": formlabs.parse, "haas.modeler.status": mtconnect.parse}.get(capture_type_name)


def parse(capture_type_name, data, device=None):
    """The Outcome of `data` read as a `capture_type_name` capture, from a modeler described by `device` (its
    ip_address and serial_number, which pick the machine out of a report about several)."""
    parser = parser_for(capture_type_name)
    if parser is None:
        raise ParseError(f"Stratum has no parser for '{capture_type_name}' captures yet; the raw content is kept "
                         "at content_download.")
    if len(data) > MAX_BYTES:
        raise ParseError(f"The content is {len(data):,} bytes; a '{capture_type_name}' capture is parsed up to "
                         f"{MAX_BYTES:,} bytes.")
    if not data.strip():
        raise ParseError("The content is empty.")
    return parser(data, device or {})


def read_json(data, what):
    """The JSON document in `data`; a ParseError naming where it breaks (truncated uploads end mid-document)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ParseError(f"{what} must be UTF-8 JSON; byte {error.start} is not UTF-8.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ParseError(f"{what} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
                         "was the upload cut short?") from None


def expect(value, kind, where):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = {dict: "an object", list: "a list", str: "a string", int: "an integer"}
        raise ParseError(f"{where} must be {names.get(kind, kind.__name__)}, not {type(value).__name__}.")
    return value


def number(value):
    """A number the device may send as a number or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return None
    return None
