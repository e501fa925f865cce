"""Helpers for read-side views derived from documents: read a document, write a derived one. `batch` is the
gateway.batch.Batch being applied: reads see its changes, writes reach the database when it is flushed."""
from gateway.batch import Entry


def upsert_view(batch, path, resource, bureau, doc, at):
    """Create or refresh (and revive) one derived document."""
    existing = batch.entry(path)
    if existing is None:
        batch.put(path, Entry(resource, bureau, dict(doc, created=at), False))
    else:
        batch.put(path, Entry(existing.resource, existing.bureau, dict(existing.doc, **doc), False))


def merge_view(batch, path, changes):
    """Change some fields of an existing derived document (nothing when it does not exist)."""
    existing = batch.entry(path)
    if existing is not None:
        batch.put(path, Entry(existing.resource, existing.bureau, dict(existing.doc, **changes), existing.deleted))


def delete_view(batch, path):
    existing = batch.entry(path)
    if existing is not None:
        batch.put(path, Entry(existing.resource, existing.bureau, existing.doc, True))


def document(batch, path):
    """The current document at `path` ({} when there is none)."""
    return batch.document(path)


def pointing_at(batch, resource, field, path):
    """(path, bureau) of the live `resource` documents whose `field` is `path` (`a.b`: key b of object field a)."""
    return batch.pointing_at(resource, field, path)
