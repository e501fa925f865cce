"""The run-schedule view (production.md §2.3 orphan list, "queued stages runs list"; §13): one row per run with the
dates the scheduler wrote on it (services.production.scheduler: estimated_start, estimated_end,
workstation_queue_position, schedule_uuid). The row's `uri` is the run's (gateway.rendering.URI_FIELD); it is kept
under the run's uuid at /run-schedule/<uuid>/ and recomputed from the run's document whenever the run changes."""
from gateway.viewstore import delete_view, upsert_view
from shared.uris import resource_path, uuid_of

RUN_FIELDS = ("name", "notes", "operation", "post_processor", "post_processor_type", "printer", "printer_type",
              "priority", "shipping", "status", "updated", "estimated_start", "estimated_end",
              "workstation_queue_position", "schedule_uuid", "workstation_name", "workstation_type_name",
              "workstation_uri", "location")


def refresh_run_schedule(batch, event, path, bureau, before, after):
    target = resource_path("run-schedule", uuid_of(path))
    if after is None:
        delete_view(batch, target)
        return
    row = {name: after.get(name) for name in RUN_FIELDS}
    # the run's own documents only: a row made from another feed's document (the order's customer_id) would differ
    # between a live read side and one rebuilt in another order, since an order's change does not reach this row
    row.update(uri=path, bureau=bureau, id=after.get("id") or uuid_of(path), customer_id=after.get("customer_id"))
    upsert_view(batch, target, "run-schedule", bureau, row, after.get("created"))


VIEWS = {"run": (refresh_run_schedule,)}
DERIVED_PATHS = {"run": (lambda path: [resource_path("run-schedule", uuid_of(path))],)}
