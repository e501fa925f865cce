"""Stored documents → API representations: absolute URIs, only the catalogue's fields (never a write-only one)."""
from shared.uris import absolute

# URIs stored inside the items of an array of objects: {resource: {field: key}} (a layout's positions name models)
NESTED_URIS = {"layout": {"positions": "model", "unfitted": "model"}, "run-material": {"materials": "material"},
               "piece-actuals": {"per_step_details": ("process_step", "run")},
               "line-item-actuals": {"per_step_details": "process_step"}}
# Views whose `uri` names another resource (production.md §4.5: a workstation's is its printer, post-processor or
# shipping station, which shares its uuid), stored under this document field.
URI_FIELD = {"workstation": "uri", "run-schedule": "uri"}  # a run-schedule row's is its run's (schedule_views)


def render(spec, path, doc, base_url):
    body = {}
    for name, field in spec.fields.items():
        if field.writeonly:
            continue  # a password or a CSRF token is taken, never shown (its `null` would only claim it is unset)
        value = doc.get(name)
        if field.type == "uri":
            value = absolute(base_url, value)
        elif field.type == "array" and field.items == "uri":
            value = [absolute(base_url, item) for item in value or []]
        elif name in NESTED_URIS.get(spec.name, {}) and isinstance(value, list):
            keys = NESTED_URIS[spec.name][name]
            keys = (keys,) if isinstance(keys, str) else keys
            value = [dict(item, **{key: absolute(base_url, item.get(key)) for key in keys})
                     if isinstance(item, dict) else item for item in value]
        body[name] = value
    body["uri"] = absolute(base_url, doc.get(URI_FIELD[spec.name]) if spec.name in URI_FIELD else path)
    return body


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
