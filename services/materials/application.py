"""The materials service (see ../shared/DESIGN.md for what it owns). The rules live in the resources' classes:
receiving in services.materials.domain, the batch-action ledger in services.materials.actions; the genealogy is
built on read from the edges the actions write (services.materials.genealogy); runs' consumption comes from
production's feed and the batches' unloads (services.materials.consumption)."""
from eventsourcing.application import AggregateNotFoundError

from services.materials import consumption, genealogy
from services.materials.actions import MaterialBatchAction
from services.materials.container_actions import MaterialContainerAction
from services.materials.domain import (MaterialBatch, MaterialContainer, MaterialLot, MaterialLotAction,
                                       MaterialPurchaseOrder)
from services.materials.genealogy_projection import GenealogyProjection
from services.materials.locations import Location
from services.materials.reports import MaterialBatchTraceabilityReport, TraceabilityReport
from services.materials.stock import MaterialStockAction, Stock
from shared.application import ResourceApplication
from shared.follower import FeedFollower
from shared.registry import resource_classes
from shared.resource import Resource

INTERNAL = {"platform_admin": True}


class Materials(FeedFollower, ResourceApplication):
    name = "materials"
    aggregates = resource_classes("materials", [MaterialPurchaseOrder, MaterialLot, MaterialLotAction,
                                                MaterialContainer, MaterialBatch, MaterialBatchAction,
                                                MaterialContainerAction,
                                                Stock, MaterialStockAction, MaterialBatchTraceabilityReport,
                                                TraceabilityReport, Location])
    # which batches are (or were) loaded in a printer: a completed run's printer names the batches it printed from
    indexed_references = (("material-batch", "at_machine"),
                          # a stock's lots: those of its material at its location (services.materials.stock)
                          ("material-lot", "location"),
                          # the notifications service finds a location's settings row by its location
                          ("location-settings", "location"))

    def genealogy(self, batch_uuid, ctx):
        """The /material-genealogy/ document of a batch (its uuid), walked from its edges now."""
        return genealogy.genealogy_or_404(self, batch_uuid, ctx)

    def create_extra_tables(self):
        """Migrate step (shared.eventstore.create_store): the genealogy projection's tables."""
        GenealogyProjection(self).create_tables()

    def batch_residency(self, batch_uuid, ctx):
        """Where a batch has sat (materials.md H2, §3.8 relocate): [{"sub_location", "since", "until"}] in time order,
        read from the batch's own events (its creation and each change of `sub_location`, at the time it was
        recorded); `until` is None for where it is now, and time outside any sub-location is left out. The capture
        service joins these intervals with the sub-locations' sensor readings (/material_batch_sensor_data/)."""
        batch = self.load("material-batch", batch_uuid, ctx)  # another bureau's or no batch: NotFound
        intervals, current, since = [], None, None
        for event in self.events.get(batch.id):
            fields = event.fields if isinstance(event, Resource.Created) else getattr(event, "changes", None)
            if not isinstance(fields, dict) or "sub_location" not in fields or fields["sub_location"] == current:
                continue
            at = event.timestamp.isoformat()
            if current:
                intervals.append({"sub_location": current, "since": since, "until": at})
            current, since = fields["sub_location"], at
        if current:
            intervals.append({"sub_location": current, "since": since, "until": None})
        return intervals

    # -- following production's feed (F3: shared.follower keeps the position) -----------------------------------------

    def apply_feed(self, application, feed):
        """One batch of production's feed: completed runs noted on the batches loaded in their printers."""
        return self.follow_batch(application, feed, lambda batch, event: consumption.apply_event(
            batch, event, self.loaded_at))

    def loaded_at(self, printer_path):
        return [found["uri"] for found in self.referencing("material-batch", "at_machine", printer_path, INTERNAL)]

    def run_consumption(self, consumption_id):
        """A RunConsumption, or None."""
        try:
            return consumption.consumption_of(self, consumption_id)
        except (AggregateNotFoundError, ValueError):
            return None

    def consumption_sent(self, consumption_id, additive_path):
        """Production has the consumption as its run actuals' additive part: noted, so the sweeper lets it be."""
        found = self.run_consumption(consumption_id)
        if found is None or found.sent:
            return None
        found.mark_sent(additive_path)
        return max(r.notification.id for r in self.save(found))
