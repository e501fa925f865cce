"""The materials service (see ../shared/DESIGN.md for what it owns). The rules live in the resources' classes:
receiving in services.materials.domain, the batch-action ledger in services.materials.actions; the genealogy is
built on read from the edges the actions write (services.materials.genealogy)."""
from services.materials import genealogy
from services.materials.actions import MaterialBatchAction
from services.materials.domain import (MaterialBatch, MaterialContainer, MaterialLot, MaterialLotAction,
                                       MaterialPurchaseOrder)
from shared.application import ResourceApplication
from shared.registry import resource_classes


class Materials(ResourceApplication):
    name = "materials"
    aggregates = resource_classes("materials", [MaterialPurchaseOrder, MaterialLot, MaterialLotAction,
                                                MaterialContainer, MaterialBatch, MaterialBatchAction])

    def genealogy(self, batch_uuid, ctx):
        """The /material-genealogy/ document of a batch (its uuid), walked from its edges now."""
        return genealogy.genealogy_or_404(self, batch_uuid, ctx)
