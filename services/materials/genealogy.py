"""Genealogy on read (materials.md §3.12, §5): the trees around one batch, built when asked from the edges the batch
actions wrote, never stored.

The write side keeps only facts: each H1 edge (MaterialBatchLinking: action, source_batch, destination_batch,
quantity, containers; a root edge has no source batch and lists the lot's containers) and, on each batch, the paths
of its edges in (`_parent_links`) and out (`_child_links`). Asked for the genealogy of batch X, this walks those
edges: `_parent_links` upward to the initial batches and their lots (`parents_tree`), `_child_links` downward to
every derived batch (`children_tree`). A visited set expands each batch once (top-offs and blends revisit batches),
so the answer is as large as the edges reachable from X. The aggregates it holds are read a level of the trees at a
time (one SELECT for a level's edges, one for the batches at their other ends, one for the actions at the end).

Before issue 14's rework the trees were rebuilt for every ancestor and descendant on each write and stored as
`/material-genealogy/` resources; those stored documents (events of older releases) still load, and are not read.
"""
import json
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier

from shared import catalogue
from shared.errors import NotFound
from shared.uris import resource_path

LINK_FIELDS = ("action", "source_batch", "destination_batch", "quantity", "containers")
COMPACT_FIELDS = ("containers", "materials", "material_lots", "source_material_batches", "status", "powder_quality",
                  "units", "initial_batch")
ACTION_FIELDS = ("action_type", "metadata", "quantity")


class Reader:
    """Aggregates by stored path, each loaded once per answer. Read only: nothing is changed or saved. The walk asks
    for a whole level of the trees at a time (`prefetch`): their stored events come in one SELECT per level
    (`stored_events_of`), not one per aggregate, so an answer holding thousands of batches, edges and actions costs
    a few hundred statements."""

    def __init__(self, app):
        self.app = app
        self.loaded = {}

    def find(self, path):
        if not path:
            return None
        if path not in self.loaded:
            self.prefetch([path])
        return self.loaded[path]

    def prefetch(self, paths):
        wanted, asked = {}, set()
        for path in paths:
            if path and path not in self.loaded and path not in asked:
                asked.add(path)
                try:  # a stored path is /<resource>/<uuid>/ (the edges and batches hold only paths actions wrote)
                    wanted[UUID(path.rstrip("/").rpartition("/")[2])] = path
                except ValueError:
                    self.loaded[path] = None
        if not wanted:
            return
        events = {}
        for stored in stored_events_of(self.app.recorder, list(wanted)):
            events.setdefault(stored.originator_id, []).append(self.app.mapper.to_domain_event(stored))
        for aggregate_id, path in wanted.items():
            aggregate = None
            for event in events.get(aggregate_id, ()):  # eventsourcing's project_aggregate, without its per-event
                aggregate = event.mutate(aggregate)  # runtime Protocol check (half the time of a large answer)
            self.loaded[path] = aggregate


def stored_events_of(recorder, ids):
    """The stored events of many aggregates, each one's in version order: one SELECT (per 500 ids) on PostgreSQL and
    SQLite, the recorder's own per-aggregate select on any other store."""
    found = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        if isinstance(recorder, PostgresAggregateRecorder):
            datastore = recorder.datastore
            statement = SQL("SELECT * FROM {schema}.{table} WHERE originator_id = ANY(%s) "
                            "ORDER BY originator_id, originator_version").format(
                schema=Identifier(datastore.schema), table=Identifier(recorder.events_table_name))
            keys = chunk if datastore.originator_id_type == "uuid" else [str(i) for i in chunk]
            with datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(statement, [keys])
                found += [StoredEvent(originator_id=_uuid(row["originator_id"]),
                                      originator_version=row["originator_version"], topic=row["topic"],
                                      state=bytes(row["state"])) for row in curs.fetchall()]
        elif isinstance(recorder, SQLiteAggregateRecorder):
            statement = (f"SELECT * FROM {recorder.events_table_name} WHERE originator_id IN "
                         f"({','.join('?' * len(chunk))}) ORDER BY originator_id, originator_version")
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, [i.hex for i in chunk])
                found += [StoredEvent(originator_id=_uuid(row["originator_id"]),
                                      originator_version=row["originator_version"], topic=row["topic"],
                                      state=row["state"]) for row in cursor.fetchall()]
        else:
            found += [e for i in chunk for e in recorder.select_events(i)]
    return found


def genealogy(app, batch_uuid, ctx, reader=None):
    """The /material-genealogy/ document of one batch, as the caller may see it (404 like the batch otherwise)."""
    batch = app.load("material-batch", batch_uuid, ctx)
    if reader is None:  # the stored projection, caught up (services.materials.genealogy_projection)
        from services.materials.genealogy_projection import projection_of
        reader = projection_of(app).reader()
    batch_path = resource_path("material-batch", batch.id)
    reader.loaded[batch_path] = batch
    actions, batches = {}, {batch_path: compact(batch)}
    walk = Walk(reader, actions, batches)
    document = {
        "target_batch": batch_path,
        "parents_tree": walk.tree(batch, "_parent_links", "source_batch", "parents"),
        "children_tree": walk.tree(batch, "_child_links", "destination_batch", "children"),
    }
    document["batches"] = [batches[k] for k in sorted(batches)]
    reader.prefetch(sorted(actions))
    document["actions"] = [action_summary(reader, a) for a in sorted(actions)]
    return json.loads(json.dumps(document))  # plain data: none of the (cached) aggregates' own lists


def genealogy_or_404(app, batch_uuid, ctx):
    try:
        UUID(str(batch_uuid))
    except ValueError:
        raise NotFound(catalogue.resource("material-genealogy").not_found) from None
    try:
        return genealogy(app, batch_uuid, ctx)
    except NotFound:
        raise NotFound(catalogue.resource("material-genealogy").not_found) from None


def _uuid(value):
    return value if isinstance(value, UUID) else UUID(str(value))


class Walk:
    """Nested edges from a batch, one direction, a level at a time (each level's edges, then the batches at their
    other ends, loaded together); each batch's own edges listed once (a batch reached again is a node without
    nested edges). Iterative: an ancestry thousands of edges deep must not hit the recursion limit."""

    def __init__(self, reader, actions, batches):
        self.reader = reader
        self.actions = actions
        self.batches = batches

    def tree(self, batch, links_key, end_key, nest_key):
        expanded = {resource_path("material-batch", batch.id)}
        top = []
        level = [(batch, top)]
        while level:
            self.reader.prefetch([p for current, _ in level for p in current.fields.get(links_key) or []])
            reached = []
            for current, nodes in level:
                for link_path in current.fields.get(links_key) or []:
                    link = self.reader.find(link_path)
                    if link is None:
                        continue
                    node = {"uri": link_path, **{k: link.fields.get(k) for k in LINK_FIELDS}, nest_key: []}
                    self.actions[link.fields["action"]] = True
                    nodes.append(node)
                    reached.append((node, link))
            ends = []
            for _, link in reached:  # the batches at the other ends, or a root edge's containers
                ends += [link.fields[end_key]] if link.fields.get(end_key) else link.fields.get("containers") or []
            self.reader.prefetch(ends)
            level = []
            for node, link in reached:
                other_path = link.fields.get(end_key)
                other = self.reader.find(other_path) if other_path else None
                if other is None:  # a root edge: the lot's containers
                    node["material_lots"] = sorted({c.fields.get("material_lot") for c in (
                        self.reader.find(p) for p in link.fields.get("containers") or [])
                        if c is not None and c.fields.get("material_lot")})
                    continue
                if other_path not in self.batches:  # reached again: the same compact fields
                    self.batches[other_path] = compact(other)
                if other_path not in expanded:
                    expanded.add(other_path)
                    level.append((other, node[nest_key]))
        return top


def compact(batch):
    """A batch as the genealogy lists it, with the runs that printed from it (materials.md §5 item 5: the forward
    query goes on from here to the runs' prints and pieces)."""
    return {"uri": resource_path("material-batch", batch.id), **{k: batch.fields.get(k) for k in COMPACT_FIELDS},
            "runs": list(batch.fields.get("_runs") or [])}


def action_summary(reader, action_path):
    action = reader.find(action_path)
    if action is None:
        return {"uri": action_path}
    return {"uri": action_path, **{k: action.fields.get(k) for k in ACTION_FIELDS}}
