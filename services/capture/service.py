from services.capture.application import Capture
from shared.eventstore import EventStore
from shared.service import ResourceService


class CaptureService(ResourceService):
    name = "capture"
    app = EventStore(Capture)
