"""Endpoints whose path carries a parameter other than a resource uuid, or that speak to the outside world.

Each answers what is true on this deployment: a missing prerequisite is the caller's 4xx (no Fusion hub connected,
no such OAuth provider, no such sub-location); what would need a third party that Stratum cannot reach yet is a
plain 501 naming the endpoint.
"""
from gateway import listing
from shared import catalogue, uris
from shared.errors import InvalidPayload, NotFound, NotImplementedYet


def fusion_hub_projects(read, caller, values):
    settings = catalogue.resource("fusion-settings")
    rows, connected = read.store.documents(settings, caller.bureau, listing.parse(settings, ""))
    if not connected:
        raise InvalidPayload("No Fusion hub is connected for your bureau: set it up with POST /fusion-settings/ first.",
                             field="hub_id")
    if values.get("hub_id") not in {row.doc.get("hub_id") for row in rows}:
        raise NotFound(f"Your bureau's Fusion settings name no hub '{values.get('hub_id')}'.")
    raise NotImplementedYet("Listing a Fusion hub's projects needs Autodesk's API, which is not wired in yet.")


def oauth_authorize(read, caller, values):
    raise NotFound(f"No OAuth provider '{values.get('provider')}' is configured for this deployment.")


def sub_location_stock(read, caller, values):
    if read.store.document(uris.resource_path("sub-location", values.get("uuid")), caller.bureau) is None:
        raise NotFound("The requested sub-location cannot be found.")
    raise NotImplementedYet("Stock per sub-location is not projected yet.")


def content(read, caller, values):
    raise NotFound("The requested content cannot be found.")  # no blobs are stored until the files service does


HANDLERS = {
    "fusion-settings/hubs/projects": fusion_hub_projects,
    "oauth/authorize": oauth_authorize,
    "stock-summary/sub-location/stock": sub_location_stock,
    "content": content,
}
