from services.production.application import Production
from services.production.packing.service import LayoutJobs
from shared.eventstore import EventStore
from shared.service import ResourceService


class ProductionService(LayoutJobs, ResourceService):  # LayoutJobs: /layout/'s background job
    name = "production"
    app = EventStore(Production)
