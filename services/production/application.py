"""The production application: workstations, workflows, pieces and prints (services.production.domain), runs and
their actuals (services.production.runs), the orders feed it follows to plan pieces and prints
(services.production.planning) and the capture feed it follows to move runs by their machines' builds
(services.production.builds)."""
from services.production import builds
from services.production.capacity import Downtime, Labor, WorkSchedule
from services.production.create_runs import CreateRuns, PackingProcess
from services.production.domain import (OPERATIONS, Piece, PostProcessor, PostProcessorType, Print, Printer,
                                        PrinterType, ProcessStep, Workflow)
from services.production.packing.layout import Layout
from services.production.planning import WorkflowUsage, apply_event
from services.production.queue import RunQueue
from services.production.rework import RunTransformation
from services.production.runs import Run, RunActuals
from services.production.schedule_runs import ScheduleRuns
from shared.application import ResourceApplication
from shared.errors import NotFound
from shared.follower import FeedFollower
from shared.registry import resource_classes
from shared.uris import parse_uri

INTERNAL = {"platform_admin": True}


class Production(FeedFollower, ResourceApplication):
    name = "production"
    aggregates = resource_classes("production", [PrinterType, Printer, PostProcessorType, PostProcessor,
                                                 ProcessStep, Workflow, Piece, Print, Run, RunActuals,
                                                 Layout,  # Layout: /layout/ (services/production/packing)
                                                 RunTransformation,  # /run-transformation/ (rework.py)
                                                 # queue and schedule (queue.py, schedule_runs.py, capacity.py)
                                                 RunQueue, ScheduleRuns, Downtime, WorkSchedule, Labor,
                                                 CreateRuns, PackingProcess])  # create_runs.py
    indexed_references = (
        ("print", "line_item"),  # a line item's prints: orders' delete rule asks for them
        ("piece", "line_item"),
        ("printer", "printer_type"), ("post-processor", "post_processor_type"),  # the types' delete guards
        ("process-step", "workstation_type_uri"),
        ("run", "post_processor_type"), ("run", "shipping"),  # open runs a create-runs may infill (create_runs_job)
        ("post-processor-type", "special_type"),  # the bureau's non-conformance review station (rework.py)
        # names unique in a bureau (the reference's "… name already exists.")
        ("printer-type", "name"), ("printer", "name"), ("post-processor-type", "name"), ("post-processor", "name"),
        ("process-step", "name"), ("workflow", "name"),
        # the scheduler's inputs per workstation and per workstation type (services.production.scheduler)
        ("downtime", "printer"), ("downtime", "post_processor"),
        ("work-schedule", "printer_type"), ("work-schedule", "post_processor_type"),
        ("labor", "printer_type"), ("labor", "post_processor_type"),
    )

    # -- following the orders feed (F1: shared.follower keeps the position) ------------------------------------------

    def apply_feed(self, application, feed, describe_model):
        """One batch of the orders feed, planned (services.production.planning) with the position reached."""
        return self.follow_batch(application, feed, lambda batch, event: apply_event(batch, event, describe_model))

    def apply_capture_feed(self, feed):
        """One batch of the capture feed: builds move their runs (F6 step 5), with the position reached."""
        return self.follow_batch("capture", feed, builds.apply_event)

    # -- facts for other services' rules ------------------------------------------------------------------------------

    def workflow_facts(self, workflow_path, ctx):
        """What the orders service checks when a line item using this workflow is confirmed: its type and the
        workstation types (and operations) of its steps; None when the caller cannot see it."""
        try:
            workflow = self.load("workflow", parse_uri(workflow_path)[1], ctx)
        except (NotFound, ValueError, TypeError):
            return None
        steps = workflow.step_facts(lambda p: self._get_path(p))
        return {"type": workflow.fields.get("type") or "additive_manufacturing",
                "usage_state": workflow.fields.get("usage_state"),
                "workstation_types": [s[2] for s in steps], "operations": [s[3] for s in steps],
                "has_printer_type": any(parse_uri(s[2])[0] == "printer-type" for s in steps)}

    def workflow_users(self, workflow_path):
        try:
            return dict(self.repository.get(WorkflowUsage.id_for(workflow_path)).line_items)
        except Exception:
            return {}

    def _get_path(self, path):
        from shared.application import Unit
        return Unit(self, INTERNAL).get(path)


__all__ = ["Production", "OPERATIONS"]
