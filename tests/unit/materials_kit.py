"""A materials application on an in-memory store, with helpers that receive lots and post batch actions the way the
gateway would (each command with the caller's ctx)."""
from uuid import UUID

from services.materials.application import Materials
from shared.uris import parse_uri
from tests.kit.apps import BUREAU, IN_MEMORY, command_ctx

OTHER_BUREAU = "/bureau/22222222-2222-2222-2222-222222222222/"


class Kit:
    def __init__(self, bureau=BUREAU, **env):
        self.app = Materials(env={**IN_MEMORY, **env})
        self.bureau = bureau

    def ctx(self, **extra):
        return command_ctx(bureau=self.bureau, **extra)

    def create(self, resource, payload, **ctx):
        return self.app.create(resource, payload, self.ctx(**ctx))["uri"]

    def get(self, path):
        resource, uuid = parse_uri(path)
        return self.app.read(resource, uuid, {"platform_admin": True})

    def aggregate(self, path):
        return self.app.repository.get(UUID(parse_uri(path)[1]))

    def material(self, units="kg", density=4.43, name="Ti64"):
        return self.create("material", {"name": name, "type": "base", "cost": 100.0, "units": units,
                                        "density": density, "manufacturer": "/manufacturer/%s/" % ("3" * 32),
                                        "bureau": self.bureau, "color": "#000000", "description": "powder",
                                        "third_party_fulfillment": False})

    def location(self, name="Main"):
        return self.create("location", {"name": name, "address": "1 Loop Rd", "bureau": self.bureau})

    def lot(self, material=None, location=None, containers=4, size=10.0, **fields):
        """A lot of the kit's one material (unless another is given), received at its one location."""
        if material is None:
            self._material = getattr(self, "_material", None) or self.material()
            self._location = getattr(self, "_location", None) or self.location()
        payload = {"name": "Lot", "material": material or self._material,
                   "location": location or self._location if material is None else location or self.location(),
                   "number_of_containers": containers, "size_of_container": size, **fields}
        return self.create("material-lot", payload)

    def act(self, action_type, source=None, quantity=0.0, printers=None, **metadata):
        extra = {"printers": printers} if printers is not None else {}
        payload = {"action_type": action_type, "source_batch": source, "quantity": quantity, "metadata": metadata}
        if "previous_action" in metadata:
            payload["previous_action"] = metadata.pop("previous_action")
        result = self.app.create("material-batch-action", payload, self.ctx(**extra))
        return result["uri"]

    def initial_batch(self, lot, count=None):
        containers = self.get(lot)["containers_available_for_initial_batches"]
        return self.act("create_initial_batch", containers=containers[:count] if count else containers)

    def genealogy(self, batch, **ctx):
        """GET /material-genealogy/<the batch's uuid>/ as the materials service answers it (built on read)."""
        return self.app.genealogy(parse_uri(batch)[1], ctx or {"platform_admin": True})

    def batch(self, path):
        return self.get(path)

    def close(self):
        self.app.close()
