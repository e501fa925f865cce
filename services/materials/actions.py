"""The batch-action ledger (materials.md §4): each POST /material-batch-action/ is one action whose effect on
quantities, containers, status, powder_quality, usage_cycles, material_lots, genealogy edges and printer-type
exposure is exactly the §4 table's, checked against Q1–Q20 (§2.2) and saved with the action in one transaction.

Ledger: each action records `_effects` {batch: change of its quantity, in the batch's units}, so a batch's quantity
is the sum of its ledger. Material enters batches only from lots' containers (create_initial_batch, add_container)
and leaves only by consumption in a build (machine_unload_*), a test, a sieving loss, scrap or an explicit
correction (edit_batch_quantity); every other action moves it and balances.

Concurrency: the action's `previous_action` is the source batch's latest action, its expected version: a client
that sends the one it saw gets 409 when another action got there first, and nothing changes. Without it, concurrent
actions on one batch are serialised by the store (a conflicting save is re-run on the fresh batch).
"""
from datetime import datetime
from uuid import uuid5

from services.materials.consumption import RUN_CONSUMPTION_RECORDED, consumed_by_runs
from services.materials.domain import MaterialLot, now
from services.materials.units import EPSILON, rounded
from services.materials.work import Work, path, path_of
from shared import catalogue
from shared.errors import Conflict, InvalidPayload, NotFound
from shared.resource import Resource
from shared.uris import normalise, parse_uri

CREATES_BATCH = ("create_initial_batch", "split_batch", "blend_batches")
ALLOWED_ON_DONE = ("edit_batch_details", "edit_lot_details")
NEEDS_QUANTITY = ("split_batch", "machine_load", "machine_top_off", "machine_unload_chamber", "machine_unload_hopper",
                  "test", "defer_modular_build")
QUALITY_RANK = {"new": 0, "sieved": 1, "unknown": 2, "unsieved": 3, "done": 4}  # §6.2: blend → worst of inputs
DOCKABLE = ("dose", "overflow", "build", "cyclone")
BATCH_DETAILS = ("notes", "custom_status", "external_build_id")
NUMERIC_DETAILS = ("usage_cycles_limit", "cost")
LOT_DETAILS = ("expiration_date", "usage_cycles_limit", "notes", "delivery_id", "cost", "estimated_delivery_date")


class MaterialBatchAction(Resource):
    resource = "material-batch-action"
    private_fields = ("_effects",)

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """The printer a load, top-off or dock names, from production (its printer type is the exposure §5.4)."""
        metadata = payload.get("metadata") if verb == "create" and isinstance(payload, dict) else None
        if not isinstance(metadata, dict):
            return ctx
        printers = {}
        for key in ("printer", "machine", "workstation"):
            value = metadata.get(key)
            try:
                kind, uuid_ = parse_uri(value)
            except ValueError:
                continue
            if kind == "printer":
                try:
                    printers[normalise(value)] = peers.call("production", "get", "printer", uuid_, ctx)
                except NotFound:
                    printers[normalise(value)] = None
        return dict(ctx, printers=printers) if printers else ctx

    @classmethod
    def on_create(cls, unit, new_id, fields):
        return Ledger(Work(unit), new_id, fields).run()

    @classmethod
    def follow_ups(cls, verb, result, payload):
        """An unload that measured runs' consumption: production is told (services.materials.consumption)."""
        return [(RUN_CONSUMPTION_RECORDED, {"consumption": c}) for c in result.get("run_consumptions") or ()]


def q_text(value, units):
    return f"{rounded(value):g} {units}"


class Ledger:
    def __init__(self, work, action_id, fields):
        self.work = work
        self.actor = work.actor
        self.id = action_id
        self.path = f"/material-batch-action/{action_id}/"
        self.fields = dict(fields)
        self.kind = fields["action_type"]
        quantity = fields.get("quantity")
        self.q = 0.0 if quantity is None else float(quantity)
        if self.q < 0:
            raise InvalidPayload(f"'quantity' must be 0 or more, not {self.q:g}.", field="quantity")
        self.meta = fields.get("metadata") if fields.get("metadata") is not None else {}
        if not isinstance(self.meta, dict):
            raise InvalidPayload("'metadata' must be an object.", field="metadata")
        self.effects = {}
        self.links = []
        self.chained = []  # batches whose ledger this action joins
        self.new_batch = None
        self.source = None
        self.consumptions = []  # RunConsumption ids an unload recorded (services.materials.consumption)

    # -- the frame every action shares -----------------------------------------------------------------------------

    def run(self):
        previous = None
        if self.kind == "create_initial_batch":
            if self.fields.get("source_batch"):
                raise InvalidPayload("create_initial_batch takes no source_batch: the batch is made from containers.",
                                     field="source_batch")
        else:
            if not self.fields.get("source_batch"):  # Q14
                raise InvalidPayload(f"'source_batch' is required for {self.kind}.", field="source_batch")
            self.source = self.batch(self.fields["source_batch"], "source_batch")
            previous = self.source.fields.get("_last_action")
            expected = self.fields.get("previous_action")
            if expected and normalise_or_400(expected, "previous_action") != previous:
                raise Conflict(f"The batch {path(self.source)} has changed since {expected}: its latest action is "
                               f"{previous}. Nothing was changed; read the batch and try again.",
                               field="previous_action")
            if self.source.fields.get("status") == "done" and self.kind not in ALLOWED_ON_DONE:
                raise InvalidPayload(f"The batch {path(self.source)} is done: {self.kind} is not possible.",
                                     field="source_batch")
            self.chained.append(self.source)
        if self.kind in NEEDS_QUANTITY and self.q <= 0:
            raise InvalidPayload(f"{self.kind} needs a quantity of more than 0.", field="quantity")
        getattr(self, self.kind)()
        for batch in self.chained:
            batch.set({"_last_action": self.path}, self.actor)
        for lot_path in sorted(self.work.lots_to_total):
            self.work.find(lot_path).recount(self.work)
        fields = dict(self.fields, source_batch=path(self.source) if self.source else None, quantity=rounded(self.q),
                      metadata=self.meta, previous_action=previous, user=self.actor,
                      _effects={k: rounded(v) for k, v in self.effects.items()})
        result = {"uri": path(self.new_batch)} if self.new_batch is not None else {}
        if self.consumptions:
            result["run_consumptions"] = self.consumptions
        return fields, self.work.changed(), result

    # -- helpers ------------------------------------------------------------------------------------------------

    def batch(self, value, field):
        return self.work.visible("material-batch", value, field)

    def change(self, batch, available=0.0, reserved=0.0):
        delta = batch.move(self.actor, available, reserved)
        key = path(batch)
        self.effects[key] = self.effects.get(key, 0.0) + delta
        if batch not in self.chained:
            self.chained.append(batch)
        return delta

    def need_available(self, batch, amount, what):
        if amount > batch.available + EPSILON:
            raise InvalidPayload(f"The batch {path(batch)} has {q_text(batch.available, batch.units)} available for "
                                 f"actions; {what} needs {q_text(amount, batch.units)}.", field="quantity")

    def unloaded(self, batch, why):
        if batch.reserved > EPSILON or batch.fields.get("at_machine"):
            raise InvalidPayload(f"The batch {path(batch)} is loaded in {batch.fields.get('at_machine') or 'a machine'}"
                                 f" ({q_text(batch.reserved, batch.units)} reserved): unload it before {why}.",
                                 field="source_batch")

    def settle(self, batch):
        """§6.1: a batch whose material is all gone (split, blended, topped off, consumed) is done."""
        if batch.quantity <= EPSILON and batch.fields.get("status") != "done":
            for container in self.containers_of(batch):
                container.empty(self.actor)
            batch.set({"status": "done", "containers": [], "at_machine": None}, self.actor)

    def containers_of(self, batch):
        found = [self.work.find(p) for p in batch.fields.get("containers") or []]
        return [c for c in found if c is not None and not c.deleted]

    def listed_containers(self, key="containers", required=True):
        listed = self.meta.get(key)
        if listed is None and not required:
            return []
        if not isinstance(listed, list) or (required and not listed):
            raise InvalidPayload(f"'metadata.{key}' must list container URIs.", field="metadata")
        found = []
        for value in listed:
            container = self.work.visible("material-container", value, f"metadata.{key}")
            if container in found:
                raise InvalidPayload(f"The container {path(container)} is listed twice.", field="metadata")
            found.append(container)
        return found

    def new_batch_like(self, like, bureau=None, **fields):
        new_id = uuid5(self.id, "batch")
        base = {
            "uuid": str(new_id), "status": "new", "powder_quality": "new", "usage_cycles": 0, "quantity": 0.0,
            "reserved_quantity": 0.0, "quantity_available_for_actions": 0.0, "full_quantity": 0.0,
            "material_lots": [], "materials": [], "containers": [], "material_in_containers": False,
            "at_machine": None, "post_processor": None, "location": None, "location_name": None,
            "sub_location": None, "initial_batch": None, "is_initial_batch": False, "source_material_batches": [],
            "notes": None, "custom_status": None, "external_build_id": None, "_last_action": self.path,
            "_parent_links": [], "_child_links": [], "_printer_types": [],
        }
        if like is not None:
            base.update({k: like.fields.get(k) for k in (
                "units", "material_lots", "materials", "powder_quality", "usage_cycles", "initial_batch", "location",
                "location_name", "sub_location", "_material", "_density")})
            base["_printer_types"] = list(like.fields.get("_printer_types") or [])
        base.update(fields)
        bureau = like.bureau if like is not None else bureau or self.work.unit.bureau
        self.new_batch = self.work.new("material-batch", new_id, base, bureau)
        self.chained.append(self.new_batch)
        return self.new_batch

    def link(self, source, destination, quantity, containers=()):
        """H1: one edge, source → destination, written by this action and never changed."""
        link_id = uuid5(self.id, f"link:{path(source) if source else 'lot'}:{path(destination)}")
        link = self.work.new("material-batch-linking", link_id, {
            "action": self.path, "source_batch": path(source) if source else None,
            "destination_batch": path(destination), "quantity": rounded(quantity),
            "containers": [path(c) for c in containers]}, destination.bureau)
        if source is not None:
            source.set({"_child_links": [*(source.fields.get("_child_links") or []), path(link)]}, self.actor)
            parents = list(destination.fields.get("source_material_batches") or [])
            if path(source) not in parents:
                parents.append(path(source))
            destination.set({"source_material_batches": parents}, self.actor)
        destination.set({"_parent_links": [*(destination.fields.get("_parent_links") or []), path(link)]}, self.actor)
        self.links.append(link)

    def expose(self, batch, printer_types):
        """§5.4: the printer types this batch's material has been in (edges, its containers too)."""
        known = list(batch.fields.get("_printer_types") or [])
        new = [p for p in printer_types if p and p not in known]
        for printer_type in new:
            self.work.new("printer-type-batch-relationship", uuid5(batch.id, f"printer-type:{printer_type}"),
                          {"material_batch": path(batch), "printer_type": printer_type}, batch.bureau)
        if new:
            batch.set_printer_types(known + new, self.actor)
            for container in self.containers_of(batch):
                container.expose(known + new, self.actor)

    def printer(self, key="printer", required=True):
        value = self.meta.get(key) or (self.meta.get("machine") if key == "printer" else None)
        if value is None:
            if required:
                raise InvalidPayload(f"'metadata.{key}' must name the printer.", field="metadata")
            return None, None
        printer_path = path_of(value, "printer", f"metadata.{key}")
        self.meta[key] = printer_path
        printers = self.work.unit.ctx.get("printers")
        if printers is None:  # an internal command: nothing was asked of production
            return printer_path, None
        found = printers.get(printer_path)
        if found is None:
            raise NotFound(catalogue.resource("printer").not_found)
        return printer_path, found.get("printer_type")

    def same_material(self, batch, other):
        if batch.fields.get("_material") != other.fields.get("_material"):
            raise InvalidPayload(f"The batches {path(batch)} and {path(other)} hold different materials.",
                                 field="metadata")

    def lots_of(self, batch):
        return [lot for lot in (self.work.find(p) for p in batch.fields.get("material_lots") or []) if lot]

    def check_usable(self, batch):
        """Q11: no material of an expired lot is used (load, top-off, blend)."""
        for lot in self.lots_of(batch):
            if lot.expired():
                raise InvalidPayload(f"The material lot {lot.fields.get('name')} of the batch {path(batch)} expired on "
                                     f"{lot.fields.get('expiration_date')}: its material cannot be used.",
                                     field="source_batch")

    def whole_quantity(self, batch):
        """scrap, sieve, containerize: `quantity` is the full quantity in the batch (0 means "as it is")."""
        if self.q and abs(self.q - batch.quantity) > EPSILON:
            raise InvalidPayload(f"{self.kind}'s quantity is the full quantity in the batch {path(batch)}, "
                                 f"{q_text(batch.quantity, batch.units)}, not {q_text(self.q, batch.units)}.",
                                 field="quantity")
        self.q = batch.quantity

    def merge_lots(self, batch, others):
        lots, materials = batch.fields.get("material_lots") or [], batch.fields.get("materials") or []
        for other in others:
            lots, materials = batch.add_lots(other.fields.get("material_lots") or [],
                                             other.fields.get("materials") or [])
            batch.set({"material_lots": lots, "materials": materials}, self.actor)
        return lots, materials

    def take_containers(self, containers, batch):
        self.work.lots_to_total.update(c.fields["material_lot"] for c in containers if c.fields.get("material_lot"))
        for container in containers:
            container.join(path(batch), self.actor)
        listed = list(batch.fields.get("containers") or [])
        listed += [path(c) for c in containers if path(c) not in listed]
        batch.set({"containers": listed}, self.actor)

    # -- the actions (§4), one method each --------------------------------------------------------------------

    def create_initial_batch(self):
        containers = self.listed_containers()
        lots = {c.fields.get("material_lot") for c in containers}
        if None in lots or len(lots) != 1:
            raise InvalidPayload("An initial batch is made from containers of one material lot.", field="metadata")
        for container in containers:
            if not container.fields.get("is_available_for_initial_batches"):
                raise InvalidPayload(f"The container {path(container)} is already used in the batch "
                                     f"{container.fields.get('current_batch')}.", field="metadata")
        lot = self.work.find(lots.pop())
        lot.check_usable()
        material = self.work.find(lot.fields["material"])
        location, sub_location = self.place(lot.fields.get("location"), lot.fields.get("sub_location"))
        total = sum(float(c.fields.get("quantity") or 0) for c in containers)
        batch = self.new_batch_like(None, bureau=lot.bureau, units=lot.fields["units"],
                                    _material=lot.fields["material"],
                                    _density=lot.fields.get("_density"), material_lots=[path(lot)],
                                    materials=[{"units": lot.fields["units"], "cost": lot.fields.get("cost"),
                                                "type": material.fields.get("type") if material else None}],
                                    is_initial_batch=True, material_in_containers=True, **location_fields(
                                        self.work, location, sub_location))
        batch.set({"initial_batch": path(batch)}, self.actor)
        self.change(batch, available=total)
        self.take_containers(containers, batch)
        self.link(None, batch, total, containers)
        changes = {"initial_batches": [*(lot.fields.get("initial_batches") or []), path(batch)]}
        if lot.fields.get("status") in ("available", "in_storage"):
            changes["status"] = "in_use"
        lot.set(changes, self.actor)
        self.q = total

    def add_container(self):
        batch = self.source
        containers = self.listed_containers()
        total = 0.0
        for container in containers:
            if not container.fields.get("is_available_for_initial_batches"):
                raise InvalidPayload(f"The container {path(container)} is already used in the batch "
                                     f"{container.fields.get('current_batch')}.", field="metadata")
            if container.fields.get("material") != batch.fields.get("_material"):
                raise InvalidPayload(f"The container {path(container)} holds another material than the batch "
                                     f"{path(batch)}.", field="metadata")
            lot = self.work.find(container.fields.get("material_lot"))
            if lot is not None:
                lot.check_usable()
            total += batch.in_own_units(container.fields.get("quantity") or 0, container.units)
        lots = [c.fields["material_lot"] for c in containers if c.fields.get("material_lot")]
        materials = []
        for lot_path in lots:
            lot = self.work.find(lot_path)
            materials.append({"units": lot.fields["units"], "cost": lot.fields.get("cost"),
                              "type": lot.fields.get("material_type")})
        merged, helpers = batch.add_lots(lots, materials)
        batch.set({"material_lots": merged, "materials": helpers}, self.actor)
        self.change(batch, available=total)
        self.take_containers(containers, batch)
        self.link(None, batch, total, containers)
        self.q = total

    def split_batch(self):
        batch = self.source
        self.need_available(batch, self.q, "split_batch")
        containers = self.listed_containers(required=False)
        for container in containers:
            if path(container) not in (batch.fields.get("containers") or []):
                raise InvalidPayload(f"The container {path(container)} is not in the batch {path(batch)}.",
                                     field="metadata")
        location, sub_location = self.place(batch.fields.get("location"), batch.fields.get("sub_location"))
        new = self.new_batch_like(batch, material_in_containers=bool(containers),
                                  **location_fields(self.work, location, sub_location))
        self.change(batch, available=-self.q)
        self.change(new, available=self.q)
        if containers:
            moved = {path(c) for c in containers}
            batch.set({"containers": [p for p in batch.fields.get("containers") or [] if p not in moved]}, self.actor)
            self.take_containers(containers, new)
        self.link(batch, new, self.q, containers)
        self.settle(batch)

    def blend_batches(self):
        batch = self.source
        listed = self.meta.get("batches")
        if not isinstance(listed, list) or not listed:
            raise InvalidPayload("'metadata.batches' must list the other batches to blend.", field="metadata")
        inputs = [batch]
        for value in listed:
            other = self.batch(value, "metadata.batches")
            if other in inputs:
                raise InvalidPayload(f"The batch {path(other)} is blended twice.", field="metadata")
            if other.fields.get("status") == "done":
                raise InvalidPayload(f"The batch {path(other)} is done: it cannot be blended.", field="metadata")
            self.same_material(batch, other)
            inputs.append(other)
        amounts = []
        for each in inputs:
            self.check_usable(each)
            if each.available <= EPSILON:
                raise InvalidPayload(f"The batch {path(each)} has nothing available to blend.", field="metadata")
            amounts.append(batch.in_own_units(each.available, each.units))
        total = sum(amounts)
        if self.q and abs(self.q - total) > EPSILON * max(1.0, len(inputs)):
            raise InvalidPayload(f"blend_batches' quantity is the blended batch's: the batches hold "
                                 f"{q_text(total, batch.units)} available, not {q_text(self.q, batch.units)}.",
                                 field="quantity")
        result = self.new_batch_like(batch, material_in_containers=all(
            i.fields.get("material_in_containers") for i in inputs), usage_cycles=max(
            int(i.fields.get("usage_cycles") or 0) for i in inputs), powder_quality=max(
            (i.fields.get("powder_quality") or "unknown" for i in inputs), key=lambda v: QUALITY_RANK.get(v, 2)))
        self.merge_lots(result, inputs[1:])
        exposure = []
        for each, amount in zip(inputs, amounts):
            moving = self.containers_of(each)
            self.change(each, available=-each.available)
            each.set({"containers": []}, self.actor)
            self.take_containers(moving, result)
            self.link(each, result, amount, moving)
            exposure += [p for p in each.fields.get("_printer_types") or [] if p not in exposure]
            self.settle(each)
        self.change(result, available=total)
        self.expose(result, exposure)
        self.q = total

    def containerize_batch(self):
        batch = self.source
        self.unloaded(batch, "containerizing it")
        self.whole_quantity(batch)
        sizes = self.meta.get("containers")
        if sizes is not None:
            if not isinstance(sizes, list) or not sizes or not all(isinstance(c, dict) for c in sizes):
                raise InvalidPayload("'metadata.containers' must list the new containers as {quantity, name}.",
                                     field="metadata")
            plan = [(float(_number(c.get("quantity"), "metadata.containers.quantity")), c.get("name")) for c in sizes]
        else:
            count = self.meta.get("number_of_containers")
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 500:
                raise InvalidPayload("containerize_batch needs 'metadata.containers' [{quantity}] or "
                                     "'metadata.number_of_containers' and 'size_of_container'.", field="metadata")
            plan = [(float(_number(self.meta.get("size_of_container"), "metadata.size_of_container")), None)] * count
        total = sum(size for size, _ in plan)
        if abs(total - batch.quantity) > EPSILON * len(plan):
            raise InvalidPayload(f"The new containers hold {q_text(total, batch.units)}; the batch {path(batch)} holds "
                                 f"{q_text(batch.quantity, batch.units)}.", field="metadata")
        for container in self.containers_of(batch):
            container.empty(self.actor)
        new = []
        for i, (size, name) in enumerate(plan):
            container_id = uuid5(self.id, f"container:{i}")
            new.append(self.work.new("material-container", container_id, {
                "name": name or str(container_id), "type": "permanent", "disposable": False, "material_lot": None,
                "material": batch.fields.get("_material"), "quantity": rounded(size), "full_quantity": rounded(size),
                "status": "in_use", "location": batch.fields.get("location"),
                "sub_location": batch.fields.get("sub_location"), "is_available_for_initial_batches": False,
                "current_batch": None, "used_in_batches": [], "is_docked": False, "workstation_uri": None,
                "printer_type_relationships": list(batch.fields.get("_printer_types") or []), "archived": False,
                "tare_weight": 0.0, "material_restrictions": [], "_units": batch.units}, batch.bureau))
        batch.set({"containers": [], "material_in_containers": True}, self.actor)
        self.take_containers(new, batch)

    def machine_load(self):
        batch = self.source
        printer, printer_type = self.printer()
        if batch.fields.get("at_machine") not in (None, printer):
            raise InvalidPayload(f"The batch {path(batch)} is loaded in {batch.fields['at_machine']}.",
                                 field="source_batch")
        self.need_available(batch, self.q, "machine_load")
        self.check_usable(batch)
        limits = [int(lot.fields["usage_cycles_limit"]) for lot in self.lots_of(batch)
                  if lot.fields.get("usage_cycles_limit") is not None]
        cycles = int(batch.fields.get("usage_cycles") or 0)
        if limits and cycles >= min(limits):  # Q12
            raise InvalidPayload(f"The batch {path(batch)} has been used {cycles} times; its lots allow "
                                 f"{min(limits)}.", field="source_batch")
        if self.meta.get("run") is not None:
            self.meta["run"] = path_of(self.meta["run"], "run", "metadata.run")
        self.change(batch, available=-self.q, reserved=self.q)
        changes = {"status": "in_use", "at_machine": printer}
        if batch.fields.get("at_machine") != printer:  # when it went in: runs completed before are not its own
            changes["_loaded_at"] = now()
        batch.set(changes, self.actor)
        if batch.available <= EPSILON:  # all of it went into the machine: out of its containers
            for container in self.containers_of(batch):
                container.empty(self.actor)
                self.work.lots_to_total.add(container.fields.get("material_lot")) if container.fields.get(
                    "material_lot") else None
            batch.set({"containers": [], "material_in_containers": False}, self.actor)
        self.expose(batch, [printer_type] if printer_type else [])

    def machine_top_off(self):
        batch = self.source
        if self.fields.get("from_container_action") and self.meta.get("container"):
            # top_off_container (services.materials.container_actions): the donor tops off the batch in a container,
            # not in a machine; the material is available in the container, not reserved
            return self._top_off(batch, into_machine=False)
        if not batch.fields.get("at_machine"):
            raise InvalidPayload(f"The batch {path(batch)} is not loaded in a machine: top off the loaded batch.",
                                 field="source_batch")
        printer, _ = self.printer(required=False)
        if printer and printer != batch.fields.get("at_machine"):
            raise InvalidPayload(f"The batch {path(batch)} is loaded in {batch.fields['at_machine']}, not {printer}.",
                                 field="metadata")
        self._top_off(batch, into_machine=True)

    def _top_off(self, batch, into_machine):
        if not self.meta.get("batch_to_load"):
            raise InvalidPayload("'metadata.batch_to_load' must name the batch to top off with.", field="metadata")
        donor = self.batch(self.meta["batch_to_load"], "metadata.batch_to_load")
        if donor is batch:
            raise InvalidPayload("A batch cannot top off itself.", field="metadata")
        if donor.fields.get("status") == "done":
            raise InvalidPayload(f"The batch {path(donor)} is done: it cannot top off.", field="metadata")
        self.same_material(batch, donor)
        self.check_usable(batch)
        self.check_usable(donor)
        self.meta["batch_to_load"] = path(donor)
        taken = donor.in_own_units(self.q, batch.units)
        self.need_available(donor, taken, "machine_top_off")
        self.merge_lots(batch, [donor])
        self.change(donor, available=-taken)
        self.change(batch, **({"reserved": self.q} if into_machine else {"available": self.q}))
        batch.set({"usage_cycles": max(int(batch.fields.get("usage_cycles") or 0),
                                       int(donor.fields.get("usage_cycles") or 0))}, self.actor)
        self.link(donor, batch, self.q)
        donor_types, batch_types = list(donor.fields.get("_printer_types") or []), list(
            batch.fields.get("_printer_types") or [])
        self.expose(donor, batch_types)
        self.expose(batch, donor_types)
        self.settle(donor)

    def machine_unload_chamber(self):
        self._unload(chamber=True)

    def machine_unload_hopper(self):
        self._unload(chamber=False)

    def _unload(self, chamber):
        batch = self.source
        if not batch.fields.get("at_machine") or batch.reserved <= EPSILON:
            raise InvalidPayload(f"The batch {path(batch)} is not loaded in a machine.", field="source_batch")
        printer, _ = self.printer(required=False)
        if printer and printer != batch.fields.get("at_machine"):
            raise InvalidPayload(f"The batch {path(batch)} is loaded in {batch.fields['at_machine']}, not {printer}.",
                                 field="metadata")
        if self.q > batch.reserved + EPSILON:
            raise InvalidPayload(f"The batch {path(batch)} has {q_text(batch.reserved, batch.units)} in the machine; "
                                 f"{self.kind} cannot return {q_text(self.q, batch.units)}.", field="quantity")
        consumed = batch.reserved - self.q
        self.change(batch, available=self.q, reserved=-batch.reserved)  # the rest was consumed by the build
        recorded = consumed_by_runs(self.work, batch, max(consumed, 0.0), self.path, self.actor)
        if recorded:  # F3: the runs printed since the load consumed it (production learns it as run actuals)
            self.meta["runs"] = [run for run, _ in recorded]
            self.consumptions = [consumption for _, consumption in recorded]
        changes = {"status": "idle", "at_machine": None, "material_in_containers": bool(
            batch.fields.get("containers"))}
        if chamber:  # §6.2: powder that went through the chamber is used once more and needs sieving
            changes.update(powder_quality="unsieved", usage_cycles=int(batch.fields.get("usage_cycles") or 0) + 1)
        batch.set(changes, self.actor)

    def sieve(self):
        batch = self.source
        self.unloaded(batch, "sieving it")
        self.whole_quantity(batch)
        sieved = self.meta.get("sieved_quantity")
        if sieved is not None:
            sieved = float(_number(sieved, "metadata.sieved_quantity"))
            if sieved > batch.quantity + EPSILON:
                raise InvalidPayload(f"Sieving the batch {path(batch)} cannot give {q_text(sieved, batch.units)} out "
                                     f"of {q_text(batch.quantity, batch.units)}.", field="metadata")
            self.change(batch, available=sieved - batch.quantity)  # the sieving loss
        batch.set({"powder_quality": "sieved"}, self.actor)

    def test(self):
        batch = self.source
        self.need_available(batch, self.q, "test")
        self.change(batch, available=-self.q)  # consumed by the test
        name = self.meta.get("sample_name") or f"Sample of {path(batch)}"
        self.work.new("sample", uuid5(self.id, "sample"), {
            "bureau": batch.bureau, "material_batch": path(batch), "name": str(name), "source_action": self.path},
            batch.bureau)
        self.settle(batch)

    def edit_batch_quantity(self):
        batch = self.source
        if self.q < batch.reserved - EPSILON:
            raise InvalidPayload(f"The batch {path(batch)} has {q_text(batch.reserved, batch.units)} reserved; its "
                                 f"quantity cannot be {q_text(self.q, batch.units)}.", field="quantity")
        self.change(batch, available=self.q - batch.quantity)
        self.settle(batch)

    def scrap_batch(self):
        batch = self.source
        self.unloaded(batch, "scrapping it")
        self.whole_quantity(batch)
        for container in self.containers_of(batch):
            container.empty(self.actor)
            if container.fields.get("material_lot"):
                self.work.lots_to_total.add(container.fields["material_lot"])
        self.change(batch, available=-batch.available)
        batch.set({"status": "done", "powder_quality": "done", "containers": []}, self.actor)

    def relocate(self):
        batch = self.source
        if not self.meta.get("location") and not self.meta.get("sub_location"):
            raise InvalidPayload("relocate needs 'metadata.location' or 'metadata.sub_location'.", field="metadata")
        location, sub_location = self.place(batch.fields.get("location"), batch.fields.get("sub_location"))
        placed = location_fields(self.work, location, sub_location)
        batch.set(placed, self.actor)
        for container in self.containers_of(batch):
            Resource.update(container, {"location": placed["location"], "sub_location": placed["sub_location"]},
                            self.actor)

    def edit_batch_details(self):
        changes = self._details(BATCH_DETAILS)
        self.source.set(changes, self.actor)

    def edit_lot_details(self):
        batch = self.source
        lots = batch.fields.get("material_lots") or []
        named = self.meta.get("material_lot")
        if named is None and len(lots) != 1:
            raise InvalidPayload("'metadata.material_lot' must name which of the batch's lots to edit.",
                                 field="metadata")
        lot_path = path_of(named, "material-lot", "metadata.material_lot") if named else lots[0]
        if lot_path not in lots:
            raise InvalidPayload(f"The lot {lot_path} is not one of the batch's lots.", field="metadata")
        changes = self._details(LOT_DETAILS, skip=("material_lot",))
        if changes.get("expiration_date") is not None:
            try:
                datetime.fromisoformat(str(changes["expiration_date"]).replace("Z", "+00:00"))
            except ValueError:
                raise InvalidPayload("'metadata.expiration_date' must be a date and time.", field="metadata") from None
        limit = changes.get("usage_cycles_limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidPayload("'metadata.usage_cycles_limit' must be a whole number, 0 or more.", field="metadata")
        self.meta["material_lot"] = lot_path
        lot = self.work.find(lot_path)
        lot.trigger_event(MaterialLot.DetailsEdited, changes=changes, actor=self.actor)

    def _details(self, allowed, skip=()):
        changes = {k: v for k, v in self.meta.items() if k not in skip}
        unknown = sorted(set(changes) - set(allowed))
        if unknown or not changes:
            raise InvalidPayload(f"{self.kind} changes {', '.join(allowed)}"
                                 + (f"; not {', '.join(unknown)}." if unknown else "."), field="metadata")
        for name, value in changes.items():
            number = name in NUMERIC_DETAILS
            wrong = value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, float) if number else str))
            if wrong or (name == "usage_cycles_limit" and value is not None and not isinstance(value, int)):
                raise InvalidPayload(f"'metadata.{name}' must be {'a number' if number else 'text'} or null.",
                                     field="metadata")
        return changes

    def dock_dose_module(self):
        batch = self.source
        container = self._module()
        if container.fields.get("is_docked"):
            raise InvalidPayload(f"The module {path(container)} is docked at "
                                 f"{container.fields.get('workstation_uri')}.",
                                 field="metadata")
        workstation = self.meta.get("workstation")
        try:
            kind = parse_uri(workstation)[0]
        except ValueError:
            kind = None
        if kind not in ("printer", "post-processor"):
            raise InvalidPayload("'metadata.workstation' must be a printer or post-processor URI.", field="metadata")
        workstation = normalise(workstation)
        self.meta["workstation"] = workstation
        Resource.update(container, {"is_docked": True, "workstation_uri": workstation}, self.actor)
        if kind == "printer":
            _, printer_type = self.printer(key="workstation")
            batch.set({"at_machine": workstation, "status": "in_use"}, self.actor)
            self.expose(batch, [printer_type] if printer_type else [])
        else:
            batch.set({"post_processor": workstation}, self.actor)

    def undock_dose_module(self):
        batch = self.source
        container = self._module()
        if not container.fields.get("is_docked"):
            raise InvalidPayload(f"The module {path(container)} is not docked.", field="metadata")
        workstation = container.fields.get("workstation_uri")
        Resource.update(container, {"is_docked": False, "workstation_uri": None}, self.actor)
        changes = {}
        if batch.fields.get("post_processor") == workstation:
            changes["post_processor"] = None
        if batch.fields.get("at_machine") == workstation and batch.reserved <= EPSILON:
            changes.update(at_machine=None, status="idle")
        batch.set(changes, self.actor)

    def _module(self):
        if not self.meta.get("container"):
            raise InvalidPayload("'metadata.container' must name the module.", field="metadata")
        container = self.work.visible("material-container", self.meta["container"], "metadata.container")
        self.meta["container"] = path(container)
        if container.fields.get("type") not in DOCKABLE:
            raise InvalidPayload(f"The container {path(container)} is a {container.fields.get('type')} container, "
                                 f"not a module ({', '.join(DOCKABLE)}).", field="metadata")
        if path(container) not in (self.source.fields.get("containers") or []):
            raise InvalidPayload(f"The module {path(container)} does not hold the batch {path(self.source)}.",
                                 field="metadata")
        return container

    def defer_modular_build(self):
        batch = self.source
        build_id = self.meta.get("external_build_id")
        if not isinstance(build_id, str) or not build_id.strip():
            raise InvalidPayload("'metadata.external_build_id' must name the build.", field="metadata")
        self.need_available(batch, self.q, "defer_modular_build")
        available_then = batch.quantity
        self.change(batch, available=-self.q, reserved=self.q)  # reserved until the build is reconciled
        batch.set({"external_build_id": build_id}, self.actor)
        modules = [c for c in self.containers_of(batch) if c.fields.get("type") in DOCKABLE]
        self.work.new("material-batch-action-transaction", uuid5(self.id, "transaction"), {
            "material_batch": path(batch), "material_batch_action": self.path, "parent_batch_action": self.path,
            "parent_transaction": None, "quantity": rounded(self.q),
            "initial_quantity_available": rounded(available_then), "is_complete": False, "is_editable": True,
            "external_build_id": build_id, "container": path(modules[0]) if modules else None,
            "container_type": modules[0].fields.get("type") if modules else None, "reconciled_at": None,
            "initial_reconciled_time": None}, batch.bureau)

    # -- places ---------------------------------------------------------------------------------------------

    def place(self, location, sub_location):
        """(location, sub_location) after metadata's, both checked: a sub-location must be in its location."""
        if self.meta.get("location"):
            location = path(self.work.visible("location", self.meta["location"], "metadata.location"))
            self.meta["location"] = location
            if not self.meta.get("sub_location"):
                sub_location = None
        if self.meta.get("sub_location"):
            sub = self.work.visible("sub-location", self.meta["sub_location"], "metadata.sub_location")
            if sub.fields.get("location") and location and sub.fields["location"] != location:
                raise InvalidPayload("The sub_location is not in the location.", field="metadata")
            sub_location = path(sub)
            self.meta["sub_location"] = sub_location
        return location, sub_location


def location_fields(work, location, sub_location):
    found = work.find(location) if location else None
    return {"location": location, "sub_location": sub_location,
            "location_name": found.fields.get("name") if found is not None else None}


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidPayload(f"'{name}' must be a number more than 0, not {value!r}.", field="metadata")
    return value


def normalise_or_400(value, field):
    try:
        return normalise(value)
    except (TypeError, ValueError):
        raise InvalidPayload(f"'{field}' must be a material-batch-action URI.", field=field) from None


# -- genealogy (§3.12, §5) ------------------------------------------------------------------------------------------
#
# Edges are facts written by actions: batch → batch (MaterialBatchLinking: split, blend, top-off), lot containers →
# batch (root edges with no source batch: create_initial_batch, add_container) and batch → printer type. The trees
# are built from them when asked (services.materials.genealogy); nothing is rebuilt on write.
