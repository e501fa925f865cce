"""The resource catalogue: every resource described once, as data (path, verbs, fields, owning service).

It drives validation, routing and (later) the OpenAPI document. Loaded once per process from the JSON file beside
this module; nothing at run time reads outside the project.
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


@dataclass(frozen=True)
class Resource:
    name: str
    path: str
    service: str
    verbs: tuple
    not_found: str
    fields: dict = field(default_factory=dict)

    def writable_fields(self):
        return {name: f for name, f in self.fields.items() if not f.readonly}


def _field(name, spec):
    return Field(
        name=name,
        type=spec["type"],
        required=bool(spec.get("required")),
        readonly=bool(spec.get("readonly")),
        default=spec.get("default"),
        has_default="default" in spec,
        choices=tuple(spec.get("choices") or ()),
        ref=spec.get("ref"),
        items=spec.get("items"),
        minimum=spec.get("minimum"),
        maximum=spec.get("maximum"),
    )


@lru_cache(maxsize=None)
def catalogue():
    with open(os.path.join(os.path.dirname(__file__), "resources.json")) as handle:
        raw = json.load(handle)["resources"]
    return {
        name: Resource(
            name=name,
            path=spec["path"],
            service=spec["service"],
            verbs=tuple(spec["verbs"]),
            not_found=spec.get("not_found", f"The requested {name} cannot be found."),
            fields={fname: _field(fname, fspec) for fname, fspec in spec["fields"].items()},
        )
        for name, spec in raw.items()
    }


def resource(name):
    try:
        return catalogue()[name]
    except KeyError:
        raise NotFound(f"There is no resource called '{name}'.") from None
