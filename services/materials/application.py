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
from services.materials.locations import Location
from services.materials.reports import MaterialBatchTraceabilityReport, TraceabilityReport
from services.materials.stock import MaterialStockAction, Stock
from shared.application import ResourceApplication
from shared.follower import FeedFollower
from shared.registry import resource_classes

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
