"""How a public event changes the read side. Pure functions over a gateway.batch.Batch (the documents of one feed
batch, in memory, written back in one transaction): the same code serves the live projector, the gateway's
read-your-writes catch-up, and a rebuild from zero."""
from sqlalchemy import select, update

from gateway import audit_changes, order_views, production_views, run_pool_views, schedule_views, task_views
from gateway.batch import Entry
from gateway.tables import credentials, dialect_insert
from gateway.viewstore import delete_view, url_uuid
from shared.access import CREDENTIALS_END_ON
from shared.uris import resource_path


def apply_event(batch, event):
    handler = _SPECIAL.get(event["resource"], _apply_document)
    handler(batch, event)
    if event["resource"] == "users" and CREDENTIALS_END_ON.intersection(event.get("names") or ()):
        _end_credentials_of(batch, event)


def writes_at_once(event):
    """Whether applying `event` writes the database itself rather than through the batch (the credential table):
    a pipelined load (gateway.readstore) applies such a batch in its own transaction, not on the read connection."""
    return event["resource"] in _SPECIAL or (
        event["resource"] == "users" and bool(CREDENTIALS_END_ON.intersection(event.get("names") or ())))


def prefetch(batch, events):
    """Read what applying `events` will read, in a few statements for the whole batch: the documents they change,
    the views derived from them, the documents these name (three rounds deep), and the documents that point at them
    (what the views' pointing_at asks). Whatever this misses is read when asked: it only costs time."""
    own = [resource_path(e["resource"], e["uuid"]) for e in events]
    paths = set(own)
    for event, path in zip(events, own):
        paths.update(target for view in DERIVED_PATHS.get(event["resource"], ()) for target in view(path))
        paths.update(_named(event.get("fields")))
    batch.load(paths)
    frontier = paths
    for _ in range(2):
        named = set()
        for path in frontier:
            entry = batch.docs.get(path)
            if entry is not None:
                named.update(_named(entry.doc))
        named.difference_update(batch.docs)
        if not named:
            break
        batch.load(named)
        frontier = named
    wanted = {}
    for event, path in zip(events, own):
        doc = dict(batch.document(path), **(event.get("fields") or {}))
        for lookups in POINTED.get(event["resource"], ()):
            for resource, field, value in lookups(path, doc):
                wanted.setdefault((resource, field), set()).add(value)
    for (resource, field), values in wanted.items():
        batch.prefetch_pointing(resource, field, values)


def _named(fields):
    """The resource paths a document or an event's fields name (top level, in lists, and one object deep)."""
    found = set()
    if not isinstance(fields, dict):
        return found
    for value in fields.values():
        if isinstance(value, dict):
            values = value.values()
        elif isinstance(value, list):
            values = value
        else:
            values = (value,)
        for item in values:
            if isinstance(item, str) and item.startswith("/") and item.endswith("/"):
                found.add(item)
    return found


def _apply_document(batch, event):
    path = resource_path(event["resource"], event["uuid"])
    row = batch.entry(path)
    kind, at = event["kind"], event["timestamp"]
    if kind == "created":
        if row is not None:
            return
        doc = dict(event["fields"], created=at, updated=at)
        batch.put(path, Entry(event["resource"], event["bureau"], doc, False))
        changes = [(key, None, value) for key, value in event["fields"].items() if value not in (None, [], {})]
        _audit(batch, event, path, event["bureau"], changes)
        _derive(batch, event, path, event["bureau"], None, doc)
    elif row is None:
        return  # an update of something never created here cannot happen in one ordered log; ignore defensively
    elif kind == "updated":
        doc = dict(row.doc)
        changes = [(key, doc.get(key), value) for key, value in event["fields"].items()]
        doc.update(event["fields"])
        doc["updated"] = at
        batch.put(path, Entry(row.resource, row.bureau, doc, row.deleted))
        _audit(batch, event, path, row.bureau, changes)
        _derive(batch, event, path, row.bureau, row.doc, doc)
    elif kind == "deleted":
        delete_view(batch, path)
        _audit(batch, event, path, row.bureau, [("deleted", False, True)])
        _derive(batch, event, path, row.bureau, row.doc, None)


def _derive(batch, event, path, bureau, before, after):
    """Views derived from a resource's document (before → after; None when absent)."""
    for view in DERIVED.get(event["resource"], ()):
        view(batch, event, path, bureau, before, after)


def _merged(*registries):
    merged = {}
    for registry in registries:
        for resource, views in registry.items():
            merged[resource] = merged.get(resource, ()) + tuple(views)
    return merged


DERIVED = _merged(order_views.VIEWS, task_views.VIEWS, production_views.VIEWS, schedule_views.VIEWS,
                  run_pool_views.VIEWS)
DERIVED_PATHS = _merged(order_views.DERIVED_PATHS, task_views.DERIVED_PATHS, production_views.DERIVED_PATHS,
                        schedule_views.DERIVED_PATHS, run_pool_views.DERIVED_PATHS)
POINTED = _merged(order_views.POINTED, task_views.POINTED, production_views.POINTED, run_pool_views.POINTED)


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


def _audit(batch, event, reference, bureau, changes, about=None):
    """One audit row for the change of `reference` by `event`, holding every field it changed; each field is an
    /event/ item whose uuid is derived from (log, position, field), and from the reference too when one event changes
    resources other than its own (`about`), as every release has derived it."""
    changes = _audited(changes)
    if not changes:
        return
    seed = f"stratum:audit:{event['application']}:{event['position']}:" + (f"{about}:" if about else "")
    batch.audit(
        {"application": event["application"], "position": event["position"], "bureau": bureau,
         "reference": reference, "user": event.get("user"), "created": event["timestamp"],
         "changes": [audit_changes.entry(key, previous, current) for key, previous, current in changes]},
        [audit_uuid(seed + key) for key, _, _ in changes])


audit_uuid = url_uuid  # an audit row's /event/ uuid: uuid5 of (log, position, field), as every release derives it


def _apply_credential(kind):
    """Sessions and API tokens feed the credential table; their secret hash never reaches a document or the audit
    log. A token is also a document (name, uuid, owner) so it can be listed and revoked."""
    def apply(batch, event):
        conn = batch.conn  # credentials are written at once: nothing else in a batch reads them
        if event["kind"] == "created":
            fields = event["fields"]
            conn.execute(dialect_insert(conn)(credentials).values(
                uuid=event["uuid"], kind=kind, secret_hash=fields["secret_hash"],
                user=fields.get("user") or event.get("user"), bureau=event["bureau"],
                platform_admin=bool(fields.get("platform_admin")), expires=fields.get("expires"), ended=False)
                .on_conflict_do_nothing())
        elif event["kind"] == "deleted":
            conn.execute(update(credentials).where(credentials.c.uuid == event["uuid"]).values(ended=True))
        if kind == "token":
            public = dict(event, fields={k: v for k, v in event["fields"].items()
                                         if k not in ("secret_hash", "platform_admin")})
            _apply_document(batch, public)
    return apply


def _end_credentials_of(batch, event):
    """The user's sessions and API tokens end (shared.access.CREDENTIALS_END_ON); each token's document goes as a
    revocation would, with its audit row, so its owner's list shows only tokens that work."""
    conn = batch.conn
    user = resource_path("users", event["uuid"])
    live = conn.execute(select(credentials.c.uuid, credentials.c.kind)
                        .where(credentials.c.user == user, credentials.c.ended.is_(False))).all()
    if not live:
        return
    conn.execute(update(credentials).where(credentials.c.uuid.in_([row.uuid for row in live])).values(ended=True))
    for path in (resource_path("api_tokens", row.uuid) for row in live if row.kind == "token"):
        token = batch.entry(path)
        if token is not None and not token.deleted:
            delete_view(batch, path)
            _audit(batch, event, path, token.bureau, [("deleted", False, True)], about=path)


_SPECIAL = {"sessions": _apply_credential("session"), "api_tokens": _apply_credential("token")}
