"""The lot index by location (services.materials.stock: a stock's lots) for lots saved before it existed: the
migrate step indexes every lot of the store under its current location and brings each stock's `material_lots` and
`on_order_quantity` up to date with them. Idempotent (a path already indexed is not added again, a stock already
current records nothing). It runs once per store: its end is recorded (DONE), so later migrate steps do not read the
whole log again at every start; lots saved since are indexed as they are saved. A step that dies half-way runs again."""
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from shared.resource import UniqueKey
from shared.topics import legacy_topics, topic_of
from shared.uris import parse_uri

PAGE = 1_000
DONE = ("migration", "materials:lot-location-index:1")


def index_lots(app):
    """Index the store's lots and refresh their stocks, once; returns how many lots were read (None: done before)."""
    try:
        app.repository.get(UniqueKey.id_for(*DONE))
        return None
    except AggregateNotFoundError:
        pass
    from services.materials.domain import MaterialLot
    from services.materials.stock import refresh_stock_of
    aggregate_topics = [topic_of(MaterialLot), *legacy_topics("materials", MaterialLot.resource)]
    topics = [f"{aggregate_topics[0]}/Created"] + [f"{old}.Created" for old in aggregate_topics[1:]]
    loaded = {}

    def find(path):
        try:
            uuid = UUID(parse_uri(path)[1])
        except (TypeError, ValueError):
            return None
        if uuid not in loaded:
            try:
                loaded[uuid] = app.repository.get(uuid)
            except AggregateNotFoundError:
                loaded[uuid] = None
        return loaded[uuid]

    position, lots = 0, []
    while True:
        notifications = app.recorder.select_notifications(start=position + 1, limit=PAGE, topics=topics)
        found = [app.repository.get(n.originator_id) for n in notifications]
        lots += [lot for lot in found if not lot.deleted]
        entries = app._index_entries(found)
        if entries:
            app.save(*entries)
        if len(notifications) < PAGE:
            break
        position = notifications[-1].id
    refreshed = {}
    for lot in lots:
        key = (lot.bureau, lot.fields.get("material"), lot.fields.get("location"))
        if key not in refreshed:
            refreshed[key] = refresh_stock_of(lot, find, app.repository, None)
    stocks = [s for changed in refreshed.values() for s in changed]
    if stocks:
        app.save(*stocks)
    try:
        app.save(UniqueKey.claim(*DONE, {"lots": len(lots)}))
    except IntegrityError:  # another migrate step finished it at the same time
        pass
    return len(lots)
