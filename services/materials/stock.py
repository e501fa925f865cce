"""Stock (materials.md §3.13, §3.15, §6.5): material on hand at a location, one stock per (material, location) in a
bureau, its quantity the fold of its append-only ledger (`/material-stock-action/`: consume, replenish, reconcile).

A stock is created with its opening quantity (default 0); from then on only a stock action moves it: `quantity` on a
PUT is refused (reconcile with a counted quantity instead), so the stock's quantity always equals its opening
quantity plus the ledger. Each action records the quantity after it (`quantity`), and the stock records it as a
named event (StockConsumed, StockReplenished, StockReconciled). When an action or a raised `stock_min` takes the
quantity from at or above its minimum to under it, the stock records `StockBelowMinimum` {quantity, stock_min} in
the materials feed (the notifications service may mail it: `nautilus.stock_available_below_min_quantity`).

Open question the map leaves (§3.13): consuming more than the stock holds. Here it is a 400 naming the stock and
the numbers, as every other quantity rule of the area (§2.2); a stock reaching 0 is `exhausted`.
"""
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from services.materials.units import EPSILON, rounded
from services.materials.work import Work, path
from shared.errors import InvalidPayload
from shared.resource import Resource, UniqueKey

DUPLICATE = "A stock with requested material and location already exists (this pair should be unique)."
FIXED = ("material", "location")


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
        fields = dict(fields, material=path(material), location=path(location), quantity=rounded(quantity),
                      material_type=material.fields.get("type"), status=status_of(quantity, track),
                      material_lots=[], material_batches=[])
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
        for name in ("stock_min", "stock_max", "on_order_quantity"):
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
    try:
        return unit.app.repository.get(UniqueKey.id_for("stock-pair", key)).value["stock_id"]
    except AggregateNotFoundError:
        return None


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
        stock.record(kind, max(after, 0.0), unit.actor)
        fields = dict(fields, source_stock=path(stock), action_quantity=rounded(magnitude),
                      quantity=rounded(max(after, 0.0)), metadata=metadata)
        return fields, [stock], {}
