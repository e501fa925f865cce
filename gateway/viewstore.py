"""Helpers for read-side views derived from documents: read a document, write a derived one."""
from sqlalchemy import insert, select, update

from gateway.tables import documents


def upsert_view(conn, path, resource, bureau, doc, at):
    """Create or refresh (and revive) one derived document."""
    existing = conn.execute(select(documents.c.doc).where(documents.c.path == path)).first()
    if existing is None:
        conn.execute(insert(documents).values(path=path, resource=resource, bureau=bureau, deleted=False,
                                              doc=dict(doc, created=at)))
    else:
        conn.execute(update(documents).where(documents.c.path == path)
                     .values(doc=dict(existing.doc, **doc), deleted=False))


def merge_view(conn, path, changes):
    """Change some fields of an existing derived document (nothing when it does not exist)."""
    existing = conn.execute(select(documents.c.doc).where(documents.c.path == path)).first()
    if existing is not None:
        conn.execute(update(documents).where(documents.c.path == path).values(doc=dict(existing.doc, **changes)))


def delete_view(conn, path):
    conn.execute(update(documents).where(documents.c.path == path).values(deleted=True))


def document(conn, path):
    """The current document at `path` ({} when there is none)."""
    if not path:
        return {}
    row = conn.execute(select(documents.c.doc).where(documents.c.path == path)).first()
    return row.doc if row else {}


def pointing_at(conn, resource, field, path):
    """(path, bureau) of the live `resource` documents whose `field` is `path` (`a.b`: key b of object field a)."""
    element = documents.c.doc[tuple(field.split("."))] if "." in field else documents.c.doc[field]
    return conn.execute(select(documents.c.path, documents.c.bureau).where(
        documents.c.resource == resource, documents.c.deleted.is_(False),
        element.as_string() == path)).all()
