"""Materials aggregates (materials.md): purchase orders, lots and their containers (receiving, F1), the batch and its
append-only action ledger (§4), and the genealogy edges the actions write (§5).

Quantities a client sees are in the resource's own `units` (a lot's, a batch's); moves between resources of
different units convert through the core unit (services.materials.units). Every batch change is made by a batch
action (services.materials.actions); a batch has no commands of its own.
"""
from datetime import datetime, timezone
from uuid import uuid5

from eventsourcing.application import AggregateNotFoundError

from services.materials.stock import refresh_stock_of
from services.materials.units import EPSILON, convert, rounded
from services.materials.work import Work, path
from shared.errors import InvalidPayload
from shared.resource import Resource, UniqueKey

STATUS_NOT_ALLOWED = "Provided status transformation is not allowed."
MAX_CONTAINERS_PER_REQUEST = 500


def now():
    return datetime.now(timezone.utc).isoformat()


def _moment(text):
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def positive(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPayload(f"'{name}' must be a number, not {value!r}.", field=name)
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidPayload(f"'{name}' must be {'0 or more' if allow_zero else 'more than 0'}, not {value}.",
                             field=name)
    return float(value)


def container_count(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > MAX_CONTAINERS_PER_REQUEST:
        raise InvalidPayload(f"'{name}' must be a whole number from 0 to {MAX_CONTAINERS_PER_REQUEST}, not {value!r}.",
                             field=name)
    return value


# -- purchase orders (§3.3) ----------------------------------------------------------------------------------------

class MaterialPurchaseOrder(Resource):
    resource = "material-purchase-order"
    private_fields = ("_lots",)
    DUPLICATE = ("A material purchase order with requested PO Number (external_id) already exists (this field unique "
                 "per bureau).")

    class DeliveredQuantityChanged(Resource.Updated):
        field = "delivered_quantity"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        work = Work(unit)
        material = work.visible("material", fields["material"], "material")
        positive(fields.get("planned_full_quantity"), "planned_full_quantity", allow_zero=True)
        claim = cls._claim(unit, new_id, fields["external_id"])
        fields = dict(fields, material=path(material), material_name=material.fields.get("name"),
                      units=material.fields.get("units") or "cm3", delivered_quantity=0.0, _lots={})
        return fields, [claim], {}

    @staticmethod
    def _claim(unit, po_id, external_id):
        return unit.claim_unique("material-po", f"{unit.bureau}:{str(external_id).strip().lower()}",
                                 {"po_id": str(po_id)}, MaterialPurchaseOrder.DUPLICATE, "external_id")

    def update(self, changes, actor):
        if "material" in changes and changes["material"] != self.fields.get("material") and self.fields.get("_lots"):
            raise InvalidPayload("The material of a purchase order with lots cannot change.", field="material")
        if "planned_full_quantity" in changes:
            positive(changes["planned_full_quantity"], "planned_full_quantity", allow_zero=True)
        super().update(changes, actor)

    def consequences(self, unit):
        """A new PO number is claimed in the bureau like the first one."""
        renamed = [e for e in self.pending_events if isinstance(e, Resource.Updated) and "external_id" in e.changes]
        if not renamed:
            return []
        key = f"{unit.bureau}:{str(renamed[-1].changes['external_id']).strip().lower()}"
        if _holder(unit, key) == str(self.id):  # its own number, spelled otherwise
            return []
        return [self._claim(unit, self.id, renamed[-1].changes["external_id"])]

    def record_lot(self, lot, actor):
        """Q9: delivered_quantity = Σ full_quantity of the PO's received lots (in the PO's units)."""
        lots = dict(self.fields.get("_lots") or {})
        if lot.fields.get("status") in ("on_order", "return_to_supplier"):
            lots.pop(path(lot), None)
        else:
            lots[path(lot)] = convert(lot.fields.get("full_quantity") or 0, lot.fields["units"],
                                      self.fields.get("units") or lot.fields["units"], lot.fields.get("_density"))
        Resource.update(self, {"_lots": lots, "delivered_quantity": rounded(sum(lots.values()))}, actor)


def _holder(unit, key):
    """The purchase order holding a PO number in a bureau, or None."""
    try:
        return unit.app.repository.get(UniqueKey.id_for("material-po", key)).value["po_id"]
    except AggregateNotFoundError:
        return None


# -- lots (§3.4, §3.5, §6.4) -----------------------------------------------------------------------------------------

LOT_MOVES = {  # §6.4, by PUT; `in_use` and the move to it are the system's (first initial batch), receive_lot's too
    "on_order": {"return_to_supplier"},
    "received": {"in_testing", "available", "in_storage", "return_to_supplier", "scrapped"},
    "in_testing": {"available", "in_storage", "return_to_supplier", "scrapped"},
    "in_storage": {"available"},
    "available": {"in_storage"},
    "in_use": {"done", "scrapped"},
}
LOT_USABLE = ("received", "in_testing", "available", "in_storage", "in_use")  # material may seed batches
LOT_FIXED = ("material", "units", "number_of_containers", "size_of_container")


class MaterialLot(Resource):
    resource = "material-lot"
    private_fields = ("_containers", "_density")

    class StatusChanged(Resource.Updated):
        field = "status"

    class Received(StatusChanged):
        value = "received"

    class DetailsEdited(Resource.Updated):
        field = "expiration_date"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        work = Work(unit)
        if fields.get("status") not in ("on_order", "received"):
            raise InvalidPayload(STATUS_NOT_ALLOWED + " A lot starts on_order or received.", field="status")
        material = work.visible("material", fields["material"], "material")
        units = fields.get("units") or material.fields.get("units") or "cm3"
        density = material.fields.get("density")
        convert(1, units, material.fields.get("units") or units, density, what="lot's units")  # same kind, or density
        count = container_count(fields.get("number_of_containers"), "number_of_containers")
        size = fields.get("size_of_container")
        if count:
            size = positive(size, "size_of_container")
        location = work.visible("location", fields["location"], "location")
        sub_location = cls._sub_location(work, fields.get("sub_location"), location)
        po = None
        if fields.get("material_purchase_order"):
            po = work.visible("material-purchase-order", fields["material_purchase_order"], "material_purchase_order")
            if po.fields.get("material") != path(material):
                raise InvalidPayload(f"The purchase order {po.fields.get('external_id')} is for another material.",
                                     field="material_purchase_order")
        fields = dict(fields, material=path(material), units=units, location=path(location),
                      sub_location=sub_location, material_name=material.fields.get("name"),
                      material_type=material.fields.get("type"), location_name=location.fields.get("name"),
                      material_purchase_order=path(po) if po else None,
                      material_purchase_order_external_id=po.fields.get("external_id") if po else None,
                      cost=material.fields.get("cost") if fields.get("cost") is None else fields["cost"],
                      size_of_container=size, initial_batches=[], full_quantity=0.0, quantity=0.0,
                      containers_available_for_initial_batches=[], _containers=[], _density=density)
        lot_path = resource_path_of("material-lot", new_id)
        containers = [MaterialContainer.of_lot(work, lot_path, fields, uuid5(new_id, f"container:{i}"), size,
                                               unit.bureau) for i in range(count)]
        fields.update(_containers=[path(c) for c in containers],
                      containers_available_for_initial_batches=[path(c) for c in containers],
                      full_quantity=rounded(count * (size or 0)), quantity=rounded(count * (size or 0)))
        return fields, containers, {}

    @staticmethod
    def _sub_location(work, value, location):
        if not value:
            return None
        sub = work.visible("sub-location", value, "sub_location")
        if sub.fields.get("location") not in (None, path(location)):
            raise InvalidPayload("The sub_location is not in the location.", field="sub_location")
        return path(sub)

    def consequences(self, unit):
        """The purchase order's delivered quantity follows its lots (Q9); the stock of its material at its location
        its lots and what is on order (§3.15)."""
        work = Work(unit)
        work.loaded[self.id] = self
        stocks = refresh_stock_of(self, work.find, unit.app.repository, unit.actor)
        po_path = self.fields.get("material_purchase_order")
        if not po_path:
            return stocks
        po = unit.get(po_path)
        if po is None:
            return stocks
        po.record_lot(self, unit.actor)
        return stocks + ([po] if po.pending_events else [])

    def update(self, changes, actor):
        for name in LOT_FIXED:
            if name in changes and changes[name] != self.fields.get(name):
                raise InvalidPayload(f"'{name}' of a lot cannot change (containers change through "
                                     "/material-lot-action/).", field=name)
        if "material_purchase_order" in changes and changes["material_purchase_order"] != self.fields.get(
                "material_purchase_order"):
            raise InvalidPayload("The purchase order of a lot cannot change.", field="material_purchase_order")
        status = changes.get("status")
        if status is not None and status != self.fields.get("status"):
            if status not in LOT_MOVES.get(self.fields.get("status"), ()):
                raise InvalidPayload(STATUS_NOT_ALLOWED, field="status")
        super().update(changes, actor)

    def set(self, changes, actor):
        Resource.update(self, changes, actor)

    def containers(self, work):
        return [c for c in (work.find(p) for p in self.fields.get("_containers") or []) if c and not c.deleted]

    def recount(self, work):
        """Q7: full_quantity = Σ its containers' full quantities; quantity = Σ their current quantities (the lot's
        material not yet consumed, scrapped or lost); the containers still free to seed an initial batch."""
        containers = [c for c in self.containers(work) if c.fields.get("material_lot") == path(self)]
        self.set({"full_quantity": rounded(sum(c.fields.get("full_quantity") or 0 for c in containers)),
                  "quantity": rounded(sum(c.fields.get("quantity") or 0 for c in containers)),
                  "containers_available_for_initial_batches": [
                      path(c) for c in containers if c.fields.get("is_available_for_initial_batches")]}, work.actor)

    def check_usable(self):
        if self.fields.get("status") not in LOT_USABLE:
            raise InvalidPayload(f"The material lot {self.fields.get('name')} is {self.fields.get('status')}: its "
                                 "material cannot be used.", field="metadata")

    def expired(self, at=None):
        expiry = self.fields.get("expiration_date")
        if not expiry:
            return False
        try:
            moment = datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
        except ValueError:  # not a date the catalogue would have let in: nothing to go by
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment <= (at or datetime.now(timezone.utc))


def resource_path_of(resource, uuid):
    return f"/{resource}/{uuid}/"


class MaterialLotAction(Resource):
    """§3.5: the lot's ledger. Containers change only while unused (Q16); receiving moves on_order → received."""

    resource = "material-lot-action"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        work = Work(unit)
        lot = work.visible("material-lot", fields["material_lot"], "material_lot")
        metadata = fields.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidPayload("'metadata' must be an object.", field="metadata")
        kind = fields["action_type"]
        if kind == "receive_lot":
            if not (fields.get("notes") or "").strip():
                raise InvalidPayload("'notes' are required to receive a lot.", field="notes")
            if lot.fields.get("status") != "on_order":
                raise InvalidPayload(f"{STATUS_NOT_ALLOWED} The lot is {lot.fields.get('status')}, not on_order.",
                                     field="action_type")
            lot.set({"status": "received",
                     "actual_delivery_date": metadata.get("actual_delivery_date") or now()}, unit.actor)
        elif kind == "add_containers":
            lot.check_usable() if lot.fields.get("status") != "on_order" else None
            cls._add(work, lot, metadata, new_id, unit)
        elif kind in ("edit_containers_quantity", "delete_containers"):
            containers = cls._unused(work, lot, metadata)
            if kind == "delete_containers":
                for container in containers:
                    container.delete(unit.actor)
            else:
                quantity = positive(metadata.get("quantity"), "metadata.quantity")
                for container in containers:
                    Resource.update(container, {"quantity": quantity, "full_quantity": quantity}, unit.actor)
        lot.recount(work)
        po = work.find(lot.fields.get("material_purchase_order"))
        if po is not None:  # Q9: what the PO has delivered follows its received lots
            po.record_lot(lot, unit.actor)
        refresh_stock_of(lot, work.find, unit.app.repository, unit.actor)  # §3.15: on order no more, or more
        fields = dict(fields, material_lot=path(lot), user=unit.actor)
        return fields, work.changed(), {}

    @staticmethod
    def _add(work, lot, metadata, action_id, unit):
        if "containers" in metadata:
            sizes = metadata["containers"]
            if not isinstance(sizes, list) or not sizes:
                raise InvalidPayload("'metadata.containers' must list the new containers as {quantity}.",
                                     field="metadata")
            sizes = [positive(c.get("quantity") if isinstance(c, dict) else None, "metadata.containers.quantity")
                     for c in sizes]
        else:
            count = container_count(metadata.get("number_of_containers"), "metadata.number_of_containers")
            if not count:
                raise InvalidPayload("'metadata.number_of_containers' must be 1 or more.", field="metadata")
            sizes = [positive(metadata.get("size_of_container"), "metadata.size_of_container")] * count
        new = [MaterialContainer.of_lot(work, path(lot), lot.fields, uuid5(action_id, f"container:{i}"), size,
                                        lot.bureau) for i, size in enumerate(sizes)]
        lot.set({"_containers": [*lot.fields.get("_containers", []), *(path(c) for c in new)]}, work.actor)

    @staticmethod
    def _unused(work, lot, metadata):
        listed = metadata.get("containers")
        if not isinstance(listed, list) or not listed:
            raise InvalidPayload("'metadata.containers' must list the lot's containers to change.", field="metadata")
        found = []
        for value in listed:
            container = work.visible("material-container", value, "metadata.containers")
            if container.fields.get("material_lot") != path(lot):
                raise InvalidPayload(f"The container {path(container)} is not in this lot.", field="metadata")
            if not container.fields.get("is_available_for_initial_batches"):  # Q16
                raise InvalidPayload(f"The container {path(container)} is already used in a batch: only unused "
                                     "containers can change.", field="metadata")
            found.append(container)
        return found


# -- containers (§3.6) ----------------------------------------------------------------------------------------------

class MaterialContainer(Resource):
    resource = "material-container"
    private_fields = ("_units", "_last_action")  # _last_action: its latest container action (its version)

    class QuantityChanged(Resource.Updated):
        field = "quantity"

    class AssignedToBatch(Resource.Updated):
        field = "current_batch"

    @classmethod
    def of_lot(cls, work, lot_path, lot_fields, new_id, size, bureau):
        """A disposable container of a lot, full (§3.4 side effects)."""
        return work.new("material-container", new_id, {
            "name": str(new_id), "type": "disposable", "disposable": True, "material_lot": lot_path,
            "material": lot_fields["material"], "material_type": lot_fields.get("material_type"),
            "quantity": rounded(size), "full_quantity": rounded(size), "status": "new",
            "location": lot_fields.get("location"), "sub_location": lot_fields.get("sub_location"),
            "is_available_for_initial_batches": True, "current_batch": None, "used_in_batches": [],
            "printer_type_relationships": [], "is_docked": False, "workstation_uri": None, "archived": False,
            "tare_weight": 0.0, "material_restrictions": [], "_units": lot_fields["units"]}, bureau)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """A container a client registers (permanent, MLine modules): empty, in no lot."""
        kind = fields.get("type") or "permanent"
        fields = dict(fields, type=kind, disposable=kind == "disposable" if fields.get("disposable") is None
                      else fields["disposable"], name=fields.get("name") or str(new_id), material_lot=None,
                      quantity=0.0, full_quantity=0.0, status="empty", current_batch=None, used_in_batches=[],
                      printer_type_relationships=[], is_available_for_initial_batches=False, is_docked=False,
                      workstation_uri=None)
        return fields, [], {}

    def check_deletable(self, unit):
        if self.fields.get("current_batch") and (self.fields.get("quantity") or 0) > 0:
            raise InvalidPayload(f"The container holds material of the batch {self.fields['current_batch']}: move "
                                 "or scrap it first.")
        if self.fields.get("material_lot") and not self.fields.get("is_available_for_initial_batches"):
            raise InvalidPayload("A lot's container that has been used in a batch cannot be deleted.")

    @property
    def units(self):
        return self.fields.get("_units")

    def join(self, batch_path, actor):
        used = list(self.fields.get("used_in_batches") or [])
        if batch_path not in used:
            used.append(batch_path)
        Resource.update(self, {"current_batch": batch_path, "used_in_batches": used,
                               "is_available_for_initial_batches": False,
                               "status": "in_use" if (self.fields.get("quantity") or 0) > 0 else "empty"}, actor)

    def empty(self, actor):
        Resource.update(self, {"quantity": 0.0, "status": "empty", "current_batch": None}, actor)

    def expose(self, printer_types, actor):
        known = list(self.fields.get("printer_type_relationships") or [])
        known += [p for p in printer_types if p not in known]
        Resource.update(self, {"printer_type_relationships": known}, actor)


# -- batches (§3.8) and their edges (§5) ---------------------------------------------------------------------------

class MaterialBatch(Resource):
    """Every field is set by batch actions (Q15). Private: the material, the latest action (the next action's
    `previous_action`, the batch's expected version), the genealogy edges in and out, the printer types, the runs it
    printed (and those since it was loaded, whose consumption its unload measures)."""

    resource = "material-batch"
    private_fields = ("_material", "_density", "_last_action", "_parent_links", "_child_links", "_printer_types",
                      "_runs", "_runs_in_machine", "_loaded_at")

    class QuantityChanged(Resource.Updated):
        field = "quantity"

    class StatusChanged(Resource.Updated):
        field = "status"

    class Done(StatusChanged):
        value = "done"

    class PowderQualityChanged(Resource.Updated):
        field = "powder_quality"

    class Sieved(PowderQualityChanged):
        value = "sieved"

    class Relocated(Resource.Updated):
        field = "location"

    class LoadedIntoMachine(Resource.Updated):
        field = "at_machine"

    def set(self, changes, actor):
        Resource.update(self, changes, actor)

    @property
    def units(self):
        return self.fields.get("units") or "cm3"

    @property
    def available(self):
        return float(self.fields.get("quantity_available_for_actions") or 0)

    @property
    def reserved(self):
        return float(self.fields.get("reserved_quantity") or 0)

    @property
    def quantity(self):
        return float(self.fields.get("quantity") or 0)

    @property
    def label(self):
        return path(self)

    def move(self, actor, available=0.0, reserved=0.0):
        """Change the two pools by these amounts (in the batch's units): Q1 quantity = reserved + available, Q4
        nothing negative, Q5 full_quantity only rises. Returns the change of `quantity`."""
        new_available = rounded(self.available + available)
        new_reserved = rounded(self.reserved + reserved)
        for name, value, before in (("quantity_available_for_actions", new_available, self.available),
                                    ("reserved_quantity", new_reserved, self.reserved)):
            if value < -EPSILON:
                raise InvalidPayload(f"The batch {self.label} has {before:g} {self.units} {name.replace('_', ' ')}; "
                                     f"the action would leave {value:g}.", field="quantity")
        new_available, new_reserved = max(new_available, 0.0), max(new_reserved, 0.0)
        quantity = rounded(new_available + new_reserved)
        delta = rounded(quantity - self.quantity)
        self.set({"quantity_available_for_actions": new_available, "reserved_quantity": new_reserved,
                  "quantity": quantity, "full_quantity": max(float(self.fields.get("full_quantity") or 0), quantity)},
                 actor)
        return delta

    def in_own_units(self, quantity, other_units, what="quantity"):
        """A quantity in `other_units` (another batch's, a lot's) in this batch's units."""
        return convert(quantity, other_units, self.units, self.fields.get("_density"), what)

    def add_lots(self, lots, materials):
        """Q13: at most 10 lots (and 10 `materials` entries) per batch; a move exceeding it is refused."""
        merged = list(self.fields.get("material_lots") or [])
        merged += [lot for lot in lots if lot not in merged]
        helpers = list(self.fields.get("materials") or [])
        helpers += [m for m in materials if m not in helpers]
        if len(merged) > 10:
            raise InvalidPayload(f"The batch {self.label} would come from {len(merged)} material lots; a batch holds "
                                 "material of at most 10 lots.", field="metadata")
        return merged, helpers[:10]

    def set_printer_types(self, printer_types, actor):
        self.set({"_printer_types": printer_types}, actor)

    def printed(self, run_path, completed_at=None):
        """F3: a run completed in the printer this batch is loaded in (production's feed says so): the batch printed
        it, and the material its unload finds gone was consumed by it (services.materials.consumption). A run that
        completed before the batch went in (a feed read late, or from its start) is not the batch's. Returns
        whether the run is the batch's."""
        if completed_at and self.fields.get("_loaded_at") and _moment(completed_at) < _moment(
                self.fields["_loaded_at"]):
            return False
        runs = list(self.fields.get("_runs") or [])
        pending = list(self.fields.get("_runs_in_machine") or [])
        if run_path not in runs:
            self.set({"_runs": [*runs, run_path], "_runs_in_machine": [*pending, run_path]}, None)
        return True


class MaterialBatchLinking(Resource):
    """H1: one genealogy edge, written by the action that moved the material, never changed."""

    resource = "material-batch-linking"


class PrinterTypeBatchRelationship(Resource):
    resource = "printer-type-batch-relationship"


# /material-genealogy/ is built on read (services.materials.genealogy). Releases before issue 14's rework stored one
# genealogy document per batch: those events still load, as the generic resource the registry gives every catalogue
# resource of the service (topic materials/material-genealogy), and nothing reads them any more.


class Sample(Resource):
    resource = "sample"
