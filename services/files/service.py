from services.files.application import Files
from shared.eventstore import EventStore
from shared.service import ResourceService


class FilesService(ResourceService):
    name = "files"
    app = EventStore(Files)
