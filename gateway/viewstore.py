"""Helpers for read-side views derived from documents: read a document, write a derived one. `batch` is the
gateway.batch.Batch being applied: reads see its changes, writes reach the database when it is flushed."""
import hashlib
from uuid import NAMESPACE_URL

from gateway.batch import Entry


def url_uuid(name):
    """str(uuid5(NAMESPACE_URL, name)) without UUID objects (a rebuild derives millions: audit rows, view paths): the
    SHA-1 of the namespace is taken once and copied, the digest's hex printed with version 5 and the RFC 4122 variant
    set (about 1.7x the speed of the integer arithmetic it replaces, 6x uuid5's, measured over 20,000 names)."""
    digest = _namespace_sha1.copy()
    digest.update(name.encode())
    text = digest.hexdigest()
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:32]}"


_namespace_sha1 = hashlib.sha1(NAMESPACE_URL.bytes)
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # the variant's two bits: 10


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
