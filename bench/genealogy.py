"""How the batch-action ledger and its genealogy scale (issue 14 item 3): N batch actions on one material, on the
materials application with a SQLite file store (no broker, no gateway), reporting the cost of an action as the
ledger grows and the time of the one request that answers /material-genealogy/ for the batch with the largest
genealogy, against a ceiling measured in the same run.

    PYTHONPATH=. .venv/bin/python -m bench.genealogy [--actions 10000] [--seed 7]

The workload is a powder's life in a busy bureau: batches are split off, loaded, unloaded, sieved, topped off and
blended back together, so ancestries grow long and interleave (the worst case for trees kept current on write).

The genealogy is walked when asked (services.materials.genealogy, a level of the trees per SELECT) over the
projection the materials service keeps in its database (services.materials.genealogy_projection). The bench reports
the migrate step's fill of that projection (the whole log, once per store), the query warm (median of 3 in the
process that wrote everything; wall and CPU time), right after a new action, what a new process on the same store
reads of the log before its projection is current (a restart), and that process's first answer; then the previous
reader that replays every aggregate of the answer from its events. The ceilings,
measured in the same run, walk the same edges with nothing else to do: `walk` over in-memory adjacency lists (no
store at all), `sql` reading every edge of the store in one SELECT and walking them (what a dedicated edge table
would cost, without the batches' and actions' details the answer also carries). Before the trees are compared, the
bench checks that the answer holds exactly the edges the ceiling walked. Reports, not tests: nothing here asserts a
timing."""
import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time

from services.materials.application import Materials
from services.materials.genealogy import Reader, genealogy
from services.materials.genealogy_projection import projection_of
from shared.errors import InvalidPayload
from shared.uris import parse_uri
from tests.unit.materials_kit import Kit

PRINTER = "/printer/44444444-4444-4444-4444-444444444444/"
PRINTERS = {PRINTER: {"printer_type": "/printer-type/55555555-5555-5555-5555-555555555555/"}}
LINK_CREATED = "materials/material-batch-linking/Created"
ADMIN = {"platform_admin": True}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stratum-genealogy-") as folder:
        store = os.path.join(folder, "materials.sqlite")
        kit = Kit(SQLITE_DBNAME=store, AGGREGATE_CACHE_MAXSIZE="100000")
        try:
            report = run(kit, store, args)
        finally:
            kit.close()
    print(json.dumps(report, indent=1))
    return report


def run(kit, store, args):
    rng = random.Random(args.seed)
    material = kit.material()
    batches, live, timings, refused = [], [], [], 0

    def pick(exclude=None):
        """A batch not done (done ones leave the pool as they are met)."""
        while live:
            candidate = rng.choice(live)
            fields = kit.aggregate(candidate).fields
            if fields.get("status") == "done":
                live.remove(candidate)
                continue
            if candidate != exclude:
                return candidate, fields
            if len(live) == 1:
                return None, None
        return None, None

    def born(new):
        batches.append(new)
        live.append(new)

    while len(timings) < args.actions:
        if len(live) < 3:
            started = time.perf_counter()
            lot = kit.lot(material=material, containers=2, size=100.0)
            born(kit.initial_batch(lot))
            timings.append(time.perf_counter() - started)
            continue
        batch, b = pick()
        if batch is None:
            continue
        step = rng.choice(["split", "load", "unload", "sieve", "top_off", "blend", "test"])
        other = pick(exclude=batch)[0] if step in ("top_off", "blend") else None
        started = time.perf_counter()
        try:
            if step == "split" and b["quantity_available_for_actions"] > 2:
                born(kit.act("split_batch", batch, round(b["quantity_available_for_actions"] / 3, 3)))
            elif step == "load" and b["quantity_available_for_actions"] > 1 and not b.get("at_machine"):
                kit.act("machine_load", batch, round(b["quantity_available_for_actions"] / 2, 3),
                        printer=PRINTER, printers=PRINTERS)
            elif step in ("unload", "top_off") and b.get("at_machine"):
                if step == "unload" or other is None:
                    kit.act("machine_unload_chamber", batch, round(b["reserved_quantity"] * 0.9, 3))
                else:
                    kit.act("machine_top_off", batch, 0.5, batch_to_load=other)
            elif step == "blend" and not b.get("at_machine") and other is not None:
                born(kit.act("blend_batches", batch, batches=[other]))
            elif step == "sieve" and not b.get("at_machine"):
                kit.act("sieve", batch)
            else:
                kit.act("test", batch, 0.01)
        except InvalidPayload:
            refused += 1
        timings.append(time.perf_counter() - started)

    edges = edges_of(store)
    parents, children = adjacency(edges)
    sizes = {b: len(reachable(b, parents, 1)) + len(reachable(b, children, 2)) for b in batches}
    target = max(batches, key=lambda b: (sizes[b], b))
    target_uuid = parse_uri(target)[1]

    # the migrate step's fill: the whole log applied to the stored projection, once per store
    fill = timed(lambda: projection_of(kit.app).catch_up())
    first = timed(lambda: kit.app.genealogy(target_uuid, ADMIN))
    warm = [timed(lambda: kit.app.genealogy(target_uuid, ADMIN)) for _ in range(3)]
    document = warm[0][1]
    assert first[1] == document
    replayed = [timed(lambda: genealogy(kit.app, target_uuid, ADMIN, reader=Reader(kit.app))) for _ in range(3)]
    assert replayed[0][1] == document  # the projection answers exactly what replaying the aggregates answers
    started, read, cold = restart(store, target_uuid)
    assert cold[1] == document
    # a new action, then the answer: the catch-up of one action's notifications is part of the request
    after_actions = []
    for _ in range(3):
        after = pick()[0]
        try:
            kit.act("test", after, 0.001) if after else None
        except InvalidPayload:  # a batch with nothing left to test: the refused action records nothing
            pass
        after_actions.append(timed(lambda: kit.app.genealogy(target_uuid, ADMIN))[0])
    caught_up = statistics.median(after_actions)
    walk = statistics.median(timed(lambda: walk_both(target, parents, children))[0] for _ in range(5))
    sql = statistics.median(timed(lambda: walk_both(target, *adjacency(edges_of(store))))[0] for _ in range(3))
    expected = walk_both(target, parents, children)
    answered = (count_nodes(document["parents_tree"], "parents"), count_nodes(document["children_tree"], "children"))
    assert answered == (expected[0], expected[1]), (answered, expected)  # the same edges, or the ratio means nothing
    query_warm = statistics.median(t for t, _ in warm)
    tenth = max(1, len(timings) // 10)
    return {
        "actions": args.actions, "refused": refused, "batches": len(batches), "edges": len(edges),
        "ms_per_action_first_tenth": ms(statistics.mean(timings[:tenth])),
        "ms_per_action_last_tenth": ms(statistics.mean(timings[-tenth:])),
        "genealogy_target": {"batch": target, "parents_tree_nodes": answered[0], "children_tree_nodes": answered[1],
                             "batches": len(document["batches"]), "actions": len(document["actions"]),
                             "bytes": len(json.dumps(document)),
                             "deepest_parents_tree": depth(document["parents_tree"], "parents")},
        "fill_ms_once_per_store": ms(fill[0]), "fill_notifications_read": fill[1],
        "query_ms_warm": ms(query_warm),
        "query_cpu_ms_warm": ms(statistics.median(c for _, c in warm_cpu(kit, target_uuid))),
        "query_ms_after_one_new_action": ms(caught_up),
        "restart_ms_until_current": ms(started), "restart_notifications_read": read,
        "query_ms_cold_first_answer_of_a_new_process": ms(cold[0]),
        "before_query_ms_replaying_aggregates": ms(statistics.median(t for t, _ in replayed)),
        "ceiling_ms_walk_in_memory": ms(walk), "ceiling_ms_sql_edges_and_walk": ms(sql),
        "ratio_warm_to_walk": round(query_warm / walk, 1), "ratio_after_one_action_to_walk": round(caught_up / walk, 1),
        "ratio_replaying_to_walk": round(statistics.median(t for t, _ in replayed) / walk, 1),
        "ratio_cold_to_sql": round(cold[0] / sql, 1),
    }


def restart(store, target_uuid):
    """A new process on the same store: what it reads of the log before the projection is current (its catch-up
    timer's first tick), and its first answer."""
    app = Materials(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": store})
    try:
        started, read = timed(lambda: projection_of(app).catch_up())
        return started, read, timed(lambda: app.genealogy(target_uuid, ADMIN))
    finally:
        app.close()


def warm_cpu(kit, target_uuid):
    """(wall, CPU) seconds of three warm answers: this process's CPU time, steadier than wall time on a busy machine."""
    found = []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        kit.app.genealogy(target_uuid, ADMIN)
        found.append((time.perf_counter() - wall, time.process_time() - cpu))
    return found


def edges_of(store):
    """Every H1 edge in the store, read in one SELECT: (link path, source batch or None, destination batch)."""
    connection = sqlite3.connect(store)
    try:
        rows = connection.execute("SELECT originator_id, state FROM stored_events WHERE topic = ?",
                                  (LINK_CREATED,)).fetchall()
    finally:
        connection.close()
    edges = []
    for originator, state in rows:
        fields = json.loads(state)["fields"]
        edges.append((f"/material-batch-linking/{originator}/", fields.get("source_batch"),
                      fields["destination_batch"]))
    return edges


def adjacency(edges):
    parents, children = {}, {}
    for link, source, destination in edges:
        parents.setdefault(destination, []).append((link, source))
        if source:
            children.setdefault(source, []).append((link, destination))
    return parents, children


def reachable(start, graph, _):
    seen, stack = {start}, [start]
    while stack:
        for _link, other in graph.get(stack.pop(), ()):
            if other and other not in seen:
                seen.add(other)
                stack.append(other)
    return seen


def walk_both(target, parents, children):
    """The ceiling: the same walk (each batch expanded once), nodes counted, nothing else loaded."""
    return tuple(_walk(target, graph) for graph in (parents, children))


def _walk(target, graph):
    expanded, stack, nodes = {target}, [target], 0
    while stack:
        for _link, other in graph.get(stack.pop(), ()):
            nodes += 1
            if other and other not in expanded:
                expanded.add(other)
                stack.append(other)
    return nodes


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def ms(seconds):
    return round(seconds * 1000, 2)


def count_nodes(nodes, key):
    return sum(1 + count_nodes(n[key], key) for n in nodes)


def depth(nodes, key):
    best, stack = 0, [(n, 1) for n in nodes]
    while stack:
        node, level = stack.pop()
        best = max(best, level)
        stack += [(n, level + 1) for n in node[key]]
    return best


if __name__ == "__main__":
    main()
