"""The LIST query language of the API: `filter[field]=a,b` (any of), `filter[field]>x` / `<x` (ranges),
`sort=field,-other`, `page[limit]`, `page[offset]`, and (an extension) `page[after]`: the keyset cursor a page gave
as `meta.next`, for deep pages that cost what the first one does (gateway.cursors). Parsed from the raw query
string because `filter[x]>5` has no `=`.
"""
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from shared import uris
from shared.errors import InvalidPayload
from shared.validation import coerce_scalar

DEFAULT_LIMIT = 1000
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000_000  # far past any real list; bigger numbers overflow the databases' integers
_RANGE_TYPES = {"integer", "number", "datetime", "string"}


@dataclass
class Filter:
    field: str
    op: str  # "in", ">", "<"
    values: list


@dataclass
class ListQuery:
    filters: list = field(default_factory=list)
    sort: list = field(default_factory=list)  # [(field, descending)]
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    after: str | None = None  # a keyset cursor (page[after]); never together with an offset
    flags: dict = field(default_factory=dict)


def parse(resource, query_string):
    """Parse and check a query string against `resource`; unknown fields and bad values → 400 naming them."""
    query = ListQuery()
    for part in (query_string or "").split("&"):
        if not part:
            continue
        decoded = unquote_plus(part)
        if "\x00" in decoded or "\ufffd" in decoded:  # NUL, or bytes that are not UTF-8: nothing stored matches
            raise InvalidPayload(f"The query parameter '{decoded.split('=')[0][:60]}' holds a NUL character or "
                                 "bytes that are not UTF-8.", field=decoded.split("=")[0][:60].replace("\x00", ""))
        key, op, value = _split(decoded)
        if key.startswith("filter[") and "]" in key:
            name = key[len("filter["):key.index("]")]
            query.filters.append(_filter(resource, name, op, value))
        elif key == "sort":
            query.sort = [_sort(resource, item) for item in value.split(",") if item]
        elif key == "page[limit]":
            query.limit = _int_param(key, value, 1, MAX_LIMIT)
        elif key == "page[offset]":
            query.offset = _int_param(key, value, 0, MAX_OFFSET)
        elif key == "page[after]":
            if not value:
                raise InvalidPayload("page[after] must be the `meta.next` cursor of a previous page.", field=key)
            query.after = value
        else:
            query.flags[key] = value
    if query.after is not None and query.offset:
        raise InvalidPayload("page[after] and page[offset] cannot be used together: a cursor already says where "
                             "the page starts.", field="page[after]")
    filtered = {f.field for f in query.filters}
    for name in resource.required_filters:
        if name not in filtered:
            raise InvalidPayload(f"filter[{name}] is required when listing {resource.name}.", field=name)
    for name, value in resource.default_filters.items():
        if name not in filtered:  # documented LIST defaults, e.g. line items of type product
            query.filters.append(Filter(name, "in", value if isinstance(value, list) else [value]))
    return query


def _split(part):
    for index, char in enumerate(part):
        if char in "=<>":
            op = char
            value = part[index + 1:]
            if char in "<>" and value.startswith("="):
                value = value[1:]  # treat >= and <= as > and < inclusive-agnostic ranges
            return part[:index], op, value
    return part, "=", ""


def _filter(resource, name, op, value):
    spec = resource.fields.get(name)
    if spec is None:
        raise InvalidPayload(f"Cannot filter {resource.name} by unknown field '{name}'.", field=name)
    item_type = spec.items if spec.type == "array" else spec.type
    if op == "=":
        return Filter(name, "in", [_filter_value(spec, item_type, v) for v in value.split(",")])
    if item_type not in _RANGE_TYPES:
        raise InvalidPayload(f"'{name}' cannot be filtered by range.", field=name)
    return Filter(name, op, [_filter_value(spec, item_type, value)])


def _filter_value(spec, type_name, text):
    if type_name == "uri":
        try:
            return uris.normalise(text)
        except ValueError:
            raise InvalidPayload(f"filter[{spec.name}] must be a resource URI.", field=spec.name) from None
    value = coerce_scalar(type_name or "string", text)
    if type_name in ("integer", "number") and isinstance(value, str):
        raise InvalidPayload(f"filter[{spec.name}] must be a number.", field=spec.name)
    if type_name == "boolean" and isinstance(value, str):
        raise InvalidPayload(f"filter[{spec.name}] must be true or false.", field=spec.name)
    return value


def _sort(resource, item):
    descending = item.startswith("-")
    name = item.lstrip("-+")
    if name not in resource.fields:
        raise InvalidPayload(f"Cannot sort {resource.name} by unknown field '{name}'.", field=name)
    return name, descending


def _int_param(key, value, low, high):
    try:
        number = int(value)
    except ValueError:
        raise InvalidPayload(f"{key} must be an integer.", field=key) from None
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidPayload(f"{key} must be {bound}.", field=key)
    return number
