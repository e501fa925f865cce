"""How a public event changes the read side. Pure functions over an open transaction: the same code serves the live
projector, the gateway's read-your-writes catch-up, and a rebuild from zero."""
from uuid import NAMESPACE_URL, uuid5

from sqlalchemy import insert, select, update

from gateway.tables import audit_events, auth_sessions, documents
from shared.uris import resource_path


def apply_event(conn, event):
    handler = _SPECIAL.get(event["resource"], _apply_document)
    handler(conn, event)


def _apply_document(conn, event):
    path = resource_path(event["resource"], event["uuid"])
    row = conn.execute(select(documents.c.doc, documents.c.bureau).where(documents.c.path == path)).first()
    kind, at = event["kind"], event["timestamp"]
    if kind == "created":
        if row is not None:
            return
        doc = dict(event["fields"], created=at, updated=at)
        conn.execute(insert(documents).values(
            path=path, resource=event["resource"], bureau=event["bureau"], doc=doc, deleted=False))
        changes = [(key, None, value) for key, value in event["fields"].items() if value not in (None, [], {})]
        _audit(conn, event, path, event["bureau"], changes)
    elif row is None:
        return  # an update of something never created here cannot happen in one ordered log; ignore defensively
    elif kind == "updated":
        doc = dict(row.doc)
        changes = [(key, doc.get(key), value) for key, value in event["fields"].items()]
        doc.update(event["fields"])
        doc["updated"] = at
        conn.execute(update(documents).where(documents.c.path == path).values(doc=doc))
        _audit(conn, event, path, row.bureau, changes)
    elif kind == "deleted":
        conn.execute(update(documents).where(documents.c.path == path).values(deleted=True))
        _audit(conn, event, path, row.bureau, [("deleted", False, True)])


def _audit(conn, event, reference, bureau, changes):
    """One audit row per changed field; its uuid is derived from (log, position, field), so it is written once."""
    rows = [
        {
            "uuid": str(uuid5(NAMESPACE_URL, f"stratum:audit:{event['application']}:{event['position']}:{key}")),
            "application": event["application"],
            "position": event["position"],
            "bureau": bureau,
            "reference": reference,
            "key": key,
            "previous_value": previous,
            "current_value": current,
            "user": event.get("user"),
            "created": event["timestamp"],
        }
        for key, previous, current in changes
    ]
    if rows:
        conn.execute(insert(audit_events), rows)


def _apply_session(conn, event):
    """Sessions feed the authentication table only: their secret hash must never reach documents or the audit log."""
    if event["kind"] == "created":
        fields = event["fields"]
        exists = conn.execute(select(auth_sessions.c.uuid).where(auth_sessions.c.uuid == event["uuid"])).first()
        if exists is None:
            conn.execute(insert(auth_sessions).values(
                uuid=event["uuid"], secret_hash=fields["secret_hash"], user=fields["user"],
                bureau=event["bureau"], expires=fields["expires"], ended=False))
    elif event["kind"] == "deleted":
        conn.execute(update(auth_sessions).where(auth_sessions.c.uuid == event["uuid"]).values(ended=True))


_SPECIAL = {"sessions": _apply_session}
