"""The genealogy projection (materials.md §10: "a graph store (adjacency tables)"): what /material-genealogy/ walks —
the H1 edges, each batch's edges in and out and its compact fields, the summaries of the actions that wrote edges,
the lot of each container — kept in the memory of the process that answers, built from the materials store's own
notifications and caught up before every answer.

Why: the walk itself is cheap (milliseconds over adjacency lists); what made a large answer slow was replaying the
events of every batch, edge and action it holds on each request (services.materials.genealogy.Reader). Here each
event is decoded once per process; an answer then reads dictionaries.

Current on every answer: `catch_up` reads the notifications after the last one applied (one SELECT when nothing is
new) before the walk, so an action committed before the request is in the answer (the stores commit notifications
in id order: a table lock on PostgreSQL, one writer on SQLite). Nothing is stored: a new process builds it from the
log at its first answer (or at start, `warm_up`), and a lost process loses nothing.
"""
import threading
from types import SimpleNamespace

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
PAGE = 5_000


class GenealogyProjection:
    def __init__(self):
        self.position = 0
        self.nodes = {}  # stored path → SimpleNamespace(id, fields)
        self.lock = threading.Lock()
        self.topics = {}  # stored topic → the resource it is of (one of KEPT), or None

    def catch_up(self, app):
        """Apply every notification after the last one applied."""
        with self.lock:
            while True:
                notifications = app.recorder.select_notifications(start=self.position + 1, limit=PAGE)
                for notification in notifications:
                    resource = self._resource_of(notification.topic)
                    if resource is not None:
                        self._apply(resource, app.mapper.to_domain_event(notification))
                    self.position = notification.id
                if len(notifications) < PAGE:
                    return

    def _apply(self, resource, event):
        path = resource_path(resource, event.originator_id)
        kept = KEPT[resource]
        fields = getattr(event, "fields", None)
        if fields is not None and path not in self.nodes:  # created
            self.nodes[path] = SimpleNamespace(id=event.originator_id, fields={k: _copy(fields.get(k)) for k in kept})
            return
        changes = getattr(event, "changes", None)
        node = self.nodes.get(path)
        if node is not None and changes:
            node.fields.update({k: _copy(v) for k, v in changes.items() if k in kept})

    def _resource_of(self, topic):
        """By the event class the topic names (stable topics and older releases' aliases alike)."""
        if topic not in self.topics:
            aggregate = aggregate_of(registered(topic))
            resource = getattr(aggregate, "resource", None)
            self.topics[topic] = resource if resource in KEPT else None
        return self.topics[topic]

    def reader(self, app):
        """A reader for services.materials.genealogy's walk, over this projection, current."""
        self.catch_up(app)
        return ProjectedReader(self.nodes)


class ProjectedReader:
    """services.materials.genealogy.Reader's interface over the projection: nothing to fetch."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.loaded = {}

    def find(self, path):
        if not path:
            return None
        return self.loaded.get(path) or self.nodes.get(path)

    def prefetch(self, paths):
        return None


def _copy(value):
    """The projection keeps its own lists (an event's are the aggregate's history)."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def projection_of(app):
    """The process's projection of this application (one per application object)."""
    found = app.__dict__.get("_stratum_genealogy_projection")
    if found is None:
        found = app.__dict__.setdefault("_stratum_genealogy_projection", GenealogyProjection())
    return found
