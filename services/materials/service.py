from services.materials.application import Materials
from shared.eventstore import EventStore
from shared.service import ResourceService, rpc


class MaterialsService(ResourceService):
    name = "materials"
    app = EventStore(Materials)

    @rpc
    def genealogy(self, batch_uuid, ctx):
        """GET /material-genealogy/ (the gateway asks; the trees are built on read, services.materials.genealogy)."""
        return self.app.genealogy(batch_uuid, ctx)
