"""URI fields must point at an existing resource of the right kind that the caller can see (its bureau's)."""
from shared import catalogue
from shared.errors import InvalidPayload


def check_references(spec, fields, bureau, store):
    for name, value in fields.items():
        field = spec.fields.get(name)
        if field is None or value is None or not _checkable(field):
            continue
        for path in value if isinstance(value, list) else [value]:
            if store.document(path, bureau) is None:
                raise InvalidPayload(f"'{name}' does not point at an existing {field.ref}: {path}", field=name)


def _checkable(field):
    if not field.ref or not (field.type == "uri" or (field.type == "array" and field.items == "uri")):
        return False
    target = catalogue.catalogue().get(field.ref)
    # Only resources the read side holds documents for can be checked (not sessions, not projections).
    return target is not None and not target.special and target.service != "gateway"
