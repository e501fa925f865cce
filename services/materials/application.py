"""The materials service (see ../shared/DESIGN.md for what it owns). The rules live in the resources' classes:
receiving in services.materials.domain, the batch-action ledger and genealogy in services.materials.actions."""
from services.materials.actions import MaterialBatchAction
from services.materials.domain import (MaterialBatch, MaterialContainer, MaterialLot, MaterialLotAction,
                                       MaterialPurchaseOrder)
from shared.application import ResourceApplication
from shared.registry import resource_classes


class Materials(ResourceApplication):
    name = "materials"
    aggregates = resource_classes("materials", [MaterialPurchaseOrder, MaterialLot, MaterialLotAction,
                                                MaterialContainer, MaterialBatch, MaterialBatchAction])
