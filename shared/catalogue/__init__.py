"""The resource catalogue: every documented resource described once, as data (paths, verbs, fields, owning service,
documented errors, filters, per-uuid actions). Generated from docs/reference/api-reference.txt by
`python -m tools.catalogue_generate`; it drives validation, routing, the generic resources and the OpenAPI document.
Loaded once per process from the JSON file beside this module; nothing at run time reads outside the project.
"""
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache

from shared.errors import NotFound


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = False
    readonly: bool = False
    default: object = None
    has_default: bool = False
    choices: tuple = ()
    ref: str | None = None
    items: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    filter_only: bool = False
    description: str = ""
    writeonly: bool = False  # accepted on writes, never stored as sent nor shown (a password, a CSRF token)


@dataclass(frozen=True)
class Action:
    name: str  # last path segment, e.g. "clone"
    path: str  # e.g. /order/{uuid}/clone/
    verbs: tuple
    description: str = ""
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    name: str
    path: str
    service: str
    verbs: tuple
    not_found: str
    fields: dict = field(default_factory=dict)
    item_path: str | None = None
    description: str = ""
    errors: tuple = ()
    required_filters: tuple = ()
    default_filters: dict = field(default_factory=dict)
    actions: tuple = ()
    special: bool = False

    def writable_fields(self):
        return {name: f for name, f in self.fields.items() if not (f.readonly or f.filter_only)}

    def action(self, name):
        return next((a for a in self.actions if a.name == name), None)


def _field(name, spec):
    return Field(
        name=name,
        type=spec.get("type", "string"),
        required=bool(spec.get("required")),
        readonly=bool(spec.get("readonly")),
        default=spec.get("default"),
        has_default="default" in spec,
        choices=tuple(spec.get("choices") or ()),
        ref=spec.get("ref"),
        items=spec.get("items"),
        minimum=spec.get("minimum"),
        maximum=spec.get("maximum"),
        filter_only=bool(spec.get("filter_only")),
        description=spec.get("description", ""),
        writeonly=bool(spec.get("writeonly")),
    )


def _fields(raw):
    return {name: _field(name, spec) for name, spec in (raw or {}).items()}


def _action(spec):
    return Action(
        name=spec["path"].rstrip("/").rsplit("/", 1)[-1],
        path=spec["path"],
        verbs=tuple(spec.get("verbs") or ("POST",)),
        description=spec.get("description", ""),
        fields=_fields(spec.get("fields")),
    )


def _resource(name, spec):
    return Resource(
        name=name,
        path=spec["path"],
        service=spec["service"],
        verbs=tuple(spec.get("verbs") or ()),
        not_found=spec.get("not_found") or f"The requested {name} cannot be found.",
        fields=_fields(spec.get("fields")),
        item_path=spec.get("item_path", spec["path"] + "{uuid}/"),
        description=spec.get("description", ""),
        errors=tuple((e["status"], e["title"]) for e in spec.get("errors") or ()),
        required_filters=tuple(spec.get("required_filters") or ()),
        default_filters=dict(spec.get("default_filters") or {}),
        actions=tuple(_action(a) for a in spec.get("actions") or ()),
        special=bool(spec.get("special")),
    )


@lru_cache(maxsize=None)
def catalogue():
    with open(os.path.join(os.path.dirname(__file__), "resources.json")) as handle:
        raw = json.load(handle)["resources"]
    return {name: _resource(name, spec) for name, spec in sorted(raw.items())}


def resource(name):
    try:
        return catalogue()[name]
    except KeyError:
        raise NotFound(f"There is no resource called '{name}'.") from None
