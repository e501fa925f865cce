"""Genealogy on read (materials.md §3.12, §5): the trees around one batch, built when asked from the edges the batch
actions wrote, never stored.

The write side keeps only facts: each H1 edge (MaterialBatchLinking: action, source_batch, destination_batch,
quantity, containers; a root edge has no source batch and lists the lot's containers) and, on each batch, the paths
of its edges in (`_parent_links`) and out (`_child_links`). Asked for the genealogy of batch X, this walks those
edges: `_parent_links` upward to the initial batches and their lots (`parents_tree`), `_child_links` downward to
every derived batch (`children_tree`). A visited set expands each batch once (top-offs and blends revisit batches),
so the answer is as large as the edges reachable from X and costs one load per batch and edge it holds.

Before issue 14's rework the trees were rebuilt for every ancestor and descendant on each write and stored as
`/material-genealogy/` resources; those stored documents (events of older releases) still load, and are not read.
"""
import json
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from shared import catalogue
from shared.errors import NotFound
from shared.uris import resource_path

LINK_FIELDS = ("action", "source_batch", "destination_batch", "quantity", "containers")
COMPACT_FIELDS = ("containers", "materials", "material_lots", "source_material_batches", "status", "powder_quality",
                  "units", "initial_batch")
ACTION_FIELDS = ("action_type", "metadata", "quantity")


class Reader:
    """Aggregates by stored path, each loaded once per answer. Read only: nothing is changed or saved, so a cached
    aggregate is used as it is (not copied), and the answer is made of copies of its values (`genealogy`)."""

    def __init__(self, app):
        self.app = app
        self.loaded = {}

    def find(self, path):
        if not path:
            return None
        if path not in self.loaded:
            try:  # a stored path is /<resource>/<uuid>/ (the edges and batches hold only paths the actions wrote)
                self.loaded[path] = self.app.repository.get(UUID(path.rstrip("/").rpartition("/")[2]),
                                                            deepcopy_from_cache=False)
            except (AggregateNotFoundError, ValueError):
                self.loaded[path] = None
        return self.loaded[path]


def genealogy(app, batch_uuid, ctx, reader=None):
    """The /material-genealogy/ document of one batch, as the caller may see it (404 like the batch otherwise)."""
    batch = app.load("material-batch", batch_uuid, ctx)
    reader = reader or Reader(app)
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


class Walk:
    """Nested edges from a batch, one direction; each batch's own edges listed once (a batch reached again is a
    node without nested edges)."""

    def __init__(self, reader, actions, batches):
        self.reader = reader
        self.actions = actions
        self.batches = batches

    def tree(self, batch, links_key, end_key, nest_key):
        expanded = {resource_path("material-batch", batch.id)}
        top = []
        stack = [(batch, top)]  # iterative: an ancestry thousands of edges deep must not hit the recursion limit
        while stack:
            current, nodes = stack.pop()
            for link_path in current.fields.get(links_key) or []:
                link = self.reader.find(link_path)
                if link is None:
                    continue
                node = {"uri": link_path, **{k: link.fields.get(k) for k in LINK_FIELDS}}
                self.actions[link.fields["action"]] = True
                other_path = link.fields.get(end_key)
                other = self.reader.find(other_path) if other_path else None
                node[nest_key] = []
                if other is None:  # a root edge: the lot's containers
                    node["material_lots"] = sorted({c.fields.get("material_lot") for c in (
                        self.reader.find(p) for p in link.fields.get("containers") or [])
                        if c is not None and c.fields.get("material_lot")})
                else:
                    self.batches[other_path] = compact(other)
                    if other_path not in expanded:
                        expanded.add(other_path)
                        stack.append((other, node[nest_key]))
                nodes.append(node)
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
