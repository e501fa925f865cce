"""The genealogy projection (materials.md §10: "a graph store (adjacency tables)"): what /material-genealogy/ walks,
kept in the materials service's own database beside its events (SQLite file or PostgreSQL schema).

Table `genealogy_nodes`, one row per batch, H1 edge (material-batch-linking), batch action and container: its stored
path, its kind, (JSON) the fields the walk reads (KEPT), and the position of its last change. The fields: a batch's
edges in and out in the order its actions wrote them, its compact fields and runs; an edge's action, its two ends,
its quantity and containers; an action's type, metadata and quantity; a container's lot. That is the adjacency:
from a batch to its edges, from an edge to the batches at its ends. Table `genealogy_position`: the last
notification of the materials log applied to them.

Why stored: the walk itself is cheap (milliseconds over adjacency lists); replaying the events of every batch, edge
and action of an answer was not, and a projection held in memory had to be built from the whole log by every new
process. Here each event is applied once per store, and a start reads nothing.

A follower of the service's own log: gap-free (it reads the notifications after its recorded position; the stores
commit notifications in id order), idempotent and safe with several processes (a page's rows and the new position
are written in one transaction, which first locks the position row and checks that it still stands where the page
starts; a process that finds it moved writes nothing and reads on from there). It catches up before every answer
(one SELECT of the position and one of the log when nothing is new), so an action committed before the request is
in the answer, and on the service's timer between answers.

Each process keeps the rows its answers read (decoded once), and before each answer refreshes those that changed
since its last look (one SELECT on the index of the rows' positions): a warm answer reads no more of the database
than what changed, and a new process starts with nothing in memory and reads nothing until it is asked.

Filled once: the migrate step (runtime.migrate) creates the tables and applies the existing log, so a store written
by an earlier release is read in full once, there; one that skipped the migrate step (SQLite makes its own tables)
is filled by its first catch-up. Either way the position is kept, and later starts read only what is new.
"""
import json
import threading

from shared.topics import aggregate_of, registered
from shared.uris import resource_path

BATCH, LINK, ACTION, CONTAINER = ("material-batch", "material-batch-linking", "material-batch-action",
                                  "material-container")
# what the walk and the answer read of each resource (services.materials.genealogy)
KEPT = {
    BATCH: ("containers", "materials", "material_lots", "source_material_batches", "status", "powder_quality", "units",
            "initial_batch", "_runs", "_parent_links", "_child_links"),
    LINK: ("action", "source_batch", "destination_batch", "quantity", "containers"),
    ACTION: ("action_type", "metadata", "quantity"),
    CONTAINER: ("material_lot",),
}
NODES, POSITION = "genealogy_nodes", "genealogy_position"
PAGE = 5_000  # notifications applied per transaction
CHUNK = 500  # paths per SELECT … IN (…)


class GenealogyProjection:
    def __init__(self, app):
        self.app = app
        datastore = app.recorder.datastore
        self.datastore = datastore
        self.postgres = type(datastore).__module__ == "eventsourcing.postgres"
        schema = f'"{datastore.schema}".' if self.postgres else ""
        self.nodes, self.position_table = schema + NODES, schema + POSITION
        self.mark = "%s" if self.postgres else "?"
        self.lock = threading.Lock()  # one catch-up at a time in a process (across processes: the position row)
        self.topics = {}  # stored topic → the resource it is of (one of KEPT), or None
        self.ready = self.postgres and not app.factory.env_create_table()  # PostgreSQL: the migrate step made them
        self.cache = {}  # path → Node, as the rows stood at `cached_at` or later
        self.cached_at = 0

    # -- schema (the migrate step; SQLite and tests make their own on first use) -------------------------------------

    def create_tables(self):
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.nodes} (path TEXT PRIMARY KEY, kind TEXT NOT NULL, "
                           "fields TEXT NOT NULL, changed BIGINT NOT NULL)")
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {NODES}_changed ON {self.nodes} (changed)")
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.position_table} (name TEXT PRIMARY KEY, "
                           "position BIGINT NOT NULL)")
            cursor.execute(f"INSERT INTO {self.position_table} (name, position) VALUES ({self.mark}, 0) "
                           "ON CONFLICT (name) DO NOTHING", (NODES,))
        self.ready = True

    def _ensure_tables(self):
        if not self.ready:
            self.create_tables()

    # -- following the materials log ----------------------------------------------------------------------------------

    def position(self):
        self._ensure_tables()
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT position FROM {self.position_table} WHERE name = {self.mark}", (NODES,))
            return int(cursor.fetchone()["position"])

    def catch_up(self):
        """Apply every notification after the recorded position; returns how many notifications were read."""
        read = 0
        with self.lock:
            position = self.position()
            while True:
                notifications = self.app.recorder.select_notifications(start=position + 1, limit=PAGE)
                if not notifications:
                    return read
                read += len(notifications)
                reached = self._apply_page(position, notifications)
                if reached == notifications[-1].id and len(notifications) < PAGE:
                    return read
                position = reached  # a full page, or another process's position: read on from there

    def _apply_page(self, start, notifications):
        """The page's changes and its last position, in one transaction, if the position still stands at `start`;
        returns the position now recorded."""
        events = []
        for notification in notifications:
            resource = self._resource_of(notification.topic)
            if resource is not None:
                events.append((resource, self.app.mapper.to_domain_event(notification)))
        m = self.mark
        with self.datastore.transaction(commit=True) as cursor:
            # the write takes the row's lock (PostgreSQL) or the database's (SQLite) before the position is read
            cursor.execute(f"UPDATE {self.position_table} SET position = position WHERE name = {m}", (NODES,))
            cursor.execute(f"SELECT position FROM {self.position_table} WHERE name = {m}", (NODES,))
            recorded = int(cursor.fetchone()["position"])
            if recorded != start:  # another process applied this page (or more): go on from there
                return recorded
            paths = {resource_path(resource, event.originator_id) for resource, event in events}
            rows = {path: fields for path, _, fields in self._select(cursor, paths)}
            changed = {}
            for resource, event in events:
                path = resource_path(resource, event.originator_id)
                if _apply(rows, path, resource, event):
                    changed[path] = resource
            last = notifications[-1].id
            if changed:
                cursor.executemany(
                    f"INSERT INTO {self.nodes} (path, kind, fields, changed) VALUES ({m}, {m}, {m}, {m}) "
                    "ON CONFLICT (path) DO UPDATE SET fields = excluded.fields, changed = excluded.changed",
                    [(path, kind, json.dumps(rows[path]), last) for path, kind in changed.items()])
            cursor.execute(f"UPDATE {self.position_table} SET position = {m} WHERE name = {m}", (last, NODES))
        return last

    def _resource_of(self, topic):
        """By the event class the topic names (stable topics and older releases' aliases alike)."""
        if topic not in self.topics:
            aggregate = aggregate_of(registered(topic))
            resource = getattr(aggregate, "resource", None)
            self.topics[topic] = resource if resource in KEPT else None
        return self.topics[topic]

    # -- reading -------------------------------------------------------------------------------------------------------

    def _select(self, cursor, paths):
        """(path, kind, fields) of the rows at these paths."""
        paths = sorted(paths)
        found = []
        for begin in range(0, len(paths), CHUNK):
            chunk = paths[begin:begin + CHUNK]
            cursor.execute(f"SELECT path, kind, fields FROM {self.nodes} WHERE path IN "
                           f"({', '.join([self.mark] * len(chunk))})", chunk)
            found += [(row["path"], row["kind"], json.loads(row["fields"])) for row in cursor.fetchall()]
        return found

    def rows(self, paths):
        with self.datastore.transaction(commit=False) as cursor:
            return self._select(cursor, paths)

    def nodes_at(self, paths):
        """path → Node (or None: no row) for these paths, from the process's rows where it has them."""
        found = {p: self.cache[p] for p in paths if p in self.cache}
        missing = [p for p in paths if p not in found]
        if missing:
            looked_at = self.cached_at
            fetched = {path: Node(path, fields) for path, _, fields in self.rows(missing)}
            if looked_at == self.cached_at:  # not across a refresh, which may have read newer rows meanwhile
                self.cache.update(fetched)
            found.update(fetched)
        return found

    def _refresh(self):
        """The process's rows brought up to the recorded position: those changed since the last look, re-read."""
        m = self.mark
        with self.lock, self.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT position FROM {self.position_table} WHERE name = {m}", (NODES,))
            position = int(cursor.fetchone()["position"])
            if self.cache and position != self.cached_at:
                cursor.execute(f"SELECT path, fields FROM {self.nodes} WHERE changed > {m}", (self.cached_at,))
                for row in cursor.fetchall():
                    if row["path"] in self.cache:
                        self.cache[row["path"]] = Node(row["path"], json.loads(row["fields"]))
            self.cached_at = position

    def reader(self):
        """A reader for services.materials.genealogy's walk over the projection, caught up first."""
        self.catch_up()
        self._refresh()
        return ProjectedReader(self)


def _apply(rows, path, resource, event):
    """One event on the rows in hand (path → kept fields); whether it changed them. A creation is kept once (a row
    that exists already stays as it is); a change updates the kept fields of a row that exists."""
    fields = getattr(event, "fields", None)
    if fields is not None and path not in rows:  # created
        rows[path] = {k: fields.get(k) for k in KEPT[resource]}
        return True
    changes = getattr(event, "changes", None)
    kept = {k: v for k, v in (changes or {}).items() if k in KEPT[resource]}
    if path in rows and kept:
        rows[path].update(kept)
        return True
    return False


class ProjectedReader:
    """services.materials.genealogy.Reader's interface over the projection's rows: a level of the walk's paths in
    one SELECT (per 500), each row read once per answer."""

    def __init__(self, projection):
        self.projection = projection
        self.loaded = {}

    def find(self, path):
        if not path:
            return None
        if path not in self.loaded:
            self.prefetch([path])
        return self.loaded[path]

    def prefetch(self, paths):
        wanted = {p for p in paths if p and p not in self.loaded}
        if not wanted:
            return
        found = self.projection.nodes_at(wanted)
        for path in wanted:
            self.loaded[path] = found.get(path)


class Node:
    """A row as the walk reads an aggregate: `id` (the uuid of its path, as text: the walk only writes it back into
    a path) and `fields`."""

    __slots__ = ("id", "fields")

    def __init__(self, path, fields):
        self.id = path.rstrip("/").rpartition("/")[2]
        self.fields = fields


def projection_of(app):
    """The genealogy projection of this application (one object per application; the rows are the store's)."""
    found = app.__dict__.get("_stratum_genealogy_projection")
    if found is None:
        found = app.__dict__.setdefault("_stratum_genealogy_projection", GenealogyProjection(app))
    return found


def fill(app):
    """Migrate step: create the tables and apply the log up to now (the whole log, the first time)."""
    projection = GenealogyProjection(app)
    projection.create_tables()
    return projection.catch_up()
