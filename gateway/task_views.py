"""/flat-summary-line-item-tasks/ (orders.md §1.9): one row per line item with a prep workflow record, naming its
current preparation task.

Recomputed from current documents (the line item, its order, its newest prep workflow record, that record's task
records) whenever any of them changes, so a rebuild agrees with the live view. The durations of an unfinished task
grow with the clock, so the view stores their start and end times and the gateway computes the seconds when the
row is read (`durations`), as the map asks.
"""
from datetime import datetime, timezone

from gateway.viewstore import delete_view, document, pointing_at, upsert_view
from shared.uris import resource_path, uuid_of

VIEW = "flat-summary-line-item-tasks"
FINISHED = ("complete", "skipped", "cancelled")


def refresh(batch, line_item_path, at):
    target = resource_path(VIEW, uuid_of(line_item_path))
    item = document(batch, line_item_path)
    records = sorted(((p, b, document(batch, p)) for p, b in pointing_at(batch, "prep-workflow-record", "line_item",
                                                                         line_item_path)),
                     key=lambda row: (row[2].get("created") or "", row[0]))
    if not item or not records:
        delete_view(batch, target)
        return
    record_path, bureau, record = records[-1]  # the newest record is the line item's current preparation
    workflow = document(batch, record.get("prep_workflow"))
    tasks = sorted(((p, document(batch, p)) for p, _ in pointing_at(batch, "prep-task-record", "prep_workflow_record",
                                                                    record_path)),
                   key=lambda pair: (pair[1].get("position") or 0, pair[0]))
    current_index = next((i for i, (_, t) in enumerate(tasks) if t.get("status") not in FINISHED), len(tasks) - 1)
    current_path, current = tasks[current_index] if tasks else (None, {})
    prior = tasks[current_index - 1][1] if current_index > 0 else {}
    first = tasks[0][1] if tasks else {}
    order = document(batch, item.get("order"))
    row = {
        "line_item_uuid": uuid_of(line_item_path), "line_item_name": item.get("name"),
        "order_uuid": uuid_of(item.get("order")), "order_name": order.get("name"),
        "order_customer_id": order.get("customer_id"),
        "prep_workflow_uuid": uuid_of(record.get("prep_workflow")), "prep_workflow_name": workflow.get("name"),
        "prep_workflow_record_uuid": uuid_of(record_path),
        "prep_workflow_total_tasks": len(workflow.get("tasks_in_workflow") or []) or len(tasks),
        "prep_workflow_first_task_record_queued": first.get("start_dwell_time"),
        "prep_workflow_first_task_record_complete": first.get("end_time") if first.get("status") == "complete"
        else None,
        "current_task_uuid": uuid_of(current.get("prep_task")), "current_task_name": current.get("name"),
        "current_task_shortname": current.get("shortname"), "current_task_position": current.get("position"),
        "current_task_user_group_name": document(batch, current.get("edit_group")).get("name"),
        "current_task_record_uuid": uuid_of(current_path), "current_task_record_status": current.get("status"),
        "current_task_record_comments": _comments(batch, current_path),
        "prior_task_record_completion_date": prior.get("end_time"),
        "_times": {"queued": current.get("start_dwell_time"), "in_progress": current.get("start_in_progress_time"),
                   "end": current.get("end_time")},
    }
    upsert_view(batch, target, VIEW, bureau, row, at)


def _comments(batch, task_record_path):
    """Comment texts on the task record, oldest first (orders.md §1.11: comments carry related_table_name/uuid)."""
    if not task_record_path:
        return []
    found = [document(batch, p) for p, _ in pointing_at(batch, "comment", "related_uuid", uuid_of(task_record_path))]
    found = [c for c in found if c.get("related_table_name") == "prep_task_record"]
    return [c.get("text") for c in sorted(found, key=lambda c: c.get("created") or "")]


def durations(doc, now=None):
    """Seconds the current task has waited since queued, and been in progress, up to its end or now."""
    now = now or datetime.now(timezone.utc)
    times = doc.get("_times") or {}
    end = _parse(times.get("end")) or now

    def since(start):
        start = _parse(start)
        return max(0.0, (end - start).total_seconds()) if start else None

    return {"current_task_record_dwell_time": since(times.get("queued")),
            "current_task_record_in_progress_time": since(times.get("in_progress")),
            "current_task_record_on_hold_time": None}  # needs the status history, which the record does not keep


def _parse(value):
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _line_item_changed(batch, event, path, bureau, before, after):
    refresh(batch, path, event["timestamp"])


def _record_changed(batch, event, path, bureau, before, after):
    for line_item in {(before or {}).get("line_item"), (after or {}).get("line_item")} - {None}:
        refresh(batch, line_item, event["timestamp"])


def _task_record_changed(batch, event, path, bureau, before, after):
    for record_path in {(before or {}).get("prep_workflow_record"), (after or {}).get("prep_workflow_record")} - {None}:
        line_item = document(batch, record_path).get("line_item")
        if line_item:
            refresh(batch, line_item, event["timestamp"])


def _comment_changed(batch, event, path, bureau, before, after):
    doc = after or before or {}
    if doc.get("related_table_name") == "prep_task_record":
        _task_record_changed(batch, event, None, bureau, None,
                             document(batch, resource_path("prep-task-record", doc.get("related_uuid"))))


def _order_changed(batch, event, path, bureau, before, after):
    for line_item in (after or before or {}).get("line_items") or []:
        refresh(batch, line_item, event["timestamp"])


VIEWS = {"line-item": (_line_item_changed,), "order": (_order_changed,),
         "prep-workflow-record": (_record_changed,), "prep-task-record": (_task_record_changed,),
         "comment": (_comment_changed,)}

# For gateway.projection.prefetch (see order_views.POINTED).
DERIVED_PATHS = {"line-item": (lambda path: [resource_path(VIEW, uuid_of(path))],)}
POINTED = {"line-item": (lambda path, doc: [("prep-workflow-record", "line_item", path)],),
           "order": (lambda path, doc: [("prep-workflow-record", "line_item", item)
                                        for item in doc.get("line_items") or [] if isinstance(item, str)],)}
