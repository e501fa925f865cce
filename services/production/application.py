"""The production application: workstations, workflows, pieces and prints (services.production.domain), and the
orders feed it follows to plan pieces and prints (services.production.planning)."""
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError, Tracking

from services.production.domain import (OPERATIONS, Piece, PostProcessor, PostProcessorType, Print, Printer,
                                        PrinterType, ProcessStep, Workflow)
from services.production.packing.layout import Layout
from services.production.planning import Batch, WorkflowUsage, apply_event
from shared.application import ResourceApplication
from shared.errors import NotFound
from shared.registry import resource_classes
from shared.uris import parse_uri

INTERNAL = {"platform_admin": True}


class Production(ResourceApplication):
    name = "production"
    aggregates = resource_classes("production", [PrinterType, Printer, PostProcessorType, PostProcessor,
                                                 ProcessStep, Workflow, Piece, Print,
                                                 Layout])  # Layout: /layout/ (services/production/packing)
    indexed_references = (
        ("print", "line_item"),  # a line item's prints: orders' delete rule asks for them
        ("piece", "line_item"),
        ("printer", "printer_type"), ("post-processor", "post_processor_type"),  # the types' delete guards
        ("process-step", "workstation_type_uri"),
        # names unique in a bureau (the reference's "… name already exists.")
        ("printer-type", "name"), ("printer", "name"), ("post-processor-type", "name"), ("post-processor", "name"),
        ("process-step", "name"), ("workflow", "name"),
    )

    def construct_recorder(self):
        """A process recorder: the events of a feed batch and the position reached in that feed are recorded in one
        transaction (the tracking table the migrate step creates)."""
        return self.factory.process_recorder()

    # -- following other services' feeds ----------------------------------------------------------------------------

    def position(self, application):
        return self.recorder.max_tracking_id(application) or 0

    def apply_feed(self, application, feed, describe_model):
        """Apply one batch of `application`'s feed (events after our position) with the new position, atomically.
        Returns the position now held. A batch that starts beyond our position (a gap) or ends at or below it (a
        repeat) changes nothing; a concurrent follower that got there first makes the write fail, and the batch is
        simply not ours to apply any more."""
        position = self.position(application)
        last = feed.get("last")
        if last is None or last <= position:
            return position
        # the caller pulled from our position + 1, so the batch is contiguous with what we hold; a concurrent
        # follower may have moved on meanwhile: what it applied is skipped
        events = [e for e in feed["events"] if e["position"] > position]
        batch = Batch(self)
        for event in events:
            apply_event(batch, event, describe_model)
        changed = batch.changed()
        processing = ProcessingEvent(tracking=Tracking(application_name=application, notification_id=last))
        processing.collect_events(*changed, *self._index_entries(changed))
        try:
            recordings = self._record(processing)
        except IntegrityError:
            return self.position(application)
        self._notify(recordings)
        return last

    def latest_position(self):
        return self.recorder.max_notification_id() or 0

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
