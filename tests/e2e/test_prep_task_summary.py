"""/flat-summary-line-item-tasks/ through HTTP (orders.md §1.9): the current preparation task of each line item,
following its prep workflow record, its task records and their comments."""
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared import uris
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e


def summary_of(api, line_item):
    return api.get(f"/flat-summary-line-item-tasks/{line_item.rstrip('/').rsplit('/', 1)[1]}/")


def test_the_summary_follows_the_current_prep_task(admin, system):
    session = admin.get("/sessions/").json()
    ctx = {"user": uris.normalise(session["user"]), "bureau": uris.normalise(session["bureau"]), "internal": True}

    def command():
        return dict(ctx, command_id=str(uuid.uuid4()))

    order = admin.post("/order/", json={"name": "prep order", "customer_id": "C-42"}).headers["Location"]
    product = admin.post("/product/", json={"order": order, "no_model_upload": True}).headers["Location"]
    item = admin.post("/line-item/", json={"product": product, "quantity": 1, "name": "bracket"}).headers["Location"]
    assert summary_of(admin, item).status_code == 404  # no preparation, no row

    workflow = admin.post("/prep-workflow/", json={"name": "Review",
                                                   "tasks_in_workflow": [{"position": 0}, {"position": 1}]})
    assert workflow.status_code == 201, workflow.text
    record = admin.post("/prep-workflow-record/", json={"order": order, "line_item": item, "status": "queued",
                                                        "prep_workflow": workflow.headers["Location"]})
    assert record.status_code == 201, record.text
    queued = (datetime.now(timezone.utc) - timedelta(seconds=90)).isoformat()
    with system.rpc() as rpc:  # production's rule makes one task record per task of the workflow
        tasks = [rpc.production.create("prep-task-record", {
            "prep_workflow_record": uris.normalise(record.headers["Location"]), "position": position,
            "name": name, "shortname": name[:3].upper(), "status": "queued", "start_dwell_time": queued},
            command())["uri"] for position, name in enumerate(("Design review", "Quote check"))]

    # written by RPC, not through the gateway: the projector brings them to the read side shortly
    row = eventually(lambda: summary_of(admin, item).json()["current_task_name"] and summary_of(admin, item).json())
    assert (row["line_item_name"], row["order_name"], row["order_customer_id"]) == ("bracket", "prep order", "C-42")
    assert (row["prep_workflow_name"], row["prep_workflow_total_tasks"]) == ("Review", 2)
    assert (row["current_task_name"], row["current_task_position"], row["current_task_record_status"]) == (
        "Design review", 0, "queued")
    assert row["current_task_record_uuid"] == uris.parse_uri(tasks[0])[1]
    assert row["current_task_record_dwell_time"] >= 90  # computed when read: it grows while the task waits
    time.sleep(1.1)
    assert summary_of(admin, item).json()["current_task_record_dwell_time"] > row["current_task_record_dwell_time"]

    note = admin.post("/comment/", json={"related_table_name": "prep_task_record", "text": "needs a closer look",
                                         "related_uuid": uris.parse_uri(tasks[0])[1]})
    assert note.status_code == 201, note.text
    assert summary_of(admin, item).json()["current_task_record_comments"] == ["needs a closer look"]

    done = datetime.now(timezone.utc).isoformat()
    with system.rpc() as rpc:
        rpc.production.update("prep-task-record", uris.parse_uri(tasks[0])[1], {"status": "complete",
                                                                              "end_time": done}, command())
    row = eventually(lambda: summary_of(admin, item).json()["current_task_position"] == 1
                     and summary_of(admin, item).json())
    assert (row["current_task_name"], row["current_task_position"]) == ("Quote check", 1)
    assert row["prior_task_record_completion_date"] == done
    assert row["prep_workflow_first_task_record_complete"] == done
    assert row["current_task_record_comments"] == []

    assert admin.post("/flat-summary-line-item-tasks/", json={}).status_code == 405
    listed = admin.get(f"/flat-summary-line-item-tasks/?filter[order_uuid]={uris.parse_uri(order)[1]}").json()
    assert [r["line_item_uuid"] for r in listed["resources"]] == [uris.parse_uri(item)[1]]
