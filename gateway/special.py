"""Endpoints whose path carries a parameter other than a resource uuid, or that speak to the outside world.

Each answers what is true on this deployment: a missing prerequisite is the caller's 4xx (no Fusion hub connected,
no such OAuth provider, no such sub-location); what would need a third party that Stratum cannot reach yet is a
plain 501 naming the endpoint.
"""
from gateway import listing
from gateway.http import json_response
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


LOT_ON_HAND = ("received", "in_testing", "available", "in_storage", "in_use")  # materials.md §6.4: material there


def _all(read, resource, bureau, field, value):
    """(path, document) of every `resource` visible to `bureau` whose `field` is `value`, page after page."""
    spec = catalogue.resource(resource)
    query = listing.ListQuery(filters=[listing.Filter(field, "in", [value])], limit=listing.MAX_LIMIT)
    while True:
        page = read.store.documents(spec, bureau, query)
        yield from ((row.path, row.doc) for row in page.rows)
        if not page.next:
            return
        query = listing.ListQuery(filters=query.filters, limit=query.limit, after=page.next)


def sub_location_stock(read, caller, values):
    """materials.md §3.16: one row per stock of the sub-location's location, each with what is in the sub-location
    of the stock's material: available quantity in its batches (not done), quantity still in the containers of its
    lots on hand that no batch took yet (so no gram counts twice), full quantity of its lots on order. Read from the projected lots and batches (the ledgers' folds); a
    batch's material is its lots'. Quantities are added as stored: a material's lots and batches share its units."""
    sub_path = uris.resource_path("sub-location", values.get("uuid"))
    sub = read.store.document(sub_path, caller.bureau)
    if sub is None:
        raise NotFound("The requested sub-location cannot be found.")
    lots, available, on_order, in_batches = {}, {}, {}, {}
    for lot_path, lot in _all(read, "material-lot", caller.bureau, "sub_location", sub_path):
        lots[lot_path] = lot
        material = lot.get("material")
        if lot.get("status") in LOT_ON_HAND:  # what is still in its containers, not yet in a batch
            free = (read.store.document(c, caller.bureau) or {} for c in
                    lot.get("containers_available_for_initial_batches") or [])
            available[material] = available.get(material, 0.0) + sum(float(c.get("quantity") or 0) for c in free)
        elif lot.get("status") == "on_order":
            on_order[material] = on_order.get(material, 0.0) + float(lot.get("full_quantity") or 0)
    for _, batch in _all(read, "material-batch", caller.bureau, "sub_location", sub_path):
        if batch.get("status") == "done":
            continue
        for material in _materials_of(read, caller, batch, lots):
            in_batches[material] = in_batches.get(material, 0.0) + float(
                batch.get("quantity_available_for_actions") or 0)
    base = values.get("base") or ""
    rows = []
    for stock_path, stock in _all(read, "stock", caller.bureau, "location", sub.get("location")):
        material = stock.get("material")
        rows.append({"stock": uris.absolute(base, stock_path), "sub_location": uris.absolute(base, sub_path),
                     "batches_quantity_available": round(in_batches.get(material, 0.0), 6),
                     "material_lot_quantity_available": round(available.get(material, 0.0), 6),
                     "material_lot_quantity_on_order": round(on_order.get(material, 0.0), 6)})
    rows.sort(key=lambda row: row["stock"])
    return json_response({"resources": rows, "total_count": len(rows),
                          "meta": {"total_count_is_estimate": False, "next": None}})


def _materials_of(read, caller, batch, lots):
    found = set()
    for lot_path in batch.get("material_lots") or []:
        if lot_path not in lots:
            lots[lot_path] = read.store.document(lot_path, caller.bureau) or {}
        if lots[lot_path].get("material"):
            found.add(lots[lot_path]["material"])
    return found


def content(read, caller, values):
    raise NotFound("The requested content cannot be found.")  # no blobs are stored until the files service does


HANDLERS = {
    "fusion-settings/hubs/projects": fusion_hub_projects,
    "oauth/authorize": oauth_authorize,
    "stock-summary/sub-location/stock": sub_location_stock,
    "content": content,
}
