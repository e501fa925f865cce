"""The container-action ledger (materials.md §3.7, §4 "Container-action side effects", §6.3): each POST
/material-container-action/ is one action on one container (`source_material_container`), appended, never changed
(PUT/DELETE 405 by the catalogue's verbs).

What an action does to the container — quantity, status, current_batch, used_in_batches, location, docking, tare,
type — is decided here; what it does to a batch is a batch action written in the same transaction, with
`from_container_action` naming this action (services.materials.actions does the batch's arithmetic, so every rule of
the batch ledger holds for material moved through containers too):

  machine_load → machine_load          sieve → sieve                scrap_container → scrap_batch (the whole
  split_container → split_batch        relocate_container → relocate    batch) or edit_batch_quantity (part of it)
  dock_module/undock_module → dock_dose_module/undock_dose_module (when the module holds a batch)
  load_container → split_batch (the loaded material becomes a batch of its own, in this container)
  top_off_container → machine_top_off (the donor tops off the container's batch; an edge donor → batch)

transfer_container records the destination's side as a child action (`parent_container_action`); unload_container,
update_module_tare and reclassify touch no batch quantity.

Concurrency: the container's latest action is its version. Concurrent actions on one container are serialised by
the store (a conflicting save runs again on the fresh container); a client that sends the latest action it saw
(`metadata.previous_action`) gets 409 when another got there first, and nothing changes.
"""
from uuid import uuid5

from services.materials.actions import (DOCKABLE, Ledger, MaterialBatchAction, location_fields, normalise_or_400,
                                       q_text)
from services.materials.units import EPSILON, convert, rounded
from services.materials.work import Work, path
from shared.errors import Conflict, InvalidPayload
from shared.resource import Resource
from shared.uris import normalise, parse_uri

TYPES = ("disposable", "permanent", "dose", "overflow", "build", "cyclone")
TAKES_SOURCE_BATCH = ("load_container", "top_off_container")
REFILLABLE_ONLY = ("load_container", "top_off_container", "dock_module", "undock_module", "update_module_tare",
                   "reclassify")
NEEDS_MATERIAL = ("transfer_container", "unload_container", "scrap_container", "machine_load", "sieve",
                  "split_container", "top_off_container")


class MaterialContainerAction(Resource):
    resource = "material-container-action"

    @classmethod
    def gather(cls, peers, verb, uuid, payload, ctx):
        """The printer a machine_load or a dock names, from production (as for batch actions)."""
        return MaterialBatchAction.gather(peers, verb, uuid, payload, ctx)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        return ContainerLedger(Work(unit), new_id, fields).run()


class ContainerLedger:
    def __init__(self, work, action_id, fields):
        self.work = work
        self.actor = work.actor
        self.id = action_id
        self.path = f"/material-container-action/{action_id}/"
        self.fields = dict(fields)
        self.kind = fields["action_type"]
        quantity = fields.get("quantity")
        self.q = 0.0 if quantity is None else float(quantity)
        if self.q < 0:
            raise InvalidPayload(f"'quantity' must be 0 or more, not {self.q:g}.", field="quantity")
        metadata = fields.get("metadata") if fields.get("metadata") is not None else {}
        if not isinstance(metadata, dict):
            raise InvalidPayload("'metadata' must be an object.", field="metadata")
        self.meta = dict(metadata)
        self.container = None
        self.batch = None  # the batch the action is about (the container's, or the one loaded into it)
        self.batch_actions = 0
        self.last_ledger = None

    def run(self):
        container = self.container = self.work.visible("material-container", self.fields["source_material_container"],
                                                       "source_material_container")
        previous = container.fields.get("_last_action")
        expected = self.meta.pop("previous_action", None)
        if expected and normalise_or_400(expected, "metadata.previous_action") != previous:
            raise Conflict(f"The container {path(container)} has changed since {expected}: its latest action is "
                           f"{previous}. Nothing was changed; read the container and try again.",
                           field="metadata")
        if container.fields.get("archived"):
            raise InvalidPayload(f"The container {path(container)} is archived.", field="source_material_container")
        if self.kind in REFILLABLE_ONLY and container.fields.get("disposable"):
            raise InvalidPayload(f"The container {path(container)} is disposable: {self.kind} is for permanent "
                                 "containers and modules.", field="source_material_container")
        if self.kind in NEEDS_MATERIAL and not self.holds_material(container):
            raise InvalidPayload(f"The container {path(container)} holds no material: {self.kind} is not possible.",
                                 field="source_material_container")
        if self.fields.get("source_batch") and self.kind not in TAKES_SOURCE_BATCH:
            current = container.fields.get("current_batch")
            named = path(self.work.visible("material-batch", self.fields["source_batch"], "source_batch"))
            if named != current:
                raise InvalidPayload(f"The container {path(container)} holds the batch {current}, not {named}.",
                                     field="source_batch")
        if self.kind not in TAKES_SOURCE_BATCH:
            self.batch = self.work.find(container.fields.get("current_batch"))
        getattr(self, self.kind)()
        Resource.update(container, {"_last_action": self.path}, self.actor)
        fields = dict(self.fields, source_material_container=path(container), quantity=rounded(self.q),
                      metadata=self.meta, user=self.actor, materials=self.materials(),
                      source_batch=path(self.batch) if self.batch is not None else None,
                      parent_container_action=None)
        return fields, self.work.changed(), {}

    # -- helpers --------------------------------------------------------------------------------------------------

    @staticmethod
    def holds_material(container):
        return bool(container.fields.get("current_batch")) and (container.fields.get("quantity") or 0) > EPSILON

    def materials(self):
        """§3.7: where the material acted on came from (its lots and their materials), for quarantine."""
        if self.batch is None:
            return {"material_lots": [], "material_names": []}
        lots = list(self.batch.fields.get("material_lots") or [])
        names = []
        for lot in (self.work.find(p) for p in lots):
            name = lot.fields.get("material_name") if lot is not None else None
            if name and name not in names:
                names.append(name)
        return {"material_lots": lots, "material_names": names}

    def batch_action(self, action_type, source, quantity=0.0, **metadata):
        """The batch action this container action causes, run by the batch ledger and saved with it."""
        self.batch_actions += 1
        action_id = uuid5(self.id, f"batch-action:{self.batch_actions}")
        ledger = Ledger(self.work, action_id, {
            "action_type": action_type, "source_batch": path(source), "quantity": quantity, "metadata": metadata,
            "notes": self.fields.get("notes"), "from_container_action": self.path})
        fields, _, result = ledger.run()
        self.work.new("material-batch-action", action_id, fields, source.bureau)
        self.last_ledger = ledger
        return self.work.find(result["uri"]) if result.get("uri") else None

    def in_batch_units(self, batch, quantity):
        return _convert(quantity, self.container.fields.get("_units") or batch.units, batch.units, batch)

    def check_restrictions(self, container, batch):
        """Q17: a container holds only the materials it is restricted to (when it lists any), and one material."""
        material = batch.fields.get("_material")
        allowed = container.fields.get("material_restrictions") or []
        if allowed and material not in allowed:
            raise InvalidPayload(f"The container {path(container)} may hold only {', '.join(allowed)}; the batch "
                                 f"{path(batch)} is {material}.", field="source_material_container")
        own = container.fields.get("material")
        if own and material and own != material and container.fields.get("material_lot"):
            raise InvalidPayload(f"The container {path(container)} is a container of {own}.",
                                 field="source_material_container")

    def fill(self, container, batch, quantity):
        """An empty container takes `quantity` (in the batch's units) of the batch: it joins the batch."""
        Resource.update(container, {"quantity": rounded(quantity), "_units": batch.units,
                                    "material": batch.fields.get("_material"),
                                    "full_quantity": max(float(container.fields.get("full_quantity") or 0),
                                                         rounded(quantity))}, self.actor)
        container.join(path(batch), self.actor)
        listed = list(batch.fields.get("containers") or [])
        if path(container) not in listed:
            listed.append(path(container))
        batch.set({"containers": listed, "material_in_containers": True}, self.actor)
        types = batch.fields.get("_printer_types") or []
        if types:
            container.expose(types, self.actor)

    def release(self, container, batch):
        """The container gives up its material (moved on, loaded, scrapped): empty, in no batch; a batch left with
        no container is in a bin."""
        container.empty(self.actor)
        if container.fields.get("material_lot"):
            self.work.lots_to_total.add(container.fields["material_lot"])
            for lot_path in sorted(self.work.lots_to_total):
                self.work.find(lot_path).recount(self.work)
        if batch is not None:
            listed = [p for p in batch.fields.get("containers") or [] if p != path(container)]
            batch.set({"containers": listed, "material_in_containers": bool(listed)}, self.actor)

    def empty_destination(self, key="destination_container", required=True):
        value = self.meta.get(key)
        if value is None:
            if required:
                raise InvalidPayload(f"'metadata.{key}' must name the container the material goes to.",
                                     field="metadata")
            return None
        destination = self.work.visible("material-container", value, f"metadata.{key}")
        self.meta[key] = path(destination)
        if destination is self.container:
            raise InvalidPayload("A container cannot move material into itself.", field="metadata")
        if destination.fields.get("disposable") or destination.fields.get("archived"):
            raise InvalidPayload(f"The container {path(destination)} is "
                                 f"{'archived' if destination.fields.get('archived') else 'disposable'}: it cannot "
                                 "be filled.", field="metadata")
        if self.holds_material(destination):
            raise InvalidPayload(f"The container {path(destination)} holds material of the batch "
                                 f"{destination.fields.get('current_batch')}: empty it first.", field="metadata")
        return destination

    def whole_container(self):
        """The container's quantity in its batch's units (the amount load, scrap, sieve act on)."""
        return self.in_batch_units(self.batch, float(self.container.fields.get("quantity") or 0))

    def is_whole_batch(self):
        """The container holds all of its batch's material (its only container, nothing outside)."""
        others = [p for p in self.batch.fields.get("containers") or [] if p != path(self.container)]
        return not others and abs(self.whole_container() - self.batch.quantity) <= EPSILON

    # -- the actions (§3.7), one method each --------------------------------------------------------------------

    def relocate_container(self):
        if not self.meta.get("location") and not self.meta.get("sub_location"):
            raise InvalidPayload("relocate_container needs 'metadata.location' or 'metadata.sub_location'.",
                                 field="metadata")
        container = self.container
        if self.batch is not None and self.is_whole_batch():  # the batch is where its only container is
            self.batch_action("relocate", self.batch, **{k: self.meta[k] for k in ("location", "sub_location")
                                                         if self.meta.get(k)})
            placed = {k: self.batch.fields.get(k) for k in ("location", "sub_location")}
        else:
            # the batch ledger's check of a place (a sub-location in its location), for the container alone
            placer = Ledger(self.work, self.id, {"action_type": "relocate", "metadata": self.meta})
            location, sub_location = placer.place(container.fields.get("location"),
                                                  container.fields.get("sub_location"))
            placed = location_fields(self.work, location, sub_location)
            placed.pop("location_name")
        self.meta.update({k: v for k, v in placed.items() if self.meta.get(k)})
        Resource.update(container, placed, self.actor)

    def load_container(self):
        container = self.container
        if not self.fields.get("source_batch"):
            raise InvalidPayload("'source_batch' must name the batch to load into the container.",
                                 field="source_batch")
        source = self.work.visible("material-batch", self.fields["source_batch"], "source_batch")
        if self.holds_material(container):
            raise InvalidPayload(f"The container {path(container)} holds material of the batch "
                                 f"{container.fields.get('current_batch')}: top it off or empty it first.",
                                 field="source_material_container")
        if self.q <= 0:
            raise InvalidPayload("load_container needs a quantity of more than 0.", field="quantity")
        self.check_restrictions(container, source)
        # the loaded material is a batch of its own, split from the source, in this container
        new = self.batch_action("split_batch", source, self.q)
        self.fill(container, new, self.q)
        self.batch = source  # the action's source_batch: the batch loaded into the container (§3.7)
        self.meta["batch"] = path(new)

    def top_off_container(self):
        container = self.container
        if not self.fields.get("source_batch"):
            raise InvalidPayload("'source_batch' must name the batch to top off the container with.",
                                 field="source_batch")
        donor = self.work.visible("material-batch", self.fields["source_batch"], "source_batch")
        batch = self.work.find(container.fields.get("current_batch"))
        if donor is batch:
            raise InvalidPayload(f"The container {path(container)} already holds the batch {path(donor)}.",
                                 field="source_batch")
        if self.q <= 0:
            raise InvalidPayload("top_off_container needs a quantity of more than 0.", field="quantity")
        self.check_restrictions(container, donor)
        self.batch_action("machine_top_off", batch, self.q, batch_to_load=path(donor), container=path(container))
        self.batch = donor
        added = _convert(self.q, batch.units, container.fields.get("_units") or batch.units, batch)
        quantity = rounded(float(container.fields.get("quantity") or 0) + added)
        Resource.update(container, {"quantity": quantity, "status": "in_use", "full_quantity": max(
            float(container.fields.get("full_quantity") or 0), quantity)}, self.actor)

    def transfer_container(self):
        container, batch = self.container, self.batch
        destination = self.empty_destination()
        self.check_restrictions(destination, batch)
        moved = self.whole_container()
        self.q = moved
        self.release(container, batch)
        self.fill(destination, batch, moved)
        child_id = uuid5(self.id, "transfer:destination")
        self.work.new("material-container-action", child_id, {
            "action_type": "load_container", "source_material_container": path(destination),
            "source_batch": path(batch), "quantity": rounded(moved), "metadata": {"from_container": path(container)},
            "notes": self.fields.get("notes"), "user": self.actor, "materials": self.materials(),
            "parent_container_action": self.path}, destination.bureau)
        Resource.update(destination, {"_last_action": f"/material-container-action/{child_id}/"}, self.actor)

    def unload_container(self):
        """The material leaves the container and stays in its batch (a bin, or another of its containers)."""
        self.q = self.whole_container()
        self.release(self.container, self.batch)

    def scrap_container(self):
        batch = self.batch
        scrapped = self.whole_container()
        self.q = scrapped
        if batch.reserved > EPSILON or batch.fields.get("at_machine"):
            raise InvalidPayload(f"The batch {path(batch)} is loaded in {batch.fields.get('at_machine') or 'a machine'}"
                                 f": unload it before scrapping its containers.", field="source_material_container")
        whole = self.is_whole_batch()
        self.release(self.container, batch)
        if whole:
            self.batch_action("scrap_batch", batch, 0.0)
        else:  # the rest of the batch stays: its quantity is corrected by what the container held
            self.batch_action("edit_batch_quantity", batch, max(batch.quantity - scrapped, 0.0))

    def machine_load(self):
        batch = self.batch
        loaded = self.whole_container()
        self.q = loaded
        metadata = {k: self.meta[k] for k in ("printer", "machine", "run") if self.meta.get(k) is not None}
        self.release(self.container, batch)
        self.batch_action("machine_load", batch, loaded, **metadata)
        self.meta.update({k: v for k, v in self.last_ledger.meta.items() if k in ("printer", "run")})

    def sieve(self):
        self.q = self.whole_container()
        self.batch_action("sieve", self.batch, 0.0)

    def split_container(self):
        container, batch = self.container, self.batch
        held = self.whole_container()
        if self.q <= 0 or self.q > held + EPSILON:
            raise InvalidPayload(f"The container {path(container)} holds {q_text(held, batch.units)}; split_container "
                                 f"needs a quantity of more than 0 and at most that, not {self.q:g}.",
                                 field="quantity")
        destination = self.empty_destination(required=False)
        if destination is not None:
            self.check_restrictions(destination, batch)
        new = self.batch_action("split_batch", batch, self.q)
        left = rounded(float(container.fields.get("quantity") or 0) - _convert(
            self.q, batch.units, container.fields.get("_units") or batch.units, batch))
        if left <= EPSILON:
            self.release(container, batch)
        else:
            Resource.update(container, {"quantity": left}, self.actor)
        if destination is not None:
            self.fill(destination, new, self.q)
        self.meta["batch"] = path(new)

    def dock_module(self):
        container = self.container
        self.module(container)
        if self.batch is not None and self.holds_material(container):
            self.batch_action("dock_dose_module", self.batch, container=path(container),
                              workstation=self.meta.get("workstation"))
            self.meta["workstation"] = container.fields.get("workstation_uri")
            return
        if container.fields.get("is_docked"):
            raise InvalidPayload(f"The module {path(container)} is docked at "
                                 f"{container.fields.get('workstation_uri')}.", field="metadata")
        workstation = _workstation(self.meta.get("workstation"))
        if workstation is None:
            raise InvalidPayload("'metadata.workstation' must be a printer or post-processor URI.", field="metadata")
        self.meta["workstation"] = workstation
        Resource.update(container, {"is_docked": True, "workstation_uri": workstation}, self.actor)

    def undock_module(self):
        container = self.container
        self.module(container)
        if not container.fields.get("is_docked"):
            raise InvalidPayload(f"The module {path(container)} is not docked.", field="metadata")
        if self.batch is not None and self.holds_material(container):
            self.batch_action("undock_dose_module", self.batch, container=path(container))
        else:
            Resource.update(container, {"is_docked": False, "workstation_uri": None}, self.actor)

    @staticmethod
    def module(container):
        if container.fields.get("type") not in DOCKABLE:
            raise InvalidPayload(f"The container {path(container)} is a {container.fields.get('type')} container, "
                                 f"not a module ({', '.join(DOCKABLE)}).", field="source_material_container")

    def update_module_tare(self):
        tare = self.meta.get("tare_weight")
        if isinstance(tare, bool) or not isinstance(tare, (int, float)) or tare < 0:
            raise InvalidPayload(f"'metadata.tare_weight' must be the empty module's weight in grams, 0 or more, not "
                                 f"{tare!r}.", field="metadata")
        Resource.update(self.container, {"tare_weight": float(tare)}, self.actor)

    def reclassify(self):
        kind = self.meta.get("type")
        if kind not in TYPES or kind == "disposable":
            raise InvalidPayload(f"'metadata.type' must be one of {', '.join(TYPES[1:])}, not {kind!r}.",
                                 field="metadata")
        if self.container.fields.get("is_docked"):
            raise InvalidPayload(f"The module {path(self.container)} is docked: undock it before reclassifying.",
                                 field="source_material_container")
        self.meta["previous_type"] = self.container.fields.get("type")
        Resource.update(self.container, {"type": kind}, self.actor)


def _convert(quantity, from_units, to_units, batch):
    if from_units == to_units:
        return float(quantity)
    return convert(quantity, from_units, to_units, batch.fields.get("_density"))


def _workstation(value):
    try:
        kind = parse_uri(value)[0]
    except (TypeError, ValueError):
        return None
    return normalise(value) if kind in ("printer", "post-processor") else None
