"""How a public event changes the read side. Pure functions over an open transaction: the same code serves the live
projector, the gateway's read-your-writes catch-up, and a rebuild from zero."""
from uuid import NAMESPACE_URL, uuid5

from sqlalchemy import insert, select, update

from gateway import order_views, task_views
from gateway.tables import audit_events, credentials, documents
from shared.access import CREDENTIALS_END_ON
from shared.uris import resource_path


def apply_event(conn, event):
    handler = _SPECIAL.get(event["resource"], _apply_document)
    handler(conn, event)
    if event["resource"] == "users" and CREDENTIALS_END_ON.intersection(event.get("names") or ()):
        _end_credentials_of(conn, event)


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
        _derive(conn, event, path, event["bureau"], None, doc)
    elif row is None:
        return  # an update of something never created here cannot happen in one ordered log; ignore defensively
    elif kind == "updated":
        doc = dict(row.doc)
        changes = [(key, doc.get(key), value) for key, value in event["fields"].items()]
        doc.update(event["fields"])
        doc["updated"] = at
        conn.execute(update(documents).where(documents.c.path == path).values(doc=doc))
        _audit(conn, event, path, row.bureau, changes)
        _derive(conn, event, path, row.bureau, row.doc, doc)
    elif kind == "deleted":
        conn.execute(update(documents).where(documents.c.path == path).values(deleted=True))
        _audit(conn, event, path, row.bureau, [("deleted", False, True)])
        _derive(conn, event, path, row.bureau, row.doc, None)


def _derive(conn, event, path, bureau, before, after):
    """Views derived from a resource's document (before → after; None when absent)."""
    for view in DERIVED.get(event["resource"], ()):
        view(conn, event, path, bureau, before, after)


def _merged(*registries):
    merged = {}
    for registry in registries:
        for resource, views in registry.items():
            merged[resource] = merged.get(resource, ()) + tuple(views)
    return merged


DERIVED = _merged(order_views.VIEWS, task_views.VIEWS)


def _audited(changes):
    """What the audit log shows of a change: API fields as they are; of the internal `_` fields, only which bytes a
    file holds (`content_sha256`, for traceability), none of the bookkeeping."""
    shown = []
    for key, previous, current in changes:
        if key == "_content":
            shown.append(("content_sha256", (previous or {}).get("sha256"), (current or {}).get("sha256")))
        elif not key.startswith("_"):
            shown.append((key, previous, current))
    return shown


def _audit(conn, event, reference, bureau, changes, about=None):
    """One audit row per changed field; its uuid is derived from (log, position, field), so it is written once (and
    from the reference too when one event changes resources other than its own, `about`)."""
    changes = _audited(changes)
    seed = f"stratum:audit:{event['application']}:{event['position']}:" + (f"{about}:" if about else "")
    rows = [
        {
            "uuid": str(uuid5(NAMESPACE_URL, seed + key)),
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


def _apply_credential(kind):
    """Sessions and API tokens feed the credential table; their secret hash never reaches a document or the audit
    log. A token is also a document (name, uuid, owner) so it can be listed and revoked."""
    def apply(conn, event):
        if event["kind"] == "created":
            fields = event["fields"]
            exists = conn.execute(select(credentials.c.uuid).where(credentials.c.uuid == event["uuid"])).first()
            if exists is None:
                conn.execute(insert(credentials).values(
                    uuid=event["uuid"], kind=kind, secret_hash=fields["secret_hash"],
                    user=fields.get("user") or event.get("user"), bureau=event["bureau"],
                    platform_admin=bool(fields.get("platform_admin")), expires=fields.get("expires"), ended=False))
        elif event["kind"] == "deleted":
            conn.execute(update(credentials).where(credentials.c.uuid == event["uuid"]).values(ended=True))
        if kind == "token":
            public = dict(event, fields={k: v for k, v in event["fields"].items()
                                         if k not in ("secret_hash", "platform_admin")})
            _apply_document(conn, public)
    return apply


def _end_credentials_of(conn, event):
    """The user's sessions and API tokens end (shared.access.CREDENTIALS_END_ON); each token's document goes as a
    revocation would, with its audit row, so its owner's list shows only tokens that work."""
    user = resource_path("users", event["uuid"])
    live = conn.execute(select(credentials.c.uuid, credentials.c.kind)
                        .where(credentials.c.user == user, credentials.c.ended.is_(False))).all()
    if not live:
        return
    conn.execute(update(credentials).where(credentials.c.uuid.in_([row.uuid for row in live])).values(ended=True))
    for path in (resource_path("api_tokens", row.uuid) for row in live if row.kind == "token"):
        token = conn.execute(select(documents.c.bureau).where(documents.c.path == path,
                                                              documents.c.deleted.is_(False))).first()
        if token is not None:
            conn.execute(update(documents).where(documents.c.path == path).values(deleted=True))
            _audit(conn, event, path, token.bureau, [("deleted", False, True)], about=path)


_SPECIAL = {"sessions": _apply_credential("session"), "api_tokens": _apply_credential("token")}
