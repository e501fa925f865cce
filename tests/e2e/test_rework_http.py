"""Rework over HTTP (production.md §2.3, §1.2–1.4, flow F5; issue 13 item 6 "Done when"): a run fails, one failed
piece is remanufactured and its replacement goes through new runs to complete; the line item completes with the
replacement while the failed piece stays `incomplete`. Scrap (the line item completes without the scrapped piece) and
change_workflow (a custom workflow, a destination run) end to end too. Every status of transformation, run, print,
piece, line item and order is read back from the API, never assumed."""
import uuid

import pytest

from services.orders import progress
from services.production import rework
from services.production.application import Production
from shared import uris
from shared.settings import event_store_env
from tests.e2e.test_production_http import Shop, created, error, of_line_item, settled_count, unique
from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


def path_of(uri):
    """A URI as the services store and name it (the gateway turns clients' absolute URIs into paths)."""
    return "/" + uri.split("://", 1)[-1].split("/", 1)[1]


class Rework:
    def __init__(self, api, shop):
        self.api, self.shop = api, shop
        self.workflow = shop.workflow(steps=[shop.steps[0], shop.steps[1]])  # print, then sift

    def get(self, uri):
        return self.api.get(uri).json()

    def status(self, uri):
        return self.get(uri)["status"]

    def becomes(self, uri, status, timeout=30):
        eventually(lambda: self.status(uri) == status, timeout=timeout)

    def line_item(self, quantity):
        order = created(self.api, "/order/", {"name": unique("rework")})
        product = created(self.api, "/product/", {"order": order, "no_model_upload": True})
        item = created(self.api, "/line-item/", {"product": product, "quantity": quantity, "workflow": self.workflow})
        self.becomes(item, "pending")
        assert self.api.put(item, json={"status": "confirmed"}).status_code == 204
        self.becomes(item, "confirmed")
        self.becomes(order, "confirmed")
        pieces = settled_count(self.api, "piece", item, quantity)
        assert {p["status"] for p in pieces} == {"confirmed"}
        prints = settled_count(self.api, "print", item, 2 * quantity)
        assert {(p["status"], p["run"]) for p in prints} == {("created", None)}
        return order, item

    def piece(self, item, copy):
        return next(p for p in of_line_item(self.api, "piece", item) if p["copy"] == copy)

    def piece_becomes(self, item, copy, status, timeout=30):
        return eventually(lambda: (lambda p: p if p["status"] == status else None)(self.piece(item, copy)),
                          timeout=timeout)

    def print_of(self, item, copy, position):
        return next(p for p in of_line_item(self.api, "print", item)
                    if p["copy"] == copy and p["process_step_position"] == position and not p["remanufactured_to"]
                    and p["status"] != "cancelled")

    def run(self, prints, **fields):
        return created(self.api, "/run/", {"prints": prints, **fields})

    def moved(self, run, status, **fields):
        response = self.api.put(run, json={"status": status, **fields})
        assert response.status_code == 204, response.text
        self.becomes(run, status)

    def transform(self, kind, source_run, prints, **fields):
        uri = created(self.api, "/run-transformation/", {"type": kind, "source_run": source_run, "prints": prints,
                                                         **fields})
        body = self.get(uri)
        assert body["status"] in ("pending", "processing", "complete", "error")  # the job may be done already
        return eventually(lambda: (lambda t: t if t["status"] in ("complete", "error") else None)(self.get(uri)),
                          timeout=30)


@pytest.fixture(scope="module")
def config_overrides():
    return {"STRATUM_SWEEP_SECONDS": "2", "STRATUM_SWEEP_INTERVAL": "1"}  # the crash test's sweep comes soon


@pytest.fixture(scope="module")
def floor(admin):
    return Rework(admin, Shop(admin))


def test_a_failed_piece_is_remanufactured_and_its_replacement_completes_the_line_item(admin, floor):
    shop = floor.shop
    order, item = floor.line_item(2)
    first, second = floor.print_of(item, 1, 0)["uri"], floor.print_of(item, 2, 0)["uri"]
    print_a, print_b = floor.run([first], printer=shop.printer), floor.run([second], printer=shop.printer)
    sift_a = floor.run([floor.print_of(item, 1, 1)["uri"]], post_processor=shop.post_processor)
    sift_b = floor.run([floor.print_of(item, 2, 1)["uri"]], post_processor=shop.post_processor)
    for copy in (1, 2):
        floor.piece_becomes(item, copy, "queued-for-printing")

    # copy 1 goes through
    floor.moved(print_a, "in-progress")
    floor.piece_becomes(item, 1, "printing")
    floor.becomes(item, "printing")
    floor.becomes(order, "printing")
    floor.moved(print_a, "complete")
    floor.piece_becomes(item, 1, "queued-for-post-processing")
    floor.becomes(sift_a, "queued-work-ready")
    floor.moved(sift_a, "in-progress")
    floor.piece_becomes(item, 1, "post-processing")
    floor.moved(sift_a, "complete")
    floor.piece_becomes(item, 1, "complete")
    assert floor.status(item) == "printing"  # copy 2 has not started

    # copy 2's run fails: the line item has a piece in error and none other in production (§1.4)
    floor.moved(print_b, "in-progress")
    floor.piece_becomes(item, 2, "printing")
    floor.moved(print_b, "error")
    eventually(lambda: floor.get(second)["status"] == "error")
    floor.piece_becomes(item, 2, "error")
    floor.becomes(item, "error")
    assert floor.get(item)["error"] == progress.PIECES_FAILED
    floor.becomes(order, "error")

    # the documented refusals
    assert error(admin.post("/run-transformation/", json={"type": "remanufacture", "source_run": print_b,
                                                          "prints": [first]}), 400) == \
        rework.PRINT_NOT_IN_RUN.format(path_of(first))
    assert error(admin.post("/run-transformation/", json={"type": "remanufacture", "source_run": print_b}), 400) == \
        rework.PRINTS_REQUIRED
    other = make_tenant(admin, login, "rework")
    assert error(other.manager.post("/run-transformation/", json={"type": "remanufacture", "source_run": print_b,
                                                                  "prints": [second]}), 404) == rework.NOT_FOUND

    # remanufacture copy 2
    done = floor.transform("remanufacture", print_b, [second], notes="warped")
    assert (done["status"], done["notes"], done["destination_runs"], done["type"]) == (
        "complete", "warped", [], "remanufacture")
    assert done["source_run"] == print_b and done["prints"] == [second]
    assert floor.get(done["uri"])["user"]
    listed = admin.get(f"/run-transformation/?filter[source_run]={print_b}").json()["resources"]
    assert [t["uri"] for t in listed] == [done["uri"]]
    failed = floor.piece(item, 2)
    replacement = floor.piece_becomes(item, 3, "confirmed")  # the line item's next copy
    assert (failed["status"], failed["remanufactured_to"]) == ("incomplete", replacement["uri"])
    assert (replacement["line_item"], replacement["workflow"], replacement["remanufactured_to"]) == (
        item, floor.workflow, None)
    new_prints = sorted([p for p in of_line_item(admin, "print", item) if p["piece"] == replacement["uri"]],
                        key=lambda p: p["process_step_position"])
    assert [(p["process_step_position"], p["status"], p["run"]) for p in new_prints] == [
        (0, "created", None), (1, "created", None)]
    old = floor.get(second)
    assert (old["status"], old["remanufactured_to"], old["run"]) == ("error", new_prints[0]["uri"].rstrip("/")
                                                                     .rsplit("/", 1)[1], print_b)
    later = next(p for p in of_line_item(admin, "print", item) if p["piece"] == failed["uri"]
                 and p["process_step_position"] == 1)
    assert (later["status"], later["run"]) == ("cancelled", None)
    floor.becomes(sift_b, "cancelled")  # it held only the failed piece's next step
    assert sift_b not in floor.get(shop.post_processor)["queue"]
    floor.becomes(item, "printing")  # no piece in error any more: back in production with the replacement
    floor.becomes(order, "printing")
    assert floor.status(print_b) == "error"

    # the replacement through new runs
    print_c = floor.run([new_prints[0]["uri"]], printer=shop.printer)
    sift_c = floor.run([new_prints[1]["uri"]], post_processor=shop.post_processor)
    floor.piece_becomes(item, 3, "queued-for-printing")
    floor.moved(print_b, "cancelled")  # the failed run is given up; what it held stays as it was
    assert floor.get(second)["status"] == "error"
    floor.moved(print_c, "in-progress")
    floor.piece_becomes(item, 3, "printing")
    eventually(lambda: floor.get(new_prints[0]["uri"])["status"] == "in-progress")
    floor.moved(print_c, "complete")
    floor.piece_becomes(item, 3, "queued-for-post-processing")
    floor.becomes(sift_c, "queued-work-ready")
    floor.becomes(item, "post-processing")
    floor.moved(sift_c, "in-progress")
    floor.piece_becomes(item, 3, "post-processing")
    floor.moved(sift_c, "complete")
    floor.piece_becomes(item, 3, "complete")
    floor.becomes(item, "complete")
    floor.becomes(order, "complete")
    line_item = floor.get(item)
    assert (line_item["completed_quantity"], line_item["quantity"], line_item["error"]) == (2, 2, None)
    assert [floor.piece(item, copy)["status"] for copy in (1, 2, 3)] == ["complete", "incomplete", "complete"]
    assert {p["status"] for p in of_line_item(admin, "print", item) if p["piece"] == replacement["uri"]} == {
        "complete"}


def test_a_scrapped_piece_leaves_and_the_line_item_completes_without_it(admin, floor):
    shop = floor.shop
    order, item = floor.line_item(2)
    printing = floor.run([floor.print_of(item, c, 0)["uri"] for c in (1, 2)], printer=shop.printer)
    sifting = floor.run([floor.print_of(item, c, 1)["uri"] for c in (1, 2)], post_processor=shop.post_processor)
    floor.moved(printing, "in-progress")
    floor.becomes(item, "printing")
    floor.moved(printing, "error")
    for copy in (1, 2):
        floor.piece_becomes(item, copy, "error")
    floor.becomes(item, "error")
    scrapped_print, scrapped_next = floor.print_of(item, 2, 0)["uri"], floor.print_of(item, 2, 1)["uri"]

    done = floor.transform("scrap", printing, [scrapped_print], notes="cracked")
    assert (done["status"], done["notes"]) == ("complete", "cracked")
    scrapped = floor.piece_becomes(item, 2, "cancelled")
    assert scrapped["remanufactured_to"] is None
    assert (floor.get(scrapped_print)["status"], floor.get(scrapped_next)["status"]) == ("cancelled", "cancelled")
    assert floor.get(scrapped_next)["run"] is None
    assert scrapped_next not in floor.get(sifting)["prints"] and scrapped_print in floor.get(printing)["prints"]
    assert floor.status(item) == "error"  # copy 1 is still in error

    # copy 1 is accepted as it is (forced on); the scrapped one is not carried along
    floor.moved(printing, "complete", force=True)
    floor.piece_becomes(item, 1, "queued-for-post-processing")
    assert floor.piece(item, 2)["status"] == "cancelled"
    assert floor.get(scrapped_print)["status"] == "cancelled"
    floor.becomes(sifting, "queued-work-ready")
    floor.becomes(item, "post-processing")
    floor.moved(sifting, "in-progress")
    floor.piece_becomes(item, 1, "post-processing")
    floor.moved(sifting, "complete")
    floor.piece_becomes(item, 1, "complete")
    floor.becomes(item, "complete")  # the scrapped piece counts toward completion
    floor.becomes(order, "complete")
    line_item = floor.get(item)
    assert (line_item["completed_quantity"], line_item["quantity"]) == (1, 2)
    assert floor.piece(item, 2)["status"] == "cancelled"


def test_change_workflow_moves_a_piece_to_a_custom_workflow_and_a_destination_run(admin, floor):
    shop = floor.shop
    order, item = floor.line_item(2)
    printing = floor.run([floor.print_of(item, c, 0)["uri"] for c in (1, 2)], printer=shop.printer)
    sifting = floor.run([floor.print_of(item, c, 1)["uri"] for c in (1, 2)], post_processor=shop.post_processor)
    floor.moved(printing, "in-progress")
    floor.moved(printing, "complete")
    floor.becomes(sifting, "queued-work-ready")
    floor.moved(sifting, "in-progress")
    for copy in (1, 2):
        floor.piece_becomes(item, copy, "post-processing")
    polish_type = created(admin, "/post-processor-type/", {"name": unique("Polish"), "duration": 600})
    polisher = created(admin, "/post-processor/", {"name": unique("Polisher"), "post_processor_type": polish_type,
                                                   "location": shop.location})
    polish = shop.step(polish_type)
    moved = floor.print_of(item, 1, 1)["uri"]
    assert error(admin.post("/run-transformation/", json={"type": "change_workflow", "source_run": sifting,
                                                          "prints": [moved]}), 400) == rework.STEPS_REQUIRED

    done = floor.transform("change_workflow", sifting, [moved], process_steps=[shop.steps[0], polish])
    assert done["status"] == "complete", done["notes"]
    custom = floor.get(done["custom_workflow"])
    assert (custom["process_steps"], custom["source_workflow"]) == ([shop.steps[0], polish], floor.workflow)
    piece = floor.piece_becomes(item, 1, "queued-for-post-processing")
    assert (piece["workflow"], piece["reworked"], piece["current_step_position"]) == (done["custom_workflow"], True, 1)
    assert floor.get(moved)["status"] == "cancelled" and moved not in floor.get(sifting)["prints"]
    [destination] = done["destination_runs"]
    run = floor.get(destination)
    assert (run["status"], run["operation"], run["post_processor_type"]) == (
        "queued-work-ready", "post-processing", polish_type)
    [new_print] = run["prints"]
    new = floor.get(new_print)
    assert (new["piece"], new["process_step"], new["status"], new["workflow"]) == (
        piece["uri"], polish, "queued", done["custom_workflow"])
    assert piece["current_print"] == new_print

    # the source run finishes without it; the moved piece finishes at its new step
    floor.moved(sifting, "complete")
    floor.piece_becomes(item, 2, "complete")
    assert floor.piece(item, 1)["status"] == "queued-for-post-processing"
    assert floor.status(item) == "post-processing"
    assert admin.put(destination, json={"post_processor": polisher}).status_code == 204
    eventually(lambda: floor.get(destination)["post_processor"] == polisher)
    floor.moved(destination, "in-progress")
    floor.piece_becomes(item, 1, "post-processing")
    floor.moved(destination, "complete")
    floor.piece_becomes(item, 1, "complete")
    floor.becomes(item, "complete")
    floor.becomes(order, "complete")
    assert floor.get(item)["completed_quantity"] == 2


def test_a_transformation_whose_job_message_was_lost_is_still_done(admin, system, floor):
    """The production service died between committing the transformation and publishing its job: the sweep finds it
    in production's log and the job runs."""
    order, item = floor.line_item(1)
    printing = floor.run([floor.print_of(item, 1, 0)["uri"]], printer=floor.shop.printer)
    floor.moved(printing, "in-progress")
    floor.moved(printing, "error")
    floor.piece_becomes(item, 1, "error")
    floor.becomes(item, "error")
    session = admin.get("/sessions/").json()
    ctx = {"user": uris.normalise(session["user"]), "bureau": uris.normalise(session["bureau"]),
           "command_id": str(uuid.uuid4())}
    production = Production(env=event_store_env(system.config, Production.name))
    try:  # committed `pending`; the run_transformation_requested message never left
        failed = path_of(floor.print_of(item, 1, 0)["uri"])
        path = production.create("run-transformation", {"type": "remanufacture", "source_run": path_of(printing),
                                                        "prints": [failed]}, ctx)["uri"]
    finally:
        production.close()
    uri = system.base_url + path
    done = eventually(lambda: (lambda r: r.status_code == 200 and r.json()["status"] == "complete" and r.json())(
        admin.get(uri)), timeout=60)
    assert done["prints"] == [system.base_url + failed]
    floor.piece_becomes(item, 1, "incomplete")
    replacement = floor.piece_becomes(item, 2, "confirmed")
    assert floor.piece(item, 1)["remanufactured_to"] == replacement["uri"]
    floor.becomes(item, "confirmed")  # back from error: only the replacement is in production, not started yet


def test_flag_non_conformance_needs_the_review_station_then_sends_the_piece_to_it(admin, floor):
    shop = floor.shop
    order, item = floor.line_item(1)
    printing = floor.run([floor.print_of(item, 1, 0)["uri"]], printer=shop.printer)
    floor.moved(printing, "in-progress")
    floor.piece_becomes(item, 1, "printing")
    flagged = floor.print_of(item, 1, 0)["uri"]
    failed = floor.transform("flag_non_conformance", printing, [flagged], notes="porous")
    # this module's bureau has no review station yet: the job ends in error, saying so, and nothing moved
    assert (failed["status"], failed["notes"]) == ("error", f"porous\n{rework.NO_REVIEW_STATION}")
    assert (floor.piece(item, 1)["status"], floor.get(flagged)["run"]) == ("printing", printing)

    review_type = created(admin, "/post-processor-type/", {"name": unique("NCR"), "duration": 600,
                                                           "special_type": "non_conformance_review"})
    bench = created(admin, "/post-processor/", {"name": unique("QA bench"), "post_processor_type": review_type,
                                                "location": shop.location})
    done = floor.transform("flag_non_conformance", printing, [flagged])
    assert done["status"] == "complete", done["notes"]
    [review_run] = done["destination_runs"]
    run = floor.get(review_run)
    assert (run["post_processor"], run["status"], run["operation"]) == (bench, "queued-work-ready", "post-processing")
    [review_print] = run["prints"]
    assert floor.get(review_print)["piece"] == floor.piece(item, 1)["uri"]
    assert flagged not in floor.get(printing)["prints"]
    assert (floor.get(flagged)["status"], floor.get(flagged)["run"]) == ("created", None)  # done again after review
    floor.piece_becomes(item, 1, "queued-for-post-processing")
    floor.moved(review_run, "in-progress")
    floor.piece_becomes(item, 1, "post-processing")
    floor.moved(review_run, "complete")
    piece = floor.piece_becomes(item, 1, "confirmed")  # back at the reviewed step, to be printed again
    assert piece["current_print"] == flagged
