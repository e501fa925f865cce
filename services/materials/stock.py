"""Stock (materials.md §3.13, §3.15, §6.5): material on hand at a location, one stock per (material, location) in a
bureau, its quantity the fold of its append-only ledger (`/material-stock-action/`: consume, replenish, reconcile).

A stock is created with its opening quantity (default 0); from then on only a stock action moves it: `quantity` on a
PUT is refused (reconcile with a counted quantity instead), so the stock's quantity always equals its opening
quantity plus the ledger. Each action records the quantity after it (`quantity`), and the stock records it as a
named event (StockConsumed, StockReplenished, StockReconciled). When an action or a raised `stock_min` takes the
quantity from at or above its minimum to under it, the stock records `StockBelowMinimum` {quantity, stock_min} in
the materials feed (the notifications service may mail it: `nautilus.stock_available_below_min_quantity`).

Open question the map leaves (§3.13): consuming more than the stock holds. Here it is a 400 naming the stock and
the numbers, as every other quantity rule of the area (§2.2); a stock reaching 0 is `exhausted`. A run's consumption
that production's feed reports (F6, services.materials.consumption) is a fact, not a request: it is recorded, the
stock stops at 0 and the action's metadata says how much was missing (`shortfall`).

The stock's lots (§3.15–3.16): `material_lots` are the lots of its material at its location (in the order they were
created, returned ones left out), `on_order_quantity` the full quantity of those still on order (purchase orders not
yet received), in the material's units. Both are computed: a lot's creation, status change or container change
updates its stock in the same transaction, and a stock created after its lots finds them (the lot index by location).

A consume draws from the stock's lots first in, first out (F6): each lot gives at most its full quantity less what
earlier consumes drew from it; `/material-stock-action-relationship/` rows record the draw (source: the lot) and,
for a consume by a run, the share of each of the run's pieces (destination) — lot → piece genealogy for
stock-tracked materials (§3.14, §5 item 7).
"""
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from uuid import uuid5

from services.materials.consumption import PrintingRun, run_pieces
from services.materials.units import EPSILON, convert, rounded
from services.materials.work import Work, path, path_of
from shared.errors import InvalidPayload
from shared.index import ReferenceIndex
from shared.resource import Resource, UniqueKey

DUPLICATE = "A stock with requested material and location already exists (this pair should be unique)."
FIXED = ("material", "location")
COMPUTED = ("on_order_quantity", "material_lots")
LOT_ON_HAND = ("received", "in_testing", "available", "in_storage", "in_use")  # a consume may draw from these
NOT_THE_STOCKS = ("return_to_supplier",)  # a lot sent back is no lot of the stock


def status_of(quantity, track_quantity=True):
    """§6.5 [inferred]: exhausted at 0 or less (when the quantity is tracked), available otherwise."""
    return "exhausted" if track_quantity is not False and quantity <= EPSILON else "available"


def falls_below(before, after, minimum):
    """A stock falls under its minimum when it was at or above it (or had none) and is now under it."""
    if minimum is None:
        return False
    return after < minimum - EPSILON and not (before is not None and before < minimum - EPSILON)


def _number(value, name, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidPayload(f"'{name}' must be a number, 0 or more, not {value!r}.", field=name)
    return float(value)


class Stock(Resource):
    resource = "stock"
    # _units: the material's units (the stock's quantities are in them); _drawn: {lot: quantity consumes drew}
    private_fields = ("_units", "_drawn")

    class Consumed(Resource.Updated):
        pass

    class Replenished(Resource.Updated):
        pass

    class Reconciled(Resource.Updated):
        pass

    class BelowMinimum(Resource.Updated):
        """{quantity, stock_min} at the moment the stock fell under its minimum (the fields do not change)."""

    @classmethod
    def on_create(cls, unit, new_id, fields):
        work = Work(unit)
        material = work.visible("material", fields["material"], "material")
        location = work.visible("location", fields["location"], "location")
        quantity = _number(fields.get("quantity", 0.0) or 0.0, "quantity")
        for name in ("stock_min", "stock_max", "on_order_quantity"):
            _number(fields.get(name), name)
        claim = claim_pair(unit, new_id, path(material), path(location))
        track = fields.get("track_quantity", True)
        units = material.fields.get("units") or "cm3"
        lots = lots_at(work.find, unit.app.repository, unit.bureau, path(material), path(location))
        computed = lot_fields(lots, units)
        _check_computed(fields, computed)
        fields = dict(fields, material=path(material), location=path(location), quantity=rounded(quantity),
                      material_type=material.fields.get("type"), status=status_of(quantity, track),
                      material_batches=[], _units=units, _drawn={}, **computed)
        return fields, [claim], {}

    def update(self, changes, actor):
        for name in FIXED:
            if name in changes and changes[name] is not None and _path_or_value(changes[name]) != self.fields.get(
                    name):
                raise InvalidPayload(f"The {name} of a stock cannot change: create the stock of the new {name} "
                                     f"(the pair is unique).", field=name)
        changes = {k: v for k, v in changes.items() if k not in FIXED}
        if "quantity" in changes and changes["quantity"] is not None and abs(
                float(changes["quantity"]) - float(self.fields.get("quantity") or 0)) > EPSILON:
            raise InvalidPayload("A stock's quantity moves only by /material-stock-action/ (consume, replenish, "
                                 "or reconcile with metadata.counted_quantity).", field="quantity")
        changes.pop("quantity", None)
        _check_computed(changes, {k: self.fields.get(k) for k in COMPUTED})
        changes = {k: v for k, v in changes.items() if k not in COMPUTED}
        for name in ("stock_min", "stock_max"):
            if name in changes:
                _number(changes[name], name)
        before_min = self.fields.get("stock_min")
        super().update(changes, actor)
        quantity = float(self.fields.get("quantity") or 0)
        minimum = self.fields.get("stock_min")
        if self._tracked and minimum is not None and quantity < minimum - EPSILON and not (
                before_min is not None and quantity < before_min - EPSILON):
            self._below_minimum(actor)

    @property
    def _tracked(self):
        return self.fields.get("track_quantity", True) is not False

    def record(self, action_type, resulting, actor):
        """A stock action's effect: the quantity after it (and the status), then StockBelowMinimum if it fell."""
        before = float(self.fields.get("quantity") or 0)
        event = {"consume": self.Consumed, "replenish": self.Replenished, "reconcile": self.Reconciled}[action_type]
        self.trigger_event(event, changes={"quantity": rounded(resulting),
                                           "status": status_of(resulting, self.fields.get("track_quantity"))},
                           actor=actor)
        if self._tracked and falls_below(before, resulting, self.fields.get("stock_min")):
            self._below_minimum(actor)

    def refresh_lots(self, lots, actor):
        """§3.15: the stock's lots and what of them is on order, from the lots of its material at its location."""
        Resource.update(self, lot_fields(lots, self.fields.get("_units")), actor)

    def draw(self, quantity, find, actor):
        """F6: take `quantity` from the stock's lots on hand, first in first out; [(lot, quantity)] drawn (less than
        asked when the lots hold less: the rest was stock no lot accounts for, an opening quantity)."""
        drawn = dict(self.fields.get("_drawn") or {})
        taken, wanted = [], quantity
        for lot_path in self.fields.get("material_lots") or []:
            if wanted <= EPSILON:
                break
            lot = find(lot_path)
            if lot is None or lot.deleted or lot.fields.get("status") not in LOT_ON_HAND:
                continue
            left = _in_units(lot.fields.get("full_quantity") or 0, lot, self.fields.get("_units")) - drawn.get(
                lot_path, 0.0)
            share = min(left, wanted)
            if share > EPSILON:
                drawn[lot_path] = rounded(drawn.get(lot_path, 0.0) + share)
                taken.append((lot_path, rounded(share)))
                wanted -= share
        if taken:
            Resource.update(self, {"_drawn": drawn}, actor)
        return taken

    def _below_minimum(self, actor):
        # the same values again: nothing changes, the event is the fact (a plain update of equal values records
        # nothing, so the event is triggered as it is)
        self.trigger_event(self.BelowMinimum, changes={"quantity": self.fields.get("quantity"),
                                                       "stock_min": self.fields.get("stock_min")}, actor=actor)


def _path_or_value(value):
    try:
        from shared.uris import normalise
        return normalise(value)
    except (TypeError, ValueError):
        return value


def claim_pair(unit, stock_id, material_path, location_path):
    """The (material, location) pair claimed in the bureau; a pair whose stock was deleted is claimed again under a
    key that names the deleted holder (a claim is never released, so each deletion moves the key on)."""
    key = f"{unit.bureau}:{material_path}:{location_path}"
    while True:
        holder = _holder(unit, key)
        if holder is None:
            return unit.claim_unique("stock-pair", key, {"stock_id": str(stock_id)}, DUPLICATE, "material")
        try:
            held = unit.app.repository.get(UUID(holder))
        except AggregateNotFoundError:
            held = None
        if held is not None and not held.deleted:
            raise InvalidPayload(DUPLICATE, field="material")
        key = f"{key}:{holder}"


def _holder(unit, key):
    return _holder_in(unit.app.repository, key)


def _holder_in(repository, key):
    try:
        return repository.get(UniqueKey.id_for("stock-pair", key)).value["stock_id"]
    except AggregateNotFoundError:
        return None


def stock_at(find, repository, bureau, material_path, location_path):
    """The live stock of (material, location) in a bureau, or None (the pair's claims, as claim_pair makes them)."""
    key = f"{bureau}:{material_path}:{location_path}"
    while True:
        holder = _holder_in(repository, key)
        if holder is None:
            return None
        found = find(f"/stock/{holder}/")
        if found is not None and not found.deleted:
            return found
        key = f"{key}:{holder}"


def lots_at(find, repository, bureau, material_path, location_path, current=()):
    """The lots of a material at a location in a bureau, oldest first (the lot index by location); `current`: lots
    of this command, as they are now (a new one is not in the index yet)."""
    try:
        paths = list(repository.get(ReferenceIndex.id_for("material-lot", "location", location_path)).paths)
    except AggregateNotFoundError:
        paths = []
    mine = {path(lot): lot for lot in current}
    paths += [p for p in mine if p not in paths]
    lots = []
    for lot_path in paths:
        lot = mine.get(lot_path) or find(lot_path)
        if lot is None or lot.deleted or lot.bureau != bureau:
            continue
        if lot.fields.get("material") == material_path and lot.fields.get("location") == location_path:
            lots.append(lot)
    return lots


def lot_fields(lots, units):
    listed = [lot for lot in lots if lot.fields.get("status") not in NOT_THE_STOCKS]
    on_order = sum(_in_units(lot.fields.get("full_quantity") or 0, lot, units) for lot in listed
                   if lot.fields.get("status") == "on_order")
    return {"material_lots": [path(lot) for lot in listed], "on_order_quantity": rounded(on_order)}


def refresh_stock_of(lot, find, repository, actor):
    """A lot changed (created, status, containers): its stock's lots and on-order quantity follow; the stock, when
    it changed, to be saved with the lot."""
    material, location = lot.fields.get("material"), lot.fields.get("location")
    stock = stock_at(find, repository, lot.bureau, material, location)
    if stock is None:
        return []
    stock.refresh_lots(lots_at(find, repository, lot.bureau, material, location, current=[lot]), actor)
    return [stock] if stock.pending_events else []


def _in_units(quantity, lot, units):
    if not units or lot.fields.get("units") in (None, units):
        return float(quantity)
    try:
        return convert(quantity, lot.fields["units"], units, lot.fields.get("_density"))
    except InvalidPayload:  # a lot the material's units cannot express (no density): counted as it is
        return float(quantity)


def _check_computed(given, computed):
    for name in COMPUTED:
        value = given.get(name)
        if value is not None and value != computed.get(name) and not (
                name == "on_order_quantity" and isinstance(value, (int, float)) and not isinstance(value, bool)
                and abs(float(value) - float(computed.get(name) or 0)) <= EPSILON):
            raise InvalidPayload(f"A stock's {name} is computed from the lots of its material at its location "
                                 f"({computed.get(name)!r} now); it cannot be set.", field=name)


class MaterialStockAction(Resource):
    """One entry of a stock's ledger (§3.13). `action_quantity` is the action's magnitude; `quantity` the stock's
    quantity after it. Reconcile takes the counted quantity (`metadata.counted_quantity`) and records
    |counted − before| as its magnitude."""

    resource = "material-stock-action"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        work = Work(unit)
        stock = work.visible("stock", fields["source_stock"], "source_stock")
        kind = fields["action_type"]
        before = float(stock.fields.get("quantity") or 0)
        metadata = dict(fields.get("metadata") or {})
        if kind == "reconcile":
            counted = _number(metadata.get("counted_quantity"), "metadata.counted_quantity", allow_none=False) \
                if "counted_quantity" in metadata else None
            if counted is None:
                raise InvalidPayload("A reconcile needs the counted quantity: metadata.counted_quantity.",
                                     field="metadata")
            after, magnitude = counted, abs(counted - before)
        else:
            magnitude = _number(fields.get("action_quantity"), "action_quantity", allow_none=False)
            if magnitude <= 0:
                raise InvalidPayload(f"'action_quantity' must be more than 0, not {magnitude:g}.",
                                     field="action_quantity")
            after = before + magnitude if kind == "replenish" else before - magnitude
            if after < -EPSILON:
                raise InvalidPayload(f"Cannot consume {magnitude:g} from the stock {path(stock)}: it holds "
                                     f"{before:g}.", field="action_quantity")
        run = path_of(fields["run"], "run", "run") if fields.get("run") else None
        if run and kind != "consume":
            raise InvalidPayload(f"Only a consume is by a run, not a {kind}.", field="run")
        stock.record(kind, max(after, 0.0), unit.actor)
        if kind == "consume":  # F6: drawn from the stock's lots, and into the run's pieces when the feed named them
            relate(work.new, work.find, stock, f"/material-stock-action/{new_id}/", new_id, magnitude, run,
                   pieces_of(work, run, stock.fields.get("material")) if run else [], unit.actor)
        fields = dict(fields, source_stock=path(stock), action_quantity=rounded(magnitude), run=run,
                      quantity=rounded(max(after, 0.0)), metadata=metadata)
        return fields, work.changed(), {}


def pieces_of(work, run_path, material):
    """The pieces of a run (of this material, when the feed said it) materials learnt from production's feed."""
    run = work._get(PrintingRun.id_for(run_path))
    if run is None:
        return []
    return [piece for piece, of in run_pieces(work._get, run) if of in (None, material)]


def relate(new, find, stock, action_path, action_id, quantity, run, pieces, actor):
    """§3.14: the consume's quantity split across its sources (the lots it drew from, first in first out) and its
    destinations (the run's pieces, equal shares). `new(resource, id, fields, bureau)` makes a row."""
    rows = [("source", lot, share) for lot, share in stock.draw(quantity, find, actor)]
    rows += [("destination", piece, quantity / len(pieces)) for piece in pieces]
    for kind, resource, share in rows:
        new("material-stock-action-relationship", uuid5(action_id, f"{kind}:{resource}"), {
            "relationship_type": kind, "resource": resource, "quantity": rounded(share), "run": run,
            "stock_action": action_path}, stock.bureau)


def consume_for_run(batch, run_path, bureau, material, location, quantity, pieces):
    """F6 (services.materials.consumption): a run's consumption from the stock of its material at its location,
    as production's feed reported it; once per run and stock (the id says so). Returns the action's path, or None
    when there is no stock tracking that material there."""
    app = batch.app
    stock = stock_at(batch.path, app.repository, bureau, material, location)
    if stock is None or stock.fields.get("track_quantity") is False:
        return None
    action_id = uuid5(stock.id, f"run-consume:{run_path}")
    action_path = f"/material-stock-action/{action_id}/"
    if batch.get(action_id) is not None:
        return action_path
    before = float(stock.fields.get("quantity") or 0)
    after = before - quantity
    metadata = {"shortfall": rounded(-after)} if after < -EPSILON else {}
    stock.record("consume", max(after, 0.0), None)

    def new(resource, new_id, fields, owner):
        return batch.add(app.aggregates[resource].create(new_id, fields, owner, None))

    relate(new, batch.path, stock, action_path, action_id, quantity, run_path, pieces, None)
    new("material-stock-action", action_id, {
        "action_type": "consume", "source_stock": path(stock), "run": run_path,
        "action_quantity": rounded(quantity), "quantity": rounded(max(after, 0.0)), "metadata": metadata,
        "reason": "run complete", "notes": None, "user": None}, stock.bureau)
    return action_path
