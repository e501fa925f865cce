"""The whole shop floor over HTTP (production.md §1.1–1.5, §2.1, §2.5, flow F3; issue 13 "Done when"): an order with
two line items (one with a model, one no_model_upload), a workflow printing → post-processing → shipping; confirm →
pieces and prints; each line item's runs go queued → in-progress → complete, the downstream runs become work-ready
by themselves, and the pieces, the line items (followed by the orders service from production's feed) and the order
end complete. Every intermediate status of run, print, piece, line item (its whole history from the audit log) and
order is asserted, and so are the refused edge (409), the forced one, the missing step input and the busy
workstation; a cancelled run closes its actuals and returns its prints."""
import pytest

from services.production import runs
from tests.e2e.test_line_item_models import upload
from tests.e2e.test_production_http import Shop, created, error, of_line_item, settled_count, unique
from tests.kit.meshes import box_stl
from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


class Floor:
    def __init__(self, api, shop):
        self.api, self.shop = api, shop
        self.ship_step = shop.step(shop.shipping, tracking_id="required")
        self.workflow = shop.workflow(steps=[shop.steps[0], shop.steps[1], self.ship_step])

    def status(self, uri):
        return self.api.get(uri).json()["status"]

    def becomes(self, uri, status, timeout=30):
        eventually(lambda: self.status(uri) == status, timeout=timeout)

    def all_become(self, resource, item, statuses, position=None, timeout=30):
        """Every `resource` of the line item (at one step, for prints) reaches the status(es)."""
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)

        def seen():
            found = [r for r in of_line_item(self.api, resource, item)
                     if position is None or r.get("process_step_position") == position]
            return found and {r["status"] for r in found} == wanted and found
        return eventually(seen, timeout=timeout)

    def prints(self, item, position):
        return sorted([p for p in of_line_item(self.api, "print", item) if p["process_step_position"] == position],
                      key=lambda p: p["copy"])

    def run(self, item, position, **fields):
        return created(self.api, "/run/", {"prints": [p["uri"] for p in self.prints(item, position)], **fields})

    def move(self, run, status, **fields):
        return self.api.put(run, json={"status": status, **fields})

    def moved(self, run, status, **fields):
        response = self.move(run, status, **fields)
        assert response.status_code == 204, response.text
        self.becomes(run, status)


def status_history(api, uri):
    """The statuses a resource went through, from its audit rows (/event/: previous_value → current_value)."""
    rows = [r for r in api.get(f"/event/?filter[reference]={uri}&page[limit]=500").json()["resources"]
            if r["key"] == "status"]
    moves = {r["previous_value"]: r["current_value"] for r in rows}
    history = [moves.get(None)]
    while history[-1] in moves and len(history) <= len(rows):
        history.append(moves[history[-1]])
    return history


@pytest.fixture(scope="module")
def floor(admin):
    return Floor(admin, Shop(admin))


def test_an_order_goes_through_the_shop_floor(admin, floor, tmp_path):
    shop = floor.shop
    model = upload(admin, box_stl(tmp_path / "bracket.stl", dims=(10, 20, 30)))
    order = created(admin, "/order/", {"name": unique("shop floor")})
    with_model = created(admin, "/product/", {"order": order})
    without_model = created(admin, "/product/", {"order": order, "no_model_upload": True})
    modelled = created(admin, "/line-item/", {"product": with_model, "model": model, "quantity": 2,
                                              "workflow": floor.workflow})
    blank = created(admin, "/line-item/", {"product": without_model, "quantity": 1, "workflow": floor.workflow})
    for item in (modelled, blank):
        floor.becomes(item, "pending")  # the system's own moves
    floor.becomes(order, "pending")

    # confirm: pieces and prints appear
    assert admin.put(order, json={"status": "confirmed"}).status_code == 204
    for item, quantity in ((modelled, 2), (blank, 1)):
        floor.becomes(item, "confirmed")
        pieces = settled_count(admin, "piece", item, quantity)
        assert {p["status"] for p in pieces} == {"confirmed"}
        prints = settled_count(admin, "print", item, 3 * quantity)
        assert {(p["status"], p["run"]) for p in prints} == {("created", None)}
    floor.becomes(order, "confirmed")

    # runs for every step, made up front as the create-runs page does; models and no models are never mixed
    mixed = [floor.prints(modelled, 0)[0]["uri"], floor.prints(blank, 0)[0]["uri"]]
    assert error(admin.post("/run/", json={"prints": mixed}), 400) == runs.MIXED_MODELS
    steps_mixed = [floor.prints(modelled, 0)[0]["uri"], floor.prints(modelled, 1)[0]["uri"]]
    assert error(admin.post("/run/", json={"prints": steps_mixed}), 400) == runs.MIXED_TYPES
    chains = {}
    for item in (modelled, blank):
        chains[item] = (floor.run(item, 0, printer=shop.printer), floor.run(item, 1, post_processor=shop.post_processor),
                        floor.run(item, 2, shipping=shop.shipping))
        printing, sifting, shipping = chains[item]
        for run, operation in zip(chains[item], ("printing", "post-processing", "shipping")):
            body = admin.get(run).json()
            assert (body["status"], body["operation"]) == ("queued", operation)
        floor.all_become("print", item, "queued")
        assert {p["run"] for p in floor.prints(item, 0)} == {printing}
        floor.all_become("piece", item, "queued-for-printing")
    eventually(lambda: set(admin.get(shop.printer).json()["queue"]) == {chains[modelled][0], chains[blank][0]})

    # the model's line item: printing run queued → in-progress → complete
    printing, sifting, shipping = chains[modelled]
    assert error(floor.move(sifting, "in-progress"), 400) == runs.PREVIOUS_STEPS  # printing not done yet
    assert error(floor.move(printing, "complete"), 409) == runs.NOT_ALLOWED  # the refused edge
    assert floor.status(printing) == "queued"
    floor.moved(printing, "in-progress")
    floor.all_become("print", modelled, "in-progress", position=0)
    floor.all_become("piece", modelled, "printing")
    floor.becomes(modelled, "printing")
    floor.becomes(order, "processing")  # one line item printing, the other still confirmed
    blank_printing = chains[blank][0]
    assert error(floor.move(blank_printing, "in-progress"), 400) == runs.BUSY  # the printer prints one build
    # a second printer takes the waiting run: both line items print, and so does their order
    second_printer = created(admin, "/printer/", {"name": unique("Fuse #2"), "printer_type": shop.printer_type,
                                                  "location": shop.location})
    assert admin.put(blank_printing, json={"printer": second_printer}).status_code == 204
    floor.moved(blank_printing, "in-progress")
    floor.all_become("print", blank, "in-progress", position=0)
    floor.all_become("piece", blank, "printing")
    floor.becomes(blank, "printing")
    floor.becomes(order, "printing")
    actuals = eventually(lambda: admin.get(f"/run-actuals/?filter[run]={printing}").json()["resources"])
    assert actuals[0]["start_in_progress_time"] and actuals[0]["end_in_progress_time"] is None
    floor.moved(printing, "complete")
    floor.all_become("print", modelled, "complete", position=0)
    floor.all_become("piece", modelled, "queued-for-post-processing")
    floor.becomes(sifting, "queued-work-ready")  # by itself: every upstream print is complete
    floor.becomes(modelled, "post-processing")
    floor.becomes(order, "processing")  # one line item post-processing, the other printing
    closed = eventually(lambda: [a for a in admin.get(f"/run-actuals/?filter[run]={printing}").json()["resources"]
                                 if a["end_in_progress_time"]])
    assert closed[0]["workstation_cost"] is not None and closed[0]["total_cost"] is not None
    assert floor.status(shipping) == "queued"

    # the blank line item: its printing run fails, and the operator forces it complete (error → complete is force-only)
    blank_sifting, blank_shipping = chains[blank][1], chains[blank][2]
    floor.moved(blank_printing, "error")
    floor.all_become("print", blank, "error", position=0)
    floor.all_become("piece", blank, "error")
    floor.becomes(blank, "error")  # its only piece failed and none is progressing (§1.4)
    assert error(floor.move(blank_printing, "complete"), 409) == runs.NOT_ALLOWED
    floor.moved(blank_printing, "complete", force=True)  # the forced edge
    floor.all_become("print", blank, "complete", position=0)
    floor.all_become("piece", blank, "queued-for-post-processing")
    floor.becomes(blank_sifting, "queued-work-ready")
    floor.becomes(blank, "post-processing")
    floor.becomes(order, "post-processing")

    # post-processing, then shipping, for both
    for item, (_, sift, ship) in chains.items():
        floor.moved(sift, "in-progress")
        floor.all_become("print", item, "in-progress", position=1)
        floor.all_become("piece", item, "post-processing")
        floor.moved(sift, "complete")
        floor.all_become("print", item, "complete", position=1)
        floor.all_become("piece", item, "queued-for-shipping")
        floor.becomes(ship, "queued-work-ready")
        floor.becomes(item, "shipping")
    floor.becomes(order, "shipping")
    for item, (_, _, ship) in chains.items():
        floor.moved(ship, "in-progress")
        floor.all_become("print", item, "in-progress", position=2)
        floor.all_become("piece", item, "shipping")
        missing = floor.move(ship, "complete")  # the shipping step asks for a tracking id
        assert error(missing, 400) == "This process step requires 'tracking_id' before its run completes."
        assert missing.json()["errors"][0]["field"] == "tracking_id"
        assert floor.status(ship) == "in-progress"
        floor.moved(ship, "complete", tracking_id=f"1Z{item[-7:-1]}")
        floor.all_become("print", item, "complete")
        floor.all_become("piece", item, "complete")
        floor.becomes(item, "complete")
        if item == modelled:
            floor.becomes(order, "processing")  # one complete, one still shipping
    floor.becomes(order, "complete")
    assert [admin.get(item).json()["completed_quantity"] for item in (modelled, blank)] == [2, 1]
    # every status each line item went through, the system's own first moves too; the blank one's only piece failed
    # printing, so it was in `error` (production.md §1.4: a piece in error and none progressing) until forced on
    assert status_history(admin, modelled) == ["new", "calculating_estimates", "pending", "confirmed", "printing",
                                               "post-processing", "shipping", "complete"]
    assert status_history(admin, blank) == ["new", "calculating_estimates", "pending", "confirmed", "printing",
                                            "error", "post-processing", "shipping", "complete"]

    # finished runs stay: not deleted, not moved back
    assert error(admin.delete(printing), 400) == runs.RUN_STARTED
    assert error(floor.move(printing, "queued"), 409) == runs.NOT_ALLOWED
    assert "tracking_id" not in admin.get(chains[modelled][2]).json()


def test_a_run_not_started_is_deleted_and_its_prints_return(admin, floor):
    order = created(admin, "/order/", {"name": unique("deleted run")})
    product = created(admin, "/product/", {"order": order, "no_model_upload": True})
    item = created(admin, "/line-item/", {"product": product, "quantity": 1, "workflow": floor.workflow})
    floor.becomes(item, "pending")
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(admin, "print", item, 3)
    run = floor.run(item, 0)
    floor.all_become("piece", item, "queued-for-printing")
    other = make_tenant(admin, login, "runs")
    assert other.manager.get(run).status_code == 404  # another bureau's run
    assert other.manager.put(run, json={"status": "in-progress"}).status_code == 404
    assert other.manager.delete(run).status_code == 404
    no_printer = floor.move(run, "in-progress")  # a type-level run has no machine to start on
    assert error(no_printer, 400) == runs.NO_WORKSTATION
    assert admin.delete(run).status_code == 204
    eventually(lambda: {(p["run"], p["status"]) for p in floor.prints(item, 0)} == {(None, "created")})
    floor.all_become("piece", item, "confirmed")
    assert admin.get(item).json()["status"] == "confirmed"


def test_a_cancelled_run_closes_its_actuals_and_returns_its_prints(admin, floor):
    """§1.1 "→ cancelled": prints detached (back in the pool, `created`), pieces back to `confirmed`, the run off its
    printer; the run-actuals opened when it started are closed (end time, costs of the machine time it used)."""
    shop = floor.shop
    order = created(admin, "/order/", {"name": unique("cancelled run")})
    product = created(admin, "/product/", {"order": order, "no_model_upload": True})
    item = created(admin, "/line-item/", {"product": product, "quantity": 2, "workflow": floor.workflow})
    floor.becomes(item, "pending")
    assert admin.put(item, json={"status": "confirmed"}).status_code == 204
    settled_count(admin, "print", item, 6)
    run = floor.run(item, 0, printer=shop.printer)
    floor.moved(run, "in-progress")
    floor.all_become("print", item, "in-progress", position=0)
    floor.all_become("piece", item, "printing")
    eventually(lambda: run in admin.get(shop.printer).json()["in_progress"])
    opened = eventually(lambda: admin.get(f"/run-actuals/?filter[run]={run}").json()["resources"])
    assert opened[0]["end_in_progress_time"] is None

    floor.moved(run, "cancelled")
    eventually(lambda: {(p["run"], p["status"]) for p in floor.prints(item, 0)} == {(None, "created")})
    floor.all_become("piece", item, "confirmed")
    printer = admin.get(shop.printer).json()
    assert run not in printer["in_progress"] and run not in printer["queue"]
    closed = eventually(lambda: [a for a in admin.get(f"/run-actuals/?filter[run]={run}").json()["resources"]
                                 if a["end_in_progress_time"]])
    assert len(closed) == 1 and closed[0]["start_in_progress_time"] == opened[0]["start_in_progress_time"]
    assert closed[0]["workstation_cost"] is not None and closed[0]["total_cost"] is not None
    assert closed[0]["system_notes"] == runs.CANCELLED_NOTE
    assert error(floor.move(run, "in-progress"), 409) == runs.NOT_ALLOWED  # cancelled is terminal
    again = floor.run(item, 0, printer=shop.printer)  # the prints are free for a new run
    floor.all_become("piece", item, "queued-for-printing")
    assert admin.delete(again).status_code == 204
