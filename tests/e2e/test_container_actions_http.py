"""Container actions over HTTP (materials.md §3.7), every service running (SQLite and PostgreSQL): powder loaded
from a batch into a permanent container, topped off from another batch, transferred, split into a second container,
sieved, loaded into the shop's printer and scrapped, each action's effect on its containers and batches read back as
a client reads them, with the batch action it caused (`from_container_action`); the ledger refuses PUT and DELETE
(405), a bad action is a 400 naming the problem that changes nothing, two actions racing on one container with the
same expected version give one 409, and another bureau's container is a 404."""
import threading
import uuid

import pytest

from tests.e2e.test_production_http import Shop
from tests.kit.plugin import login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


def created(response):
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def path(uri):
    return "/" + uri.split("/", 3)[3] if uri and uri.startswith("http") else uri


def act(api, kind, container, quantity=0.0, source=None, expect=201, **metadata):
    payload = {"action_type": kind, "source_material_container": container, "quantity": quantity,
               "metadata": metadata}
    if source:
        payload["source_batch"] = source
    response = api.post("/material-container-action/", json=payload)
    assert response.status_code == expect, response.text
    return response.headers["Location"] if expect == 201 else response.json()["errors"][0]["title"]


def caused_by(api, action, batch):
    """The batch actions of `batch` the container action caused."""
    rows = api.get(f"/material-batch-action/?filter[source_batch]={batch}").json()["resources"]
    return [r for r in rows if path(r.get("from_container_action")) == path(action)]


@pytest.fixture(scope="module")
def shop(admin):
    return Shop(admin)


def powder_batch(api, shop, containers=2, size=10.0):
    lot = created(api.post("/material-lot/", json={
        "name": f"PA12 {uuid.uuid4().hex[:6]}", "material": shop.material, "location": shop.location,
        "number_of_containers": containers, "size_of_container": size}))
    return created(api.post("/material-batch-action/", json={
        "action_type": "create_initial_batch", "metadata": {
            "containers": api.get(lot).json()["containers_available_for_initial_batches"]}}))


def can(api, name, kind="permanent"):
    return created(api.post("/material-container/", json={"name": f"{name} {uuid.uuid4().hex[:6]}", "type": kind}))


def test_a_permanent_container_through_its_ledger(admin, shop):
    batch, donor = powder_batch(admin, shop), powder_batch(admin, shop, containers=1, size=5.0)
    first, second = can(admin, "Hopper can"), can(admin, "Spare can")

    load = act(admin, "load_container", first, 8.0, source=batch)
    held = path(admin.get(first).json()["current_batch"])
    body = admin.get(first).json()
    assert (body["quantity"], body["status"], [path(b) for b in body["used_in_batches"]]) == (8.0, "in_use", [held])
    assert admin.get(batch).json()["quantity"] == 12.0 and admin.get(held).json()["quantity"] == 8.0
    (split,) = caused_by(admin, load, batch)
    assert split["action_type"] == "split_batch" and split["quantity"] == 8.0
    action = admin.get(load).json()
    assert path(action["source_batch"]) == path(batch) and path(action["metadata"]["batch"]) == held
    assert action["materials"]["material_lots"] == [path(lot) for lot in admin.get(batch).json()["material_lots"]]

    top_off = act(admin, "top_off_container", first, 2.0, source=donor)
    assert admin.get(first).json()["quantity"] == 10.0
    assert (admin.get(held).json()["quantity"], admin.get(donor).json()["quantity"]) == (10.0, 3.0)
    assert [a["action_type"] for a in caused_by(admin, top_off, held)] == ["machine_top_off"]

    act(admin, "transfer_container", first, destination_container=second)
    assert admin.get(first).json()["status"] == "empty" and admin.get(first).json()["current_batch"] is None
    assert admin.get(second).json()["quantity"] == 10.0 and path(admin.get(second).json()["current_batch"]) == held
    children = admin.get(f"/material-container-action/?filter[source_material_container]={second}").json()
    assert [r["action_type"] for r in children["resources"]] == ["load_container"]
    assert children["resources"][0]["parent_container_action"]

    split_off = act(admin, "split_container", second, 4.0, destination_container=first)
    new = path(admin.get(first).json()["current_batch"])
    assert (admin.get(new).json()["quantity"], admin.get(held).json()["quantity"]) == (4.0, 6.0)
    assert [a["action_type"] for a in caused_by(admin, split_off, held)] == ["split_batch"]

    act(admin, "sieve", second)
    assert admin.get(held).json()["powder_quality"] == "sieved"
    loaded = act(admin, "machine_load", second, printer=shop.printer)
    body = admin.get(held).json()
    assert path(body["at_machine"]) == path(shop.printer) and body["reserved_quantity"] == 6.0
    assert [a["action_type"] for a in caused_by(admin, loaded, held)] == ["machine_load"]
    assert admin.get(second).json()["status"] == "empty"

    act(admin, "scrap_container", first)
    assert admin.get(new).json()["status"] == "done" and admin.get(first).json()["quantity"] == 0.0
    # every gram accounted for: 20 + 5 received, 6 in the printer, 12 + 3 left, 4 scrapped
    assert sum(admin.get(b).json()["quantity"] for b in (batch, donor, held)) == 12.0 + 3.0 + 6.0

    # a ledger: no PUT, no DELETE
    assert admin.put(load, json={"notes": "x"}).status_code == 405
    assert admin.delete(load).status_code == 405


def test_refusals_change_nothing(admin, shop):
    batch = powder_batch(admin, shop)
    empty = can(admin, "Empty")
    before = admin.get(batch).json(), admin.get(empty).json()
    assert "holds no material" in act(admin, "sieve", empty, expect=400)
    assert "has 20 cm3 available" in act(admin, "load_container", empty, 25.0, source=batch, expect=400)
    disposable = admin.get(batch).json()["containers"][0]
    assert "is disposable" in act(admin, "load_container", disposable, 1.0, source=batch, expect=400)
    assert "not a module" in act(admin, "dock_module", empty, workstation=shop.printer, expect=400)
    assert (admin.get(batch).json(), admin.get(empty).json()) == before


def test_two_actions_racing_on_one_container(admin, shop):
    batch = powder_batch(admin, shop)
    container = can(admin, "Raced")
    seen = act(admin, "load_container", container, 6.0, source=batch)
    answers = []

    def race(kind):
        answers.append(admin.post("/material-container-action/", json={
            "action_type": kind, "source_material_container": container,
            "metadata": {"previous_action": seen}}))

    racers = [threading.Thread(target=race, args=(kind,)) for kind in ("sieve", "unload_container")]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert "latest action is" in next(a for a in answers if a.status_code == 409).json()["errors"][0]["title"]
    mine = admin.get(f"/material-container-action/?filter[source_material_container]={container}").json()
    assert len(mine["resources"]) == 2  # the load and the winner


def test_another_bureaus_container_is_not_found(admin, shop):
    batch = powder_batch(admin, shop)
    container = can(admin, "Mine")
    act(admin, "load_container", container, 3.0, source=batch)
    intruder = make_tenant(admin, login, "containers").manager
    response = intruder.post("/material-container-action/", json={
        "action_type": "unload_container", "source_material_container": container})
    assert response.status_code == 404, response.text
    assert admin.get(container).json()["quantity"] == 3.0
