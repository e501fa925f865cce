from services.materials.application import Materials
from shared.eventstore import EventStore
from shared.service import ResourceService


class MaterialsService(ResourceService):
    name = "materials"
    app = EventStore(Materials)
