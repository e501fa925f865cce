"""Read-side views of the production area (production.md §2.7, §3.3–3.6, §4.5, orders.md §1.18, the order's
`run_status` filter), derived from documents only.

Each view row is recomputed from the current documents whenever one of its sources changes, so the live read side
and one rebuilt from zero agree whatever order the services' feeds arrive in. Timestamps come from the source
documents (never "now", nor the event that happened to trigger a recomputation); only the hidden run_status
documents take their event's, and they are made from production's feed alone, replayed in the same order.
"""
from datetime import datetime

from gateway.viewstore import delete_view, document, pointing_at, upsert_view, url_uuid
from shared.uris import resource_path, uuid_of

# The hidden per-(order, run status) documents the order's `run_status` filter reads (gateway.readstore): not a
# catalogue resource, so never served on their own.
ORDER_RUN_STATUS = "order-run-status"
PRINTER_IN_PROGRESS_MAX = 1  # services.production.runs: a printer without its own limit prints one build at a time


def _path(view, *parts):
    return resource_path(view, url_uuid("stratum:" + ":".join([view, *parts])))


def _bureau(batch, path):
    entry = batch.entry(path)
    return entry.bureau if entry is not None else None


def _live(batch, path):
    """The document at `path` when it exists and is not deleted, else None."""
    entry = batch.entry(path)
    return entry.doc if entry is not None and not entry.deleted else None


def _seconds(start, end):
    try:
        return max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except (TypeError, ValueError):
        return None


def _add(total, value):
    return total if value is None else (total or 0) + value


def _pieces_of_run(batch, run):
    """The live pieces of a run's prints, in the run's order, each once (one print per piece in a run)."""
    pieces, seen = [], set()
    for print_path in run.get("prints") or []:
        piece = document(batch, print_path).get("piece")
        if piece and piece not in seen and _live(batch, piece) is not None:
            seen.add(piece)
            pieces.append(piece)
    return pieces


def _actuals_of_run(batch, run_path):
    """The run's current run-actuals (a superseded record has no run, production.md §2.5)."""
    found = pointing_at(batch, "run-actuals", "run", run_path)
    return document(batch, found[0].path) if found else {}


# -- /flat-piece/ (production.md §3.3) --------------------------------------------------------------------------------

def _prints_of_piece(batch, piece_path):
    prints = [(ref.path, document(batch, ref.path)) for ref in pointing_at(batch, "print", "piece", piece_path)]
    return sorted((p for p in prints if p[1].get("status") != "cancelled"),
                  key=lambda p: (p[1].get("process_step_position") or 0, p[0]))


def refresh_flat_piece(batch, piece_path):
    target = resource_path("flat-piece", uuid_of(piece_path))
    piece = _live(batch, piece_path)
    if piece is None:
        delete_view(batch, target)
        return
    item, order = document(batch, piece.get("line_item")), document(batch, piece.get("order"))
    prints = _prints_of_piece(batch, piece_path)
    current = document(batch, piece.get("current_print"))
    run_path = current.get("run")
    run = document(batch, run_path)
    station_type = current.get("workstation_type_uri")
    printing = next((p for _, p in prints if p.get("operation") == "printing" and p.get("run")), {})
    completed = [_actuals_of_run(batch, p["run"]).get("end_in_progress_time") for _, p in prints
                 if p.get("status") == "complete" and p.get("run")]
    order_uuid = uuid_of(piece.get("order"))
    row = {
        "uuid": uuid_of(piece_path),
        "current_process_step_position": piece.get("current_step_position"),
        "current_process_step_run_name": run.get("name"), "current_process_step_run_uuid": uuid_of(run_path),
        "current_process_step_status": run.get("status"),
        "current_process_step_workstation_name": run.get("workstation_name"),
        "process_step_workstation_type_name": document(batch, station_type).get("name"),
        "process_step_workstation_type_uuid": uuid_of(station_type),
        # Work instructions and checklists (production.md §7) are not part of Stratum yet: no data, so null.
        "current_work_instruction_description": None, "current_work_instruction_position": None,
        "current_work_instruction_uuid": None, "total_work_instructions_in_current_process_step": None,
        "past_work_instruction_step_completion_date": None,
        # the steps of the piece's own workflow: the line item's, unless the piece was reworked onto another
        "total_process_steps": len(document(batch, piece.get("workflow")).get("process_steps") or []) or len(prints),
        "past_process_step_completion_date": max((c for c in completed if c), default=None),
        "first_run_start": piece.get("first_run_start"), "first_run_end": piece.get("first_run_end"),
        "print_run_name": document(batch, printing.get("run")).get("name"),
        "print_run_uuid": uuid_of(printing.get("run")),
        "line_item_name": item.get("name"), "line_item_uuid": uuid_of(piece.get("line_item")),
        "order_name": order.get("name"), "order_uuid": order_uuid,
        "order_customer_id": order.get("customer_id") or (order_uuid[:8] if order_uuid else None),
    }
    upsert_view(batch, target, "flat-piece", _bureau(batch, piece_path), row, piece.get("created"))


# -- /pieces-by-run/ and /line-items-by-run/ (production.md §3.4, §3.5) -----------------------------------------------

def _piece_row(batch, run_path, piece_path):
    target = _path("pieces-by-run", run_path, piece_path)
    piece = _live(batch, piece_path)
    if piece is None or _live(batch, run_path) is None:
        delete_view(batch, target)
        return
    item, order = document(batch, piece.get("line_item")), document(batch, piece.get("order"))
    reworked = piece.get("workflow") != item["workflow"] if item.get("workflow") else bool(piece.get("reworked"))
    row = {"run": run_path, "piece": piece_path, "piece_name": piece.get("name"), "piece_status": piece.get("status"),
           "line_item": piece.get("line_item"), "line_item_name": item.get("name"), "order_name": order.get("name"),
           "order_customer_id": order.get("customer_id"),
           "workflow_name": document(batch, piece.get("workflow")).get("name"), "reworked": reworked}
    upsert_view(batch, target, "pieces-by-run", _bureau(batch, run_path), row, document(batch, run_path)["created"])


def _line_item_row(batch, run_path, line_item_path, pieces):
    """§3.5: the run's pieces of one line item, and those still on the line item's own workflow."""
    target = _path("line-items-by-run", run_path, line_item_path)
    if not pieces:
        delete_view(batch, target)
        return
    workflow = document(batch, line_item_path).get("workflow")
    original = sum(1 for p in pieces if workflow is None or document(batch, p).get("workflow") == workflow)
    row = {"run": run_path, "line_item": line_item_path, "total_piece_quantity": len(pieces),
           "original_piece_quantity": original}
    upsert_view(batch, target, "line-items-by-run", _bureau(batch, run_path), row, document(batch, run_path)["created"])


def refresh_run_rows(batch, run_path):
    """Every pieces-by-run and line-items-by-run row of one run, from its prints; rows no longer wanted go."""
    run = _live(batch, run_path)
    pieces = _pieces_of_run(batch, run) if run is not None else []
    for piece in pieces:
        _piece_row(batch, run_path, piece)
    kept = {_path("pieces-by-run", run_path, p) for p in pieces}
    for ref in pointing_at(batch, "pieces-by-run", "run", run_path):
        if ref.path not in kept:
            delete_view(batch, ref.path)
    by_item = {}
    for piece in pieces:
        by_item.setdefault(document(batch, piece).get("line_item"), []).append(piece)
    by_item.pop(None, None)
    for line_item, its_pieces in by_item.items():
        _line_item_row(batch, run_path, line_item, its_pieces)
    for ref in pointing_at(batch, "line-items-by-run", "run", run_path):
        if document(batch, ref.path).get("line_item") not in by_item:
            delete_view(batch, ref.path)


def _refresh_line_item_rows(batch, run_path, line_item_path):
    run = _live(batch, run_path)
    pieces = [p for p in (_pieces_of_run(batch, run) if run else [])
              if document(batch, p).get("line_item") == line_item_path]
    _line_item_row(batch, run_path, line_item_path, pieces)


# -- /run-material/ (production.md §2.7) ------------------------------------------------------------------------------

def refresh_run_material(batch, run_path):
    """The estimate: each print's share of its line item's material estimate (the estimate is for the whole
    quantity); the actual: base_material_used of the run's run-actuals-additive records. Printing runs only."""
    target = resource_path("run-material", uuid_of(run_path))
    run = _live(batch, run_path)
    if run is None or run.get("operation") != "printing":
        delete_view(batch, target)
        return
    estimate, materials = None, {}
    for print_path in run.get("prints") or []:
        item = document(batch, document(batch, print_path).get("line_item"))
        estimates = item.get("estimates") or {}
        quantity = estimates.get("quantity") or item.get("quantity")
        for kind in ("base", "support"):
            amount = (estimates.get("materials") or {}).get(kind)
            share = amount / quantity if amount is not None and quantity else None
            if kind == "base":
                estimate = _add(estimate, share)
            material = (item.get("materials") or {}).get(kind)
            if material:
                key = (kind, material)
                materials[key] = _add(materials.get(key), share)
    actuals = pointing_at(batch, "run-actuals", "run", run_path)
    actual = None
    for additive in (ref for a in actuals for ref in pointing_at(batch, "run-actuals-additive", "run_actual", a.path)):
        actual = _add(actual, document(batch, additive.path).get("base_material_used"))
    row = {"run": run_path, "estimate_base_material_used": _round(estimate), "actual_base_material_used": actual,
           "materials": [{"type": kind, "material": material, "amount": _round(amount)}
                         for (kind, material), amount in sorted(materials.items())]}
    upsert_view(batch, target, "run-material", _bureau(batch, run_path), row, run.get("created"))


def _round(value):
    return round(value, 6) if value is not None else None


# -- /workstation/ (production.md §4.5) -------------------------------------------------------------------------------

def _workstation(batch, event, path, bureau, before, after):
    """One row per printer, post-processor and shipping station, under the same uuid; `uri` names the workstation
    itself (the map: "URL of the underlying printer/post-processor/shipping")."""
    target = resource_path("workstation", event["uuid"])
    if after is None:
        delete_view(batch, target)
        return
    limit = after.get("in_progress_max")
    if limit is None and event["resource"] == "printer":
        limit = PRINTER_IN_PROGRESS_MAX
    row = {"uri": path, "workstation_type": event["resource"], "name": after.get("name"),
           "description": after.get("description"), "location": after.get("location"), "in_progress_max": limit,
           "archived": after.get("archived"), "updated": after.get("updated"), "updated_by": after.get("updated_by")}
    upsert_view(batch, target, "workstation", bureau, row, after.get("created"))


# -- /piece-actuals/ (production.md §3.6) and /line-item-actuals/ (orders.md §1.18) -----------------------------------

def piece_actuals_path(piece_path):
    return _path("piece-actuals", piece_path)


def refresh_piece_actuals(batch, piece_path):
    """A piece's actuals, one detail per process step (print), once one of its runs has actuals. Cost-sharing rule
    (the map leaves it open): a run's total_cost is shared equally by the pieces in the run (one print each), so a
    piece's step costs total_cost / len(run.prints). Times: its first print's start, its last print's end (null
    until every print has ended). A run cancelled while in progress lets its prints go (production.md §1.1), so its
    cost is no piece's."""
    target = piece_actuals_path(piece_path)
    piece = _live(batch, piece_path)
    details, starts, ends, total, stamps = [], [], [], None, []
    for print_path, each in _prints_of_piece(batch, piece_path) if piece is not None else []:
        run_path = each.get("run")
        actuals = _actuals_of_run(batch, run_path) if run_path else {}
        start, end = actuals.get("start_in_progress_time"), actuals.get("end_in_progress_time")
        share = None
        if actuals.get("total_cost") is not None:
            share = round(actuals["total_cost"] / max(1, len(document(batch, run_path).get("prints") or [])), 6)
        details.append({"process_step": each.get("process_step"),
                        "process_step_position": each.get("process_step_position"), "run": run_path,
                        "start_in_progress_time": start, "end_in_progress_time": end,
                        "duration": _seconds(start, end) if end else None, "cost": share})
        starts.append(start)
        ends.append(end)
        total = _add(total, share)
        stamps.append(actuals.get("updated"))
    if not any(starts):
        delete_view(batch, target)
        return
    row = {"piece": piece_path, "start_in_progress_time": min(s for s in starts if s),
           "end_in_progress_time": max(ends) if all(ends) else None, "per_step_details": details,
           "total_cost": total, "updated": max((s for s in stamps if s), default=None)}
    upsert_view(batch, target, "piece-actuals", _bureau(batch, piece_path), row, min(s for s in starts if s))


def refresh_line_item_actuals(batch, line_item_path):
    """Summed from the piece actuals of the line item's pieces that follow its workflow; pieces on a custom
    workflow are left out of the math (has_custom_actuals). Per step: total cost and piece-seconds, and their
    average per piece with actuals at that step."""
    target = _path("line-item-actuals", line_item_path)
    item = document(batch, line_item_path)
    pieces = [(ref.path, document(batch, ref.path)) for ref in pointing_at(batch, "piece", "line_item", line_item_path)]
    workflow = item.get("workflow")
    original = [path for path, p in pieces if not workflow or p.get("workflow") == workflow]
    custom = len(original) < len(pieces)
    counted = [a for a in (_live(batch, piece_actuals_path(path)) for path in original) if a]
    if not counted or (item and _live(batch, line_item_path) is None):  # none yet, or the line item is gone
        delete_view(batch, target)
        return
    steps, total = {}, None
    for actuals in counted:
        total = _add(total, actuals.get("total_cost"))
        for detail in actuals.get("per_step_details") or []:
            if not detail.get("start_in_progress_time"):
                continue
            step = steps.setdefault(detail.get("process_step_position"), {
                "process_step": detail.get("process_step"), "pieces": 0, "cost": None, "duration": None})
            step["pieces"] += 1
            step["cost"] = _add(step["cost"], detail.get("cost"))
            step["duration"] = _add(step["duration"], detail.get("duration"))
    per_step = [{"process_step": s["process_step"], "process_step_position": position,
                 "total": {"cost": _round(s["cost"]), "duration": s["duration"], "pieces": s["pieces"]},
                 "per_piece_average": {"cost": _round(s["cost"] / s["pieces"]) if s["cost"] is not None else None,
                                       "duration": s["duration"] / s["pieces"] if s["duration"] is not None else None}}
                for position, s in sorted(steps.items(), key=lambda pair: pair[0] or 0)]
    ends = [a.get("end_in_progress_time") for a in counted]
    row = {"line_item": line_item_path, "additional_costs": item.get("additional_costs") or [],
           "start_in_progress_time": min(a["start_in_progress_time"] for a in counted),
           "end_in_progress_time": max(ends) if all(ends) and len(counted) == len(original) else None,
           "has_custom_actuals": custom, "per_step_details": per_step, "total_cost": _round(total),
           "updated": max(a.get("updated") or "" for a in counted) or None}
    created = min(a["created"] for a in counted)
    upsert_view(batch, target, "line-item-actuals", _bureau(batch, pieces[0][0]), row, created)


def _refresh_actuals(batch, pieces, line_items=()):
    """The pieces' actuals, then their line items' (each once, and only where a piece's actuals changed, or as
    `line_items` asks: a line item's sums read all of its pieces)."""
    line_items = list(line_items)
    for piece in pieces:
        target = piece_actuals_path(piece)
        before = batch.entry(target)
        before = None if before is None else (before.doc, before.deleted)
        refresh_piece_actuals(batch, piece)
        after = batch.entry(target)
        item = document(batch, piece).get("line_item")
        if after is not None and (after.doc, after.deleted) != before and item and item not in line_items:
            line_items.append(item)
    for item in line_items:
        refresh_line_item_actuals(batch, item)


# -- the order's run_status filter (orders.md: orders where at least one run has that status) ------------------------

def _order_run_statuses(batch, run_path, bureau, before, after, at):
    """One hidden document per (order, run status) listing the runs of the order at that status, kept from the run
    documents alone (production's feed, in the same order live and rebuilt)."""
    old = {(o, (before or {}).get("status")) for o in (before or {}).get("orders") or []}
    new = {(o, (after or {}).get("status")) for o in (after or {}).get("orders") or []}
    for order, status in sorted(old | new):
        if not status:
            continue
        target = _path(ORDER_RUN_STATUS, order, status)
        runs = set(document(batch, target).get("runs") or []) if _live(batch, target) is not None else set()
        runs.discard(run_path)
        if (order, status) in new:
            runs.add(run_path)
        if runs:
            upsert_view(batch, target, ORDER_RUN_STATUS, bureau, {"order": order, "status": status,
                                                                  "runs": sorted(runs)}, at)
        else:
            delete_view(batch, target)


# -- what each source's change refreshes -------------------------------------------------------------------------------

def _touches(event, fields):
    """Whether the event may change what a view reads of its document: a creation or a deletion, or an update of one
    of `fields` (the orders feed updates line items and orders often, for fields no production view shows)."""
    return event["kind"] != "updated" or bool(set(fields) & set(event.get("fields") or {}))


def _piece_changed(batch, event, path, bureau, before, after):
    runs = [document(batch, ref.path)["run"] for ref in pointing_at(batch, "pieces-by-run", "piece", path)]
    refresh_flat_piece(batch, path)
    for run_path in runs:
        _piece_row(batch, run_path, path)
    if _touches(event, ("workflow",)):  # original vs total pieces of the line item on its runs; custom actuals
        item = (after or before).get("line_item")
        for run_path in runs:
            _refresh_line_item_rows(batch, run_path, item)
        # which pieces the line item's actuals count: they change only if they exist, or this piece has actuals
        summed = item and (_live(batch, _path("line-item-actuals", item)) is not None
                           or batch.entry(piece_actuals_path(path)) is not None)
        _refresh_actuals(batch, [path], [item] if summed else [])


def _print_changed(batch, event, path, bureau, before, after):
    piece = (after or before or {}).get("piece")
    if not piece:
        return
    refresh_flat_piece(batch, piece)
    # a piece's actuals read its prints' runs and leave cancelled prints out; every other status change comes with
    # its run's actuals, which refresh them (and each line item once, not once per print)
    if _touches(event, ("run",)) or "cancelled" in {(before or {}).get("status"), (after or {}).get("status")}:
        _refresh_actuals(batch, [piece])


def _run_changed(batch, event, path, bureau, before, after):
    pieces = _pieces_of_run(batch, before or {})
    pieces += [p for p in _pieces_of_run(batch, after or {}) if p not in pieces]
    if _touches(event, ("prints", "operation")):
        refresh_run_rows(batch, path)
        refresh_run_material(batch, path)
        _refresh_actuals(batch, pieces)  # each piece's share of the run's cost
    if _touches(event, ("prints", "name", "status", "workstation_name")):  # shown on its pieces' flat rows
        for piece in pieces:
            refresh_flat_piece(batch, piece)
    _order_run_statuses(batch, path, bureau, before, after, event["timestamp"])


def _run_actuals_changed(batch, event, path, bureau, before, after):
    for run_path in {(before or {}).get("run"), (after or {}).get("run")} - {None}:
        refresh_run_material(batch, run_path)
        pieces = _pieces_of_run(batch, document(batch, run_path))
        _refresh_actuals(batch, pieces)
        if _touches(event, ("run", "end_in_progress_time")):  # past_process_step_completion_date
            for piece in pieces:
                refresh_flat_piece(batch, piece)


def _additive_changed(batch, event, path, bureau, before, after):
    for actuals in {(before or {}).get("run_actual"), (after or {}).get("run_actual")} - {None}:
        run_path = document(batch, actuals).get("run")
        if run_path:
            refresh_run_material(batch, run_path)


def _line_item_changed(batch, event, path, bureau, before, after):
    if _touches(event, ("name", "workflow")):
        for ref in pointing_at(batch, "piece", "line_item", path):
            refresh_flat_piece(batch, ref.path)
            for row in pointing_at(batch, "pieces-by-run", "piece", ref.path):
                _piece_row(batch, document(batch, row.path)["run"], ref.path)
    if _touches(event, ("workflow", "estimates", "quantity", "materials")):
        for ref in pointing_at(batch, "line-items-by-run", "line_item", path):
            run_path = document(batch, ref.path)["run"]
            _refresh_line_item_rows(batch, run_path, path)
            refresh_run_material(batch, run_path)
    if _touches(event, ("workflow", "additional_costs")):
        refresh_line_item_actuals(batch, path)


def _pieces_naming(field, shown):
    """A change of a document pieces name (their order, workflow) reaches their flat and by-run rows."""
    def refresh(batch, event, path, bureau, before, after):
        if not _touches(event, shown):
            return
        for ref in pointing_at(batch, "piece", field, path):
            refresh_flat_piece(batch, ref.path)
            for row in pointing_at(batch, "pieces-by-run", "piece", ref.path):
                _piece_row(batch, document(batch, row.path)["run"], ref.path)
    return refresh


def _station_type_changed(batch, event, path, bureau, before, after):
    """A workstation type's name shows on the flat rows of the pieces whose prints are at its steps."""
    if event["kind"] == "updated" and "name" not in (event.get("fields") or {}):
        return
    pieces = []
    for ref in pointing_at(batch, "print", "workstation_type_uri", path):
        piece = document(batch, ref.path).get("piece")
        if piece and piece not in pieces:
            pieces.append(piece)
    for piece in pieces:
        refresh_flat_piece(batch, piece)


VIEWS = {"piece": (_piece_changed,), "print": (_print_changed,), "run": (_run_changed,),
         "run-actuals": (_run_actuals_changed,), "run-actuals-additive": (_additive_changed,),
         "line-item": (_line_item_changed,), "order": (_pieces_naming("order", ("name", "customer_id")),),
         "workflow": (_pieces_naming("workflow", ("name", "process_steps")),),
         "printer-type": (_station_type_changed,), "post-processor-type": (_station_type_changed,),
         "shipping": (_station_type_changed, _workstation), "printer": (_workstation,),
         "post-processor": (_workstation,)}

# For gateway.projection.prefetch (see order_views.POINTED).
DERIVED_PATHS = {"piece": (lambda path: [resource_path("flat-piece", uuid_of(path)), piece_actuals_path(path)],),
                 "run": (lambda path: [resource_path("run-material", uuid_of(path))],),
                 "line-item": (lambda path: [_path("line-item-actuals", path)],),
                 "printer": (lambda path: [resource_path("workstation", uuid_of(path))],),
                 "post-processor": (lambda path: [resource_path("workstation", uuid_of(path))],),
                 "shipping": (lambda path: [resource_path("workstation", uuid_of(path))],)}
POINTED = {"piece": (lambda path, doc: [("pieces-by-run", "piece", path), ("print", "piece", path)],),
           "print": (lambda path, doc: [("print", "piece", doc.get("piece"))],),
           "run": (lambda path, doc: [("pieces-by-run", "run", path), ("line-items-by-run", "run", path),
                                      ("run-actuals", "run", path)],),
           "run-actuals": (lambda path, doc: [("run-actuals-additive", "run_actual", path)],),
           "line-item": (lambda path, doc: [("piece", "line_item", path), ("line-items-by-run", "line_item", path)],),
           "order": (lambda path, doc: [("piece", "order", path)],),
           "workflow": (lambda path, doc: [("piece", "workflow", path)],)}

# The look-ups above (pointing_at), each served by a partial index (gateway.readstore.REFERENCES).
REFERENCES = (("print", "piece"), ("print", "workstation_type_uri"), ("piece", "line_item"), ("piece", "order"),
              ("piece", "workflow"), ("run-actuals", "run"), ("run-actuals-additive", "run_actual"),
              ("pieces-by-run", "piece"), ("pieces-by-run", "run"), ("line-items-by-run", "run"),
              ("line-items-by-run", "line_item"), (ORDER_RUN_STATUS, "status"))
