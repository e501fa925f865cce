"""Runs (production.md §1.1–1.3, §2.1, §2.5, F3): the rules of a new run with the reference's texts, the status table
(409 and force), the workstation's in_progress_max, and what each move carries to prints, pieces, downstream runs and
the run's actuals."""
import pytest

from services.production import runs
from tests.kit.apps import command_ctx
from tests.unit.test_production_planning import (apps, confirm, follow_all, line_item, made,  # noqa: F401
                                                 printer_type, post_processor_type, step, uuid)
from tests.unit.test_production_workstations import OTHER_BUREAU, create, error_of

ADMIN = {"platform_admin": True}
DOCUMENT = "/document/55555555-5555-5555-5555-555555555555/"


class Floor:
    def __init__(self, orders, production, quantity=2, upload="optional"):
        self.orders, self.production = orders, production
        self.printer_type = printer_type(production, "Fuse", running_cost_per_hour=36.0)
        self.printer = create(production, "printer", {"name": "Fuse #1", "printer_type": self.printer_type,
                                                      "location": "/location/44444444-4444-4444-4444-444444444444/"})
        self.sander_type = post_processor_type(production, "Sand", in_progress_max=1, overhead_cost_per_run=5.0)
        self.sander = create(production, "post-processor", {
            "name": "Sander", "post_processor_type": self.sander_type,
            "location": "/location/44444444-4444-4444-4444-444444444444/"})
        steps = [step(production, self.printer_type, success="optional", upload="optional"),
                 step(production, self.sander_type, success="required", upload=upload)]
        self.workflow = create(production, "workflow", {"name": "Print and sand", "process_steps": steps})
        self.item = line_item(orders, quantity, self.workflow)
        confirm(orders, self.item)
        follow_all(orders, production)

    def prints(self, position):
        return sorted([p for p in self.all_prints() if p["process_step_position"] == position],
                      key=lambda p: p["copy"])

    def all_prints(self):
        return [dict(f["fields"], uri=f["uri"]) for f in self.production.referencing(
            "print", "line_item", self.item, ADMIN)]

    def pieces(self):
        return sorted(made(self.production, "piece", self.item), key=lambda p: p["copy"])

    def run(self, position, **fields):
        payload = {"prints": [p["uri"] for p in self.prints(position)], **fields}
        return self.production.create("run", payload, command_ctx())["uri"]

    def move(self, run, status, **fields):
        return self.production.update("run", uuid(run), {"status": status, **fields}, command_ctx())

    def status(self, run):
        return self.production.read("run", uuid(run), command_ctx())["status"]


@pytest.fixture
def floor(apps):  # noqa: F811
    return Floor(*apps)


def test_a_run_takes_prints_and_queues_them(floor):
    printing = floor.run(0, printer=floor.printer)
    run = floor.production.read("run", uuid(printing), command_ctx())
    assert (run["status"], run["operation"], run["printer_type"], run["priority"], run["pieces_locked"]) == (
        "queued", "printing", floor.printer_type, 65, True)
    assert "force" not in run
    assert {p["status"] for p in floor.prints(0)} == {"queued"} and {p["run"] for p in floor.prints(0)} == {printing}
    assert {p["status"] for p in floor.pieces()} == {"queued-for-printing"}
    assert floor.production.read("printer", uuid(floor.printer), command_ctx())["queue"] == [printing]
    error = error_of(lambda: floor.run(0))
    assert error.field == "prints" and "another run" in error.title


def test_the_rules_of_a_new_run(floor):
    mixed = [floor.prints(0)[0]["uri"], floor.prints(1)[0]["uri"]]
    assert error_of(lambda: floor.production.create("run", {"prints": mixed}, command_ctx())).title == \
        runs.MIXED_TYPES
    assert error_of(lambda: floor.production.create("run", {"prints": []}, command_ctx())).field == "prints"
    foreign = error_of(lambda: floor.production.create("run", {"prints": [floor.prints(0)[0]["uri"]]},
                                                       command_ctx(bureau=OTHER_BUREAU)))
    assert foreign.title == runs.PRINTS_INVALID
    assert error_of(lambda: floor.run(0, status="complete")).title == runs.NEW_RUN_STATUS
    assert error_of(lambda: floor.run(0, printer=floor.sander)).field == "printer"
    assert error_of(lambda: floor.run(0, operation="shipping")).field == "operation"
    assert floor.production.referencing("print", "line_item", floor.item, ADMIN)[0]["fields"]["run"] is None


def test_only_confirmed_or_printing_line_items_and_not_mixed_models(apps):  # noqa: F811
    orders, production = apps
    floor = Floor(orders, production)
    other = line_item(orders, 1, floor.workflow)
    orders.update("line-item", uuid(other), {"status": "cancelled"}, command_ctx())
    follow_all(orders, production)
    orders.update("line-item", uuid(floor.item), {"status": "cancelled"}, command_ctx())
    follow_all(orders, production)
    error = error_of(lambda: production.create("run", {"prints": [p["uri"] for p in floor.prints(0)]},
                                               command_ctx()))
    assert error.title == runs.PRINTS_INVALID  # cancelled with their line item
    second = Floor.__new__(Floor)
    second.orders, second.production = orders, production
    second.item = line_item(orders, 1, floor.workflow)
    confirm(orders, second.item)
    follow_all(orders, production)
    for piece in made(production, "piece", second.item):  # a piece without a model beside one with
        piece_id = production.referencing("piece", "line_item", second.item, ADMIN)[0]["uri"]
        aggregate = production.repository.get(__import__("uuid").UUID(uuid(piece_id)))
        aggregate.update({"model": None}, None)
        production.save(aggregate)
    third = line_item(orders, 1, floor.workflow)
    confirm(orders, third)
    follow_all(orders, production)
    prints = [p["uri"] for item in (second.item, third) for p in
              production.referencing("print", "line_item", item, ADMIN) if p["fields"]["process_step_position"] == 0]
    assert error_of(lambda: production.create("run", {"prints": prints}, command_ctx())).title == runs.MIXED_MODELS


def test_a_run_through_the_shop_floor(floor):
    printing = floor.run(0, printer=floor.printer)
    sanding = floor.run(1, post_processor=floor.sander)
    assert floor.status(sanding) == "queued"
    assert error_of(lambda: floor.move(sanding, "in-progress")).title == runs.PREVIOUS_STEPS
    assert error_of(lambda: floor.move(printing, "complete")).title == runs.NOT_ALLOWED  # 409: not from queued
    assert error_of(lambda: floor.move(printing, "complete", force=True)).title == runs.NOT_ALLOWED
    floor.move(printing, "in-progress")
    assert {p["status"] for p in floor.prints(0)} == {"in-progress"}
    assert {p["status"] for p in floor.pieces()} == {"printing"}
    assert all(p["first_run_start"] for p in floor.pieces())
    printer = floor.production.read("printer", uuid(floor.printer), command_ctx())
    assert (printer["queue"], printer["in_progress"]) == ([], [printing])
    actuals = floor.production.read("run-actuals", str(runs.RunActuals.id_for(uuid(printing))), command_ctx())
    assert actuals["run"] == printing and actuals["start_in_progress_time"] and not actuals["end_in_progress_time"]
    floor.move(printing, "complete")
    assert {p["status"] for p in floor.prints(0)} == {"complete"}
    assert {p["status"] for p in floor.pieces()} == {"queued-for-post-processing"}
    assert [p["current_print"] for p in floor.pieces()] == [p["uri"] for p in floor.prints(1)]
    assert floor.status(sanding) == "queued-work-ready"
    actuals = floor.production.read("run-actuals", str(runs.RunActuals.id_for(uuid(printing))), command_ctx())
    assert actuals["end_in_progress_time"] and actuals["workstation_cost"] is not None
    floor.move(sanding, "in-progress")
    assert {p["status"] for p in floor.pieces()} == {"post-processing"}
    error = error_of(lambda: floor.move(sanding, "complete"))
    assert (error.title, error.field) == ("This process step requires 'success' before its run completes.",
                                          "success")
    floor.move(sanding, "complete", success=True)
    assert {p["status"] for p in floor.pieces()} == {"complete"}
    assert {p["status"] for p in floor.all_prints()} == {"complete"}
    assert "success" not in floor.production.read("run", uuid(sanding), command_ctx())
    assert error_of(lambda: floor.production.delete("run", uuid(sanding), command_ctx())).title == runs.RUN_STARTED


def test_busy_workstation_and_forced_moves(apps):  # noqa: F811
    orders, production = apps
    floor = Floor(orders, production, quantity=2)
    prints = floor.prints(0)
    first = production.create("run", {"prints": [prints[0]["uri"]], "printer": floor.printer}, command_ctx())["uri"]
    second = production.create("run", {"prints": [prints[1]["uri"]], "printer": floor.printer}, command_ctx())["uri"]
    floor.move(first, "in-progress")
    assert error_of(lambda: floor.move(second, "in-progress")).title == runs.BUSY
    assert error_of(lambda: floor.move(second, "in-progress", force=True)).title == runs.BUSY
    assert floor.status(second) == "queued"
    floor.move(first, "error")
    assert {p["status"] for p in floor.pieces()} == {"error", "queued-for-printing"}
    assert error_of(lambda: floor.move(first, "complete")).title == runs.NOT_ALLOWED
    floor.move(first, "complete", force=True)
    assert floor.status(first) == "complete"
    floor.move(second, "in-progress")


def test_a_run_is_deleted_only_before_it_starts_and_its_prints_return(floor):
    printing = floor.run(0, printer=floor.printer)
    floor.production.delete("run", uuid(printing), command_ctx())
    assert {p["run"] for p in floor.prints(0)} == {None} and {p["status"] for p in floor.prints(0)} == {"created"}
    assert {p["status"] for p in floor.pieces()} == {"confirmed"}
    assert floor.production.read("printer", uuid(floor.printer), command_ctx())["queue"] == []
    again = floor.run(0, printer=floor.printer)
    floor.move(again, "in-progress")
    assert error_of(lambda: floor.production.delete("run", uuid(again), command_ctx())).title == runs.RUN_STARTED


def test_another_bureaus_run_is_not_found(floor):
    printing = floor.run(0)
    error = error_of(lambda: floor.production.update("run", uuid(printing), {"status": "calculating"},
                                                     command_ctx(bureau=OTHER_BUREAU)))
    assert error.status == 404


def test_the_feed_names_each_step(floor):
    printing = floor.run(0, printer=floor.printer)
    floor.move(printing, "in-progress")
    floor.move(printing, "complete")
    names = {n for e in floor.production.feed(1, 500)["events"] for n in e["names"]}
    assert {"RunCreated", "RunStarted", "RunCompleted", "RunStatusChanged", "PieceStatusChanged",
            "PrintStatusChanged", "PrintAssignedToRun", "PieceAdvancedToStep", "RunActualsCreated", "RunActualsClosed"} <= names


# -- F3 in orders: line items and orders follow their pieces through production's feed --------------------------------

def follow_production(orders, production):
    while True:
        before = orders.position("production")
        orders.apply_feed("production", production.feed(before + 1, 50))
        if orders.position("production") == before:
            return


def test_line_items_and_their_order_follow_the_pieces(floor):
    orders, production = floor.orders, floor.production

    def statuses():
        follow_production(orders, production)
        item = orders.read("line-item", uuid(floor.item), command_ctx())
        return item["status"], orders.read("order", uuid(item["order"]), command_ctx())["status"]

    printing = floor.run(0, printer=floor.printer)
    sanding = floor.run(1, post_processor=floor.sander)
    assert statuses() == ("confirmed", "confirmed")
    floor.move(printing, "in-progress")
    assert statuses() == ("printing", "printing")
    floor.move(printing, "complete")
    assert statuses() == ("post-processing", "post-processing")
    floor.move(sanding, "in-progress")
    assert orders.read("line-item", uuid(floor.item), command_ctx()).get("completed_quantity") in (None, 0)
    floor.move(sanding, "complete", success=True)
    assert statuses() == ("complete", "complete")
    assert orders.read("line-item", uuid(floor.item), command_ctx())["completed_quantity"] == 2
    again = orders.apply_feed("production", production.feed(1, 500))  # a repeated batch changes nothing
    assert again == orders.position("production") and statuses() == ("complete", "complete")
    names = [n for e in orders.feed(1, 1000)["events"] for n in e["names"] if n.startswith("LineItem")]
    assert "LineItemCompleted" in names and "OrderCompleted" in [
        n for e in orders.feed(1, 1000)["events"] for n in e["names"]]


def test_a_line_item_walks_through_a_step_it_did_not_see(floor):
    from services.orders.progress import line_item_status, steps_to
    assert steps_to("confirmed", "post-processing") == ["printing", "post-processing"]
    assert steps_to("printing", "complete") == ["complete"]
    assert steps_to("shipping", "printing") == [] and steps_to("error", "complete") == []
    assert line_item_status(["printing", "confirmed"]) == "printing"
    assert line_item_status(["queued-for-shipping", "post-processing"]) == "post-processing"
    assert line_item_status(["complete", "cancelled"]) == "complete"
    assert line_item_status(["complete", "error"]) is None and line_item_status(["confirmed"]) is None


def test_a_waiting_run_moves_to_another_workstation(floor):
    printing = floor.run(0)  # type-level: no queue yet
    second = create(floor.production, "printer", {"name": "Fuse #2", "printer_type": floor.printer_type,
                                                  "location": "/location/44444444-4444-4444-4444-444444444444/"})
    floor.production.update("run", uuid(printing), {"printer": floor.printer}, command_ctx())
    assert floor.production.read("printer", uuid(floor.printer), command_ctx())["queue"] == [printing]
    floor.production.update("run", uuid(printing), {"printer": second}, command_ctx())
    assert floor.production.read("printer", uuid(floor.printer), command_ctx())["queue"] == []
    assert floor.production.read("printer", uuid(second), command_ctx())["queue"] == [printing]
    assert error_of(lambda: floor.production.update("run", uuid(printing), {"printer": floor.sander},
                                                    command_ctx())).field == "printer"
    floor.move(printing, "in-progress")
    error = error_of(lambda: floor.production.update("run", uuid(printing), {"printer": floor.printer},
                                                     command_ctx()))
    assert error.title == runs.STARTED_STATION


def test_a_downstream_run_waits_for_every_upstream_run(floor):
    first, second = floor.prints(0)
    one = floor.production.create("run", {"prints": [first["uri"]], "printer": floor.printer}, command_ctx())["uri"]
    other = floor.production.create("run", {"prints": [second["uri"]]}, command_ctx())["uri"]
    sanding = floor.run(1, post_processor=floor.sander)
    floor.move(one, "in-progress")
    floor.move(one, "complete")
    assert floor.status(sanding) == "queued"  # one of its pieces is still to be printed
    assert "waiting_on" not in floor.production.read("run", uuid(sanding), command_ctx())
    floor.production.update("run", uuid(other), {"printer": floor.printer}, command_ctx())
    floor.move(other, "in-progress")
    floor.move(other, "complete")
    assert floor.status(sanding) == "queued-work-ready"


def test_a_completing_run_gives_what_its_step_requires_and_nothing_hidden(apps):  # noqa: F811
    """§5.3: the sanding step requires `success` and `upload`, hides `tracking_id` (enforced on → complete only)."""
    floor = Floor(*apps, quantity=1, upload="required")
    printing = floor.run(0, printer=floor.printer)
    floor.move(printing, "in-progress")
    floor.move(printing, "complete")  # the printing step requires nothing
    sanding = floor.run(1, post_processor=floor.sander)
    floor.move(sanding, "in-progress", notes="started")
    assert error_of(lambda: floor.move(sanding, "complete", success=True)).field == "upload"
    hidden = error_of(lambda: floor.move(sanding, "complete", success=True, upload=DOCUMENT,
                                         tracking_id="1Z999"))
    assert (hidden.title, hidden.field) == ("This process step does not take 'tracking_id'.", "tracking_id")
    assert floor.status(sanding) == "in-progress"
    floor.move(sanding, "complete", success=False, upload=DOCUMENT)  # `success: false` is an answer
    assert floor.status(sanding) == "complete"


def test_a_post_processor_runs_up_to_its_types_in_progress_max(apps):  # noqa: F811
    """§4.3: the sander's type allows one run in progress; a second one is busy, force or not, until it ends."""
    orders, production = apps
    floor = Floor(orders, production, quantity=2)
    printing = floor.run(0, printer=floor.printer)
    floor.move(printing, "in-progress")
    floor.move(printing, "complete")
    prints = floor.prints(1)
    first, second = (production.create("run", {"prints": [p["uri"]], "post_processor": floor.sander},
                                       command_ctx())["uri"] for p in prints)
    assert production.read("post-processor", uuid(floor.sander), command_ctx())["in_progress_max"] == 1
    floor.move(first, "in-progress")
    assert error_of(lambda: floor.move(second, "in-progress")).title == runs.BUSY
    assert error_of(lambda: floor.move(second, "in-progress", force=True)).title == runs.BUSY
    floor.move(first, "complete", success=True)
    floor.move(second, "in-progress")
    assert floor.status(second) == "in-progress"


def test_cancelling_the_line_item_cancels_only_the_pieces_not_in_runs(apps):  # noqa: F811
    """orders.md §2.1 "→ cancelled … cancels pieces not yet in runs": the piece whose print is in a run goes on."""
    orders, production = apps
    floor = Floor(orders, production, quantity=2)
    first, second = floor.prints(0)
    production.create("run", {"prints": [first["uri"]], "printer": floor.printer}, command_ctx())
    orders.update("line-item", uuid(floor.item), {"status": "cancelled"}, command_ctx())
    follow_all(orders, production)
    assert [p["status"] for p in floor.pieces()] == ["queued-for-printing", "cancelled"]
    by_piece = {}
    for each in floor.all_prints():
        by_piece.setdefault(each["copy"], set()).add(each["status"])
    assert by_piece == {1: {"queued", "created"}, 2: {"cancelled"}}


def test_a_workflow_change_replans_only_the_prints_not_started(apps):  # noqa: F811
    """F1/F6: a started print keeps its step; the new workflow's prints replace the unstarted ones."""
    orders, production = apps
    floor = Floor(orders, production, quantity=2)
    first = floor.prints(0)[0]
    production.create("run", {"prints": [first["uri"]], "printer": floor.printer}, command_ctx())
    before = {p["uri"] for p in floor.all_prints()}
    shipping_free = create(production, "workflow", {"name": "Print only", "process_steps": [
        step(production, floor.printer_type, success="optional")]})
    orders.update("line-item", uuid(floor.item), {"workflow": shipping_free}, command_ctx())
    follow_all(orders, production)
    prints = floor.all_prints()
    kept = [p for p in prints if p["uri"] in before]
    assert [p["uri"] for p in kept] == [first["uri"]] and kept[0]["status"] == "queued"
    fresh = [p for p in prints if p["uri"] not in before]
    assert [(p["copy"], p["process_step_position"], p["workflow"]) for p in fresh] == [(2, 0, shipping_free)]
    assert {p["workflow"] for p in floor.pieces()} == {shipping_free}
