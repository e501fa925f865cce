"""Stored documents → API representations: absolute URIs, only the catalogue's fields (never a write-only one)."""
from shared.uris import absolute

# URIs stored inside the items of an array of objects: {resource: {field: key}} (a layout's positions name models)
NESTED_URIS = {"layout": {"positions": "model", "unfitted": "model"}, "run-material": {"materials": "material"},
               "piece-actuals": {"per_step_details": ("process_step", "run")},
               "line-item-actuals": {"per_step_details": "process_step"},
               # materials.md §4, §3.7: where a relocation put the batch or the container (stored as paths)
               "material-batch-action": {"metadata": ("location", "sub_location")},
               "material-container-action": {"metadata": ("location", "sub_location")}}
# Views whose `uri` names another resource (production.md §4.5: a workstation's is its printer, post-processor or
# shipping station, which shares its uuid), stored under this document field.
URI_FIELD = {"workstation": "uri", "run-schedule": "uri"}  # a run-schedule row's is its run's (schedule_views)


def render(spec, path, doc, base_url):
    base = base_url.rstrip("/")  # shared.uris.absolute, once per document rather than once per URI
    names, rewritten = _plan(spec)
    get = doc.get
    body = {name: get(name) for name in names}  # every shown field, in the catalogue's order
    for name, kind, keys in rewritten:  # then the few holding URIs, in place (the order stays)
        value = body[name]
        if kind is _URI:
            if value is not None:
                body[name] = base + value
        elif kind is _URIS:
            body[name] = [None if item is None else base + item for item in value or []]
        elif isinstance(value, list):  # _NESTED
            body[name] = [dict(item, **{key: absolute(base_url, item.get(key)) for key in keys})
                          if isinstance(item, dict) else item for item in value]
        elif isinstance(value, dict):  # an object holding paths among other values
            body[name] = dict(value, **{key: base + value[key] for key in keys
                                        if isinstance(value.get(key), str) and value[key].startswith("/")})
    body["uri"] = absolute(base_url, doc.get(URI_FIELD[spec.name]) if spec.name in URI_FIELD else path)
    return body


_URI, _URIS, _NESTED = "uri", "uris", "nested"


def _plan(spec):
    """How the shown fields of `spec` are rendered, worked out once per resource instead of once per document (a
    page of 50 orders looked each field's type up 50 times): (the shown fields' names, in order; [(name, kind,
    nested URI keys)] of those whose value is rewritten). Kept per spec object (a Resource holds dicts, so it is not
    hashable; the catalogue's specs live as long as the process)."""
    known = _PLANS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    names, rewritten = [], []
    for name, field in spec.fields.items():
        if field.writeonly:
            continue  # a password or a CSRF token is taken, never shown (its `null` would only claim it is unset)
        names.append(name)
        if field.type == "uri":
            rewritten.append((name, _URI, ()))
        elif field.type == "array" and field.items == "uri":
            rewritten.append((name, _URIS, ()))
        elif name in NESTED_URIS.get(spec.name, {}):
            keys = NESTED_URIS[spec.name][name]
            rewritten.append((name, _NESTED, (keys,) if isinstance(keys, str) else keys))
    _PLANS[id(spec)] = (spec, (tuple(names), tuple(rewritten)))
    return _PLANS[id(spec)][1]


_PLANS = {}


def render_audit(row, base_url):
    return {
        "uri": absolute(base_url, f"/event/{row.uuid}/"),
        "bureau": absolute(base_url, row.bureau),
        "reference": absolute(base_url, row.reference),
        "key": row.key,
        "previous_value": row.previous_value,
        "current_value": row.current_value,
        "user": absolute(base_url, row.user),
        "created": row.created,
    }
