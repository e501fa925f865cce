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


# files.md §2.4: a document attaches to resources the caller may see; `related_uuid` holds bare uuids whose kind is
# `related_table_name` (line_item → /line-item/), so they are checked like URI references.
_ATTACHING = ("document", "document-linking")


def check_related(spec, fields, bureau, store):
    table = fields.get("related_table_name")
    if spec.name not in _ATTACHING or not table or not fields.get("related_uuid"):
        return
    target = catalogue.catalogue().get(table.replace("_", "-"))
    if target is None or target.special or target.service == "gateway":
        return  # a table the read side does not hold (none today among the documented ones that are stored)
    related = fields["related_uuid"]
    for value in related if isinstance(related, list) else [related]:
        if store.document(f"/{target.name}/{value}/", bureau) is None:
            raise InvalidPayload(f"'related_uuid' names no {table} of yours: {value}", field="related_uuid")


def _checkable(field):
    if not field.ref or not (field.type == "uri" or (field.type == "array" and field.items == "uri")):
        return False
    target = catalogue.catalogue().get(field.ref)
    # Only resources the read side holds documents for can be checked (not sessions, not projections).
    return target is not None and not target.special and target.service != "gateway"
