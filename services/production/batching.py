"""Which downstream run each print goes to (production.md §2.2 step 5, §4.14 "Post-processor/shipping batching"):
the rules of a workstation type's `batching_strategy`, as a pure function the create-runs saga
(services.production.create_runs_job) applies step by step.

A *print* here is a dict {"print": URI, "upstream": the run holding the piece's previous step, "order": URI,
"size": the piece's bounding-box volume in mm³ (x·y·z), "area": its footprint x·y in mm²}; a *run* open for infill
is {"run": URI, "prints": n, "size": Σ sizes, "area": Σ areas, "upstreams": set, "orders": set}. The answer lists
the groups: {"run": an open run's URI (infilled) or None (a new run), "prints": [URIs]}, in the order they were
opened.

* `single`: one print per run; nothing is infilled.
* `by_number_of_parts`: at most `number_of_parts` prints per run; open runs are filled first.
* `by_size_xyz`: Σ size ≤ the type's build volume X·Y·Z (the map's cheap form of the 3-D check).
* `by_size_xy`: Σ footprint area ≤ X·Y (the cheap form of the pack2d check: the footprints' areas, not a nesting).
* `match_previous` (the default) and `by_job` (not defined by the reference; no job notion in Stratum): one run per
  upstream run, infilling only a run that holds that same upstream run's prints alone.
* `by_order`: one order per run, infilling a run that holds that order's prints alone.
A print too large for an empty run by size still gets a run of its own: it cannot be left out of its own workflow.
"""

STRATEGIES = ("by_size_xyz", "by_size_xy", "by_number_of_parts", "match_previous", "single", "by_job", "by_order")


def capacity(strategy, workstation_type):
    """The limit a run of this type holds under `strategy` (None: no limit of that kind)."""
    volume = workstation_type.get("build_volume") or {}
    try:
        if strategy == "by_number_of_parts":
            return int(workstation_type.get("number_of_parts") or 0) or None
        if strategy == "by_size_xyz":
            return float(volume["x"]) * float(volume["y"]) * float(volume["z"])
        if strategy == "by_size_xy":
            return float(volume["x"]) * float(volume["y"])
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _measure(strategy):
    return {"by_number_of_parts": lambda p: 1, "by_size_xyz": lambda p: p.get("size") or 0.0,
            "by_size_xy": lambda p: p.get("area") or 0.0}.get(strategy)


def _used(strategy, run):
    return {"by_number_of_parts": run.get("prints", 0), "by_size_xyz": run.get("size", 0.0),
            "by_size_xy": run.get("area", 0.0)}.get(strategy, 0)


def _group_key(strategy, item):
    if strategy == "by_order":
        return item.get("order")
    return item.get("upstream")


def batch(strategy, prints, open_runs=(), limit=None):
    """The groups of `prints` under `strategy` (see the module's note); `limit` from `capacity`."""
    strategy = strategy if strategy in STRATEGIES else "match_previous"
    groups = []
    if strategy == "single":
        return [{"run": None, "prints": [p["print"]]} for p in prints]
    if strategy in ("match_previous", "by_job", "by_order"):
        by_key = {}
        for item in prints:
            key = _group_key(strategy, item)
            if key not in by_key:
                owned = "orders" if strategy == "by_order" else "upstreams"
                infill = next((r["run"] for r in open_runs if key is not None and set(r.get(owned) or ()) == {key}),
                              None)
                by_key[key] = {"run": infill, "prints": []}
                groups.append(by_key[key])
            by_key[key]["prints"].append(item["print"])
        return groups
    measure = _measure(strategy)
    bins = [{"run": r["run"], "prints": [], "used": _used(strategy, r)} for r in open_runs]
    for item in prints:
        need = measure(item)
        target = None
        if limit is not None:
            target = next((b for b in bins if b["used"] + need <= limit + 1e-9), None)
        elif bins:
            target = bins[0]  # no limit known: everything in one run
        if target is None:
            target = {"run": None, "prints": [], "used": 0}
            bins.append(target)
        target["prints"].append(item["print"])
        target["used"] += need
    return [{"run": b["run"], "prints": b["prints"]} for b in bins if b["prints"]]
