"""Payload validation against the resource catalogue: types, enum choices, ranges, required fields.

Used by the gateway (reject early, before any RPC) and by the services' application layer (the store never holds
a value outside the documented choices, whoever the caller is). Errors always name the field.
"""
from datetime import datetime

from shared import uris
from shared.errors import InvalidPayload

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def validate(resource, payload, *, partial, internal=False):
    """Return a cleaned copy of `payload` for `resource`.

    partial=False (POST): required fields must be present; missing optional fields get their defaults.
    partial=True (PUT): only the fields given are checked. Read-only fields are ignored in both cases, except for
    internal=True: a service's own command sets what only the system may set (a print's run, a piece's line item).
    """
    if not isinstance(payload, dict):
        raise InvalidPayload("The request body must be a JSON object.")
    clean = {}
    for name, value in payload.items():
        spec = resource.fields.get(name)
        if spec is None:
            raise InvalidPayload(f"Unknown field '{name}' for {resource.name}.", field=name)
        if spec.filter_only or (spec.readonly and not (internal and name != "uri")):
            continue
        clean[name] = check_value(spec, value)
    if not partial:
        for name, spec in resource.writable_fields().items():
            if name in clean:
                continue
            if spec.required:
                raise InvalidPayload(f"The field '{name}' is required.", field=name)
            clean[name] = _copy_default(spec.default)
    return clean


def _copy_default(value):
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


def check_value(spec, value):
    if value is None:
        if spec.required:
            raise InvalidPayload(f"The field '{spec.name}' may not be null.", field=spec.name)
        return None
    checked = _check_type(spec, spec.type, value)
    if spec.choices and checked not in spec.choices:
        raise InvalidPayload(
            f"'{value}' is not a valid choice for '{spec.name}'; choose one of: {', '.join(spec.choices)}.",
            field=spec.name,
        )
    if spec.minimum is not None and checked < spec.minimum:
        raise InvalidPayload(f"'{spec.name}' must be at least {spec.minimum}.", field=spec.name)
    if spec.maximum is not None and checked > spec.maximum:
        raise InvalidPayload(f"'{spec.name}' must be at most {spec.maximum}.", field=spec.name)
    return checked


def _type_error(spec, expected):
    return InvalidPayload(f"'{spec.name}' must be {expected}.", field=spec.name)


def _check_type(spec, type_name, value):
    if type_name == "any":
        return value
    if type_name == "string":
        if not isinstance(value, str):
            raise _type_error(spec, "a string")
        return value
    if type_name == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(spec, "an integer")
        return value
    if type_name == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(spec, "a number")
        return value
    if type_name == "boolean":
        if not isinstance(value, bool):
            raise _type_error(spec, "true or false")
        return value
    if type_name == "object":
        if not isinstance(value, dict):
            raise _type_error(spec, "a JSON object")
        return value
    if type_name == "datetime":
        return _check_datetime(spec, value)
    if type_name == "uri":
        return _check_uri(spec, value)
    if type_name == "array":
        if not isinstance(value, list):
            raise _type_error(spec, "an array")
        return [_check_type(spec, spec.items or "any", item) for item in value]
    raise _type_error(spec, f"of type {type_name}")


def _check_datetime(spec, value):
    if not isinstance(value, str):
        raise _type_error(spec, "an ISO-8601 date-time string")
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError:
        raise _type_error(spec, "an ISO-8601 date-time string") from None


def _check_uri(spec, value):
    try:
        resource_name, uuid = uris.parse_uri(value)
    except ValueError:
        raise _type_error(spec, "a resource URI") from None
    if spec.ref and resource_name != spec.ref:
        raise InvalidPayload(f"'{spec.name}' must be the URI of a {spec.ref}.", field=spec.name)
    return uris.resource_path(resource_name, uuid)


def coerce_form(resource, form):
    """Form-encoded payloads carry strings only: turn them into the JSON types the catalogue expects.

    A repeated key (or a key ending in []) becomes an array; values that do not parse are left as strings so that
    `validate` reports the field.
    """
    payload = {}
    for key in form.keys():
        values = form.getlist(key)
        name = key[:-2] if key.endswith("[]") else key
        spec = resource.fields.get(name)
        if spec is None:
            payload[name] = values[-1]
            continue
        if spec.type == "array":
            payload[name] = [coerce_scalar(spec.items or "string", v) for v in values]
        else:
            payload[name] = coerce_scalar(spec.type, values[-1])
    return payload


def coerce_scalar(type_name, text):
    if type_name == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if type_name == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if type_name == "boolean":
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    if text == "" and type_name not in ("string",):
        return None
    return text
