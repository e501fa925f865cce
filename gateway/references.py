"""Every reference in a payload must name a resource the caller can see (its bureau's, shared.access.OWNED_BY_USER
aside), whatever form it takes; another bureau's resource, or one that does not exist, is a 400 naming the field
(or the 404 a map documents instead), and nothing is sent on:

- URI fields and arrays of URIs, of the kind the catalogue gives (`ref`) or, without one, of the kind the URI names
  (a label relationship's `target_uri`, a model library's `owner`);
- URIs inside object fields, which the catalogue describes only as objects (MEMBER_REFERENCES);
- bare uuids whose kind another field of the same payload names (TYPED_UUIDS: `related_table_name` +
  `related_uuid` and the like), the kind being a table name (`line_item` → /line-item/) or a resource name.

Only kinds the read side holds documents of can be checked (not sessions, not the gateway's own views); a kind that
is no stored resource names nothing the caller could be refused."""
from uuid import UUID

from shared import catalogue, uris
from shared.errors import InvalidPayload, NotFound

# (kind field, uuid field): wherever a payload's resource has both, the uuid (or each uuid of a list) must name a
# resource of that kind. files.md §2.4 (documents), orders.md §1.11 (comments), production.md (time entries,
# workstation capacity, secure file checkouts), capture-and-platform.md B5 (Threads messages), D6 (permissions).
TYPED_UUIDS = (("related_table_name", "related_uuid"), ("related_table_name", "resource_uuid"),
               ("record_type", "record_uuid"), ("resource_name", "resource_uuid"))

# Bare uuids whose kind is fixed by the field: (resource, field) → kind. capture-and-platform.md (users: the design
# conversion expert is a user of the bureau).
FIXED_UUIDS = {("users", "conversion_expert_uuid"): "users"}

# Fields that hold a URI or a wildcard, and are strings in the catalogue: (resource, field) → the wildcard.
# capture-and-platform.md D6 (a permission's holder is `*`, anyone, or a user or group URI).
URI_OR_WILDCARD = {("permissions", "holder"): "*"}

# Not checked, on purpose: `custom_field_values[].custom_field_id` (the reference's example is a field id string, not a
# uuid: refusing it could break a working client) and `threads-webhook.resource` (a uuid of no stated kind). Neither is
# ever resolved or joined on the read side, so another bureau's uuid there reveals nothing.

# Resources whose map documents a 404 with their `not_found` text, not the 400, for related data that is missing or
# not the caller's (files.md §2.8: "Some of the requested data cannot be found.").
MISSING_IS_NOT_FOUND = frozenset({"zipfile-request"})

# URI fields whose map documents the target's 404 for a target that is missing or not the caller's (materials.md §3.9:
# a batch action on an unknown batch is a 404; §3.6–3.7: so is a container action on an unknown container).
REFERENCE_NOT_FOUND = frozenset({("material-batch-action", "source_batch"),
                                 ("material-container-action", "source_material_container")})

# URI fields whose map documents the resource's own 404 ("… or related object cannot be found.") for a target that is
# missing or not the caller's (production.md §2.3: a run transformation of an unknown run).
RELATED_NOT_FOUND = frozenset({("run-transformation", "source_run")})

# URIs inside object fields: (resource, field) → {member: kind, or None when the URI names its kind}; for a field
# holding an array, each object in it. orders.md §0 (line item materials), §1.11–1.12 (comment mentions and action
# assignee), production.md (workflow specimens `{uri, quantity}`).
MEMBER_REFERENCES = {
    ("line-item", "materials"): {"base": "material", "support": "material"},
    ("comment", "comment_action"): {"assignee_user": "users"},
    ("comment", "mentioned_users"): {"uri": "users"},
    ("workflow", "specimens"): {"uri": None},
}


def check_references(spec, fields, scope, store):
    """URI references of a resource's (or a per-uuid action's) payload."""
    owner = spec.name if isinstance(spec, catalogue.Resource) else None
    for name, value in fields.items():
        field = spec.fields.get(name)
        if field is None or value is None:
            continue
        if field.type == "uri" or (field.type == "array" and field.items == "uri"):
            for path in _each(value):
                try:
                    _check(store, scope, name, path, field.ref)
                except InvalidPayload:
                    if (owner, name) in REFERENCE_NOT_FOUND and field.ref:
                        raise NotFound(catalogue.resource(field.ref).not_found) from None
                    if (owner, name) in RELATED_NOT_FOUND:
                        raise NotFound(spec.not_found) from None
                    raise
        if (owner, name) in URI_OR_WILDCARD and value != URI_OR_WILDCARD[(owner, name)]:
            path = _path(value)
            if path is None:
                raise InvalidPayload(f"'{name}' must be {URI_OR_WILDCARD[(owner, name)]!r} or a resource URI.",
                                     field=name)
            _check(store, scope, name, path, None)
        if (owner, name) in FIXED_UUIDS:
            _check_uuids(store, scope, name, FIXED_UUIDS[(owner, name)], value)
        for member, kind in MEMBER_REFERENCES.get((owner, name), {}).items():
            for item in _each(value):
                path = _path(item.get(member)) if isinstance(item, dict) else None
                if path is not None:
                    _check(store, scope, name, path, kind, f"{name}.{member}")


def check_related(spec, fields, scope, store, current=None):
    """Bare uuids named by a kind field (TYPED_UUIDS). On a change (`current`: the resource's stored document), the
    half of a pair the payload leaves out is the stored one."""
    for kind_field, uuid_field in TYPED_UUIDS:
        if kind_field not in spec.fields or uuid_field not in spec.fields:
            continue
        if kind_field not in fields and uuid_field not in fields:
            continue
        merged = {**(current or {}), **fields}
        kind, related = merged.get(kind_field), merged.get(uuid_field)
        target = resource_for_table(kind) if isinstance(kind, str) else None
        if target is None or not related:
            continue
        try:
            _check_uuids(store, scope, uuid_field, target, related, kind)
        except InvalidPayload:
            if spec.name in MISSING_IS_NOT_FOUND:
                raise NotFound(spec.not_found) from None
            raise


def _check_uuids(store, scope, field, resource, value, label=None):
    """Each uuid of `value` names a `resource` the caller can see."""
    for item in _each(value):
        named = _related_path(resource, item)
        if named is None or store.document(named, scope) is None:
            raise InvalidPayload(f"'{field}' names no {label or resource} of yours: {item}", field=field)


def resource_for_table(table):
    """The stored resource a table name (`line_item`, `prep_task_record`) or resource name names, or None."""
    for name in (table.replace("_", "-"), table):
        target = catalogue.catalogue().get(name)
        if target is not None:
            return target.name if _stored(target.name) else None
    return None


def _check(store, scope, field, path, kind, label=None):
    named = uris.parse_uri(path)[0]
    kind = kind or named
    if _stored(kind) and (named != kind or store.document(path, scope) is None):
        raise InvalidPayload(f"'{label or field}' does not point at an existing {kind}: {path}", field=field)


def _stored(kind):
    target = catalogue.catalogue().get(kind)
    return target is not None and not target.special and target.service != "gateway"


def _each(value):
    return value if isinstance(value, list) else [value]


def _path(value):
    """A resource URI in any accepted form → its path; None for what is no URI (the owning service answers that)."""
    try:
        return uris.normalise(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _related_path(resource, value):
    try:
        return uris.resource_path(resource, UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None
