from services.production.application import Production
from shared.eventstore import EventStore
from shared.service import ResourceService


class ProductionService(ResourceService):
    name = "production"
    app = EventStore(Production)
