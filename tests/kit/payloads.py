"""Minimal valid payloads for any catalogue resource, for the generated conformance tests.

Required URI fields get a real target: the caller's bureau or user, or a resource of the referenced kind created
first (recursively, once per kind): through the API where the reference allows POST, otherwise the way the system
makes it, by its owning service (`create_internally`; e.g. prints, which production creates). A reference that
cannot be satisfied either way raises Unreachable with the reason, never a silent skip.
"""
import itertools
import time
from datetime import datetime, timezone

from shared import catalogue
from shared.uris import uuid_of


class Unreachable(Exception):
    pass


# Values the catalogue's types cannot say but the resource's rules need (production.md §4.1: a build volume is
# {x, y, z} in mm; §5.3: a step names a workstation type; §4.4: a post-processor that is no service has a name and
# a location).
OBJECT_VALUES = {("printer-type", "build_volume"): {"x": 250.0, "y": 250.0, "z": 300.0}}
REFERENCE_KINDS = {("process-step", "workstation_type_uri"): "printer-type"}
ALSO_NEEDED = {"post-processor": ("name", "location")}
# Names unique in a bureau (printer types, workflows, …): every payload gets its own.
_names = itertools.count(1)


class PayloadFactory:
    def __init__(self, api, bureau, user, create_internally=None):
        self.api = api
        self.create_internally = create_internally
        self.fixed = {"bureau": bureau, "users": user}
        self.created = {}
        self.free_prints = []

    def minimal(self, spec):
        payload = {name: self.value_for(field, spec.name)
                   for name, field in spec.writable_fields().items()
                   if field.required or name in ALSO_NEEDED.get(spec.name, ())}
        if spec.name in REALISTIC:  # resources whose required fields alone do not describe a possible request
            payload = REALISTIC[spec.name](self, payload)
        # A single `related_uuid` names a resource of `related_table_name` that must exist (a zipfile request's order).
        if isinstance(payload.get("related_uuid"), str) and payload.get("related_table_name"):
            target = self.reference(payload["related_table_name"].replace("_", "-"), spec.name)
            payload["related_uuid"] = uuid_of(target)
        # A layout packs models on a plate: `build` must name the plate and `models` models or prints (§4.13)
        if spec.name == "layout":
            payload["build"] = {"type": "rectangle", "x": 100.0, "y": 100.0, "time_limit_s": 1}
            payload["models"] = [self.reference("model", spec.name)]
        return payload

    def value_for(self, field, owner):
        if field.name == "csrf_token":  # role changes need the session's token
            return self.api.get("/csrf-token/").json()["token"]
        if (owner, field.name) == ("run", "prints"):  # a print is in one run at a time: each run gets its own
            return [self.free_print()]
        if field.choices:
            return next(c for c in field.choices if c is not None)
        if (owner, field.name) in OBJECT_VALUES:
            return dict(OBJECT_VALUES[owner, field.name])
        if (owner, field.name) in REFERENCE_KINDS:
            return self.reference(REFERENCE_KINDS[owner, field.name], owner)
        if field.name == "name" and field.type == "string":
            return f"conformance {next(_names)}"
        if field.type == "uri":
            return self.reference(field.ref, owner)
        if field.type == "array":
            return [self.reference(field.ref, owner)] if field.items == "uri" else []
        return _scalar(field)

    def reference(self, resource_name, owner):
        if resource_name is None:  # a URI field that may point at several kinds: any existing resource will do
            return self.fixed["bureau"]
        if resource_name in self.fixed:
            return self.fixed[resource_name]
        if resource_name not in self.created:
            target = catalogue.catalogue().get(resource_name)
            if target is None or resource_name == owner:
                raise Unreachable(f"{owner} needs a {resource_name}, which no service owns")
            self.created[resource_name] = self.create(target)
        return self.created[resource_name]

    def free_print(self, batch=20):
        """A print no run holds yet, made the system's way (production.md F1): a confirmed line item of a one-step
        printing workflow, `batch` pieces at a time."""
        if not self.free_prints:
            step = self.create(catalogue.resource("process-step"))
            workflow = self._post("/workflow/", {"name": f"conformance {next(_names)}", "process_steps": [step]})
            order = self._post("/order/", {"name": f"conformance {next(_names)}"})
            product = self._post("/product/", {"order": order, "no_model_upload": True})
            item = self._post("/line-item/", {"product": product, "quantity": batch, "workflow": workflow})
            _poll(lambda: self.api.get(item).json()["status"] == "pending", f"{item} never became pending")
            confirmed = self.api.put(item, json={"status": "confirmed"})
            if confirmed.status_code != 204:
                raise Unreachable(f"confirming a line item for prints failed: {confirmed.text}")
            prints = _poll(lambda: (lambda found: len(found) == batch and found)(self.api.get(
                f"/print/?filter[line_item]={item}&per_page=500").json()["resources"]), "no prints were planned")
            self.free_prints = [p["uri"] for p in prints]
        return self.free_prints.pop()

    def _post(self, path, payload):
        response = self.api.post(path, json=payload)
        if response.status_code != 201:
            raise Unreachable(f"creating {path} failed: {response.text}")
        return response.headers["Location"]

    def create(self, spec):
        """A new resource of `spec` (its URI): POSTed where the API allows it, else made by its owning service."""
        if spec.special or spec.service == "gateway":
            raise Unreachable(f"{spec.name} is not stored by any service")
        if "POST" in spec.verbs:
            response = self.api.post(spec.path, json=self.minimal(spec))
            if response.status_code != 201:
                raise Unreachable(f"creating a {spec.name} failed: {response.text}")
            return response.headers["Location"]
        if self.create_internally is None:
            raise Unreachable(f"{spec.name} cannot be created through the API")
        return self.create_internally(spec, self.minimal(spec))


def _poll(check, failure, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise Unreachable(failure)


def _scalar(field):
    if field.type == "integer":
        return int(field.minimum) if field.minimum is not None else 1
    if field.type == "number":
        return float(field.minimum) if field.minimum is not None else 1.5
    if field.type == "boolean":
        return True
    if field.type == "datetime":
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).isoformat()
    if field.type == "object":
        return {}
    if field.type == "any":
        return "conformance"
    return "conformance"


def filterable_field(spec, payload):
    """A scalar field of the payload to LIST by (prefers strings, which every store compares exactly)."""
    for name, value in payload.items():
        field = spec.fields[name]
        if field.type in ("string", "uri", "integer", "boolean") and value is not None and not field.choices:
            return name, value
    return None


def _initial_batch(factory):
    """A batch made the way batches are (materials.md F2): a new lot's containers, create_initial_batch (once per
    factory: later payloads act on the same batch)."""
    if "material-batch:initial" in factory.created:
        return factory.created["material-batch:initial"]
    lot = factory.create(catalogue.resource("material-lot"))
    containers = factory.api.get(lot).json()["containers_available_for_initial_batches"]
    response = factory.api.post("/material-batch-action/", json={"action_type": "create_initial_batch",
                                                                "metadata": {"containers": containers}})
    if response.status_code != 201:
        raise Unreachable(f"creating a material batch failed: {response.text}")
    factory.created["material-batch:initial"] = response.headers["Location"]
    return response.headers["Location"]


# materials.md §3.4, §3.5, §4: a lot's containers need a size, a lot action and a batch action their metadata (an
# action on a batch of its own, so the action, not a new batch, is what the POST names).
REALISTIC = {
    # capture-and-platform.md A5: start_job (the first type) needs a job file; a connection test needs nothing more
    "modeler-command": lambda factory, payload: dict(payload, type="check_configuration"),
    "material-lot": lambda factory, payload: dict(payload, size_of_container=10.0),
    "material-lot-action": lambda factory, payload: dict(payload, action_type="add_containers", metadata={
        "number_of_containers": 1, "size_of_container": 5.0}),
    "material-batch-action": lambda factory, payload: dict(payload, action_type="edit_batch_details",
                                                           source_batch=_initial_batch(factory),
                                                           metadata={"notes": "conformance"}),
    # production.md §2.3: a transformation names the prints of its source run it transforms
    "run-transformation": lambda factory, payload: dict(payload, prints=factory.api.get(
        payload["source_run"]).json()["prints"]),
    # §3.15: one stock per (material, location): each stock payload at a location of its own
    "stock": lambda factory, payload: dict(payload, location=factory.create(catalogue.resource("location"))),
    # §3.13: a consume needs material in the stock; a replenish of a new stock is always possible
    "material-stock-action": lambda factory, payload: dict(payload, action_type="replenish", action_quantity=2.0),
    "material-batch-traceability-report": lambda factory, payload: dict(payload,
                                                                        material_batch=_initial_batch(factory)),
    # production.md §4.7–4.9: a downtime blocks one workstation, finishing after it starts; a work-schedule and a
    # labor record belong to one workstation type each (one per type: a type of their own)
    "downtime": lambda factory, payload: dict(payload, printer=factory.reference("printer", "downtime"),
                                              start="2027-01-04T08:00:00+00:00", finish="2027-01-04T10:00:00+00:00"),
    "work-schedule": lambda factory, payload: dict(payload, printer_type=factory.create(
        catalogue.resource("printer-type"))),
    "labor": lambda factory, payload: dict(payload, printer_type=factory.create(catalogue.resource("printer-type")),
                                           duration=60.0),
    # §2.4, §2.8: the run moved or estimated waits in a printer's queue
    "run-queue": lambda factory, payload: dict(payload, run=_queued_run(factory)),
    "schedule_runs": lambda factory, payload: dict(payload, run=_queued_run(factory)),
    # §2.2, §4.12: the pieces of a confirmed line item, at a step done on the printer's type, in no run yet
    "create-runs": lambda factory, payload: dict(payload, pieces=[_free_piece(factory)],
                                                 primary_workstation=factory.reference("printer", "create-runs")),
    "packing-process": lambda factory, payload: dict(payload, pieces=[_free_piece(factory)],
                                                     printer=factory.reference("printer", "packing-process")),
    # materials.md §3.7: the first action type, a move, names where the container goes
    # capture-and-platform.md A12: a serial number is registered once on the whole platform
    "sensor": lambda factory, payload: dict(payload, serial_number=f"conformance-{next(_names)}"),
    "material-container-action": lambda factory, payload: dict(payload, metadata={
        "location": factory.reference("location", "material-container-action")}),
}


def _free_piece(factory):
    return factory.api.get(factory.free_print()).json()["piece"]


def _queued_run(factory):
    return factory._post("/run/", {"prints": [factory.free_print()], "printer": factory.reference("printer", "run")})
