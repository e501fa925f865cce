"""Rework (`/run-transformation/`, production.md §2.3, flow F5): the 400s/404 of POST, the job's steps, each type's
rules on pieces, prints, runs and workflows, the events it names, and what the line item does (orders.md §2.1,
production.md §1.4) as orders follow production's feed."""
import pytest

from services.orders import progress
from services.production import rework
from services.production.rework_job import ReworkJob
from tests.kit.apps import command_ctx
from tests.unit.test_production_planning import apps  # noqa: F401 (the fixture)
from tests.unit.test_production_runs import Floor, follow_production
from tests.unit.test_production_workstations import OTHER_BUREAU, create, error_of, post_processor_type, step, uuid

ADMIN = {"platform_admin": True}
LOCATION = "/location/44444444-4444-4444-4444-444444444444/"


@pytest.fixture
def floor(apps):  # noqa: F811
    return Floor(*apps)


def transform(floor, kind, prints, **fields):
    """POST, then the job, as the production service runs it; the transformation as GET shows it."""
    payload = {"type": kind, "source_run": fields.pop("source_run"), "prints": prints, **fields}
    uri = floor.production.create("run-transformation", payload, command_ctx())["uri"]
    assert read(floor, uri)["status"] == "pending"
    ReworkJob(floor.production, lambda result: None).run(uri)
    return read(floor, uri)


def read(floor, uri):
    kind = uri.strip("/").split("/")[0]
    return dict(floor.production.read(kind, uuid(uri), command_ctx()), uri=uri)


def piece_of(floor, copy):
    return next(dict(p["fields"], uri=p["uri"]) for p in floor.production.referencing(
        "piece", "line_item", floor.item, ADMIN) if p["fields"]["copy"] == copy)


def line_item_status(floor):
    follow_production(floor.orders, floor.production)
    item = floor.orders.read("line-item", uuid(floor.item), command_ctx())
    return item["status"], item.get("completed_quantity") or 0


def names(floor):
    return {n for e in floor.production.feed(1, 500)["events"] for n in e["names"]}


def failed_printing(floor):
    """Both pieces printed in one run that fails: pieces in error, the line item in error (§1.4)."""
    printing = floor.run(0, printer=floor.printer)
    sanding = floor.run(1, post_processor=floor.sander)
    floor.move(printing, "in-progress")
    assert line_item_status(floor) == ("printing", 0)
    floor.move(printing, "error")
    assert {p["status"] for p in floor.pieces()} == {"error"}
    assert line_item_status(floor) == ("error", 0)
    assert floor.orders.read("line-item", uuid(floor.item), command_ctx())["error"] == progress.PIECES_FAILED
    return printing, sanding


# -- POST ------------------------------------------------------------------------------------------------------------

def test_post_names_the_problem(floor):
    printing = floor.run(0, printer=floor.printer)
    mine = floor.prints(0)[0]["uri"]
    other = floor.prints(1)[0]["uri"]

    def refused(**payload):
        return error_of(lambda: floor.production.create("run-transformation", payload, command_ctx()))

    assert refused(type="scrap", source_run=printing).title == rework.PRINTS_REQUIRED
    assert refused(type="scrap", source_run=printing, prints=[other]).title == rework.PRINT_NOT_IN_RUN.format(other)
    assert refused(type="change_workflow", source_run=printing, prints=[mine]).title == rework.STEPS_REQUIRED
    assert refused(type="scrap", source_run=printing, prints=[mine],
                   process_steps=[floor.prints(0)[0]["process_step"]]).title == rework.STEPS_ONLY_FOR_CHANGE
    assert refused(type="split_shipment", source_run=printing, prints=[mine]).title == \
        rework.SPLIT_SHIPMENT_NOT_MODELLED
    bad = refused(type="change_workflow", source_run=printing, prints=[mine], process_steps=[floor.printer])
    assert bad.field == "process_steps"
    missing = refused(type="scrap", source_run="/run/00000000-0000-0000-0000-000000000000/", prints=[mine])
    assert (missing.status, missing.title) == (404, rework.NOT_FOUND)
    foreign = error_of(lambda: floor.production.create("run-transformation", {
        "type": "scrap", "source_run": printing, "prints": [mine]}, command_ctx(bureau=OTHER_BUREAU)))
    assert (foreign.status, foreign.title) == (404, rework.NOT_FOUND)
    by_line_item = floor.production.create("run-transformation", {
        "type": "scrap", "source_run": printing, "line_items": [{"line_item": floor.item, "quantity": 1}]},
        command_ctx())["uri"]
    assert read(floor, by_line_item)["prints"] == [mine]  # the first copy's print
    assert refused(type="scrap", source_run=printing, line_items=[{"line_item": floor.item, "quantity": 3}]).field \
        == "line_items"


# -- remanufacture + scrap: the replacement completes the line item -------------------------------------------------

def test_remanufacture_makes_a_replacement_that_completes_the_line_item(floor):
    printing, sanding = failed_printing(floor)
    failed = floor.prints(0)[0]
    done = transform(floor, "remanufacture", [failed["uri"]], source_run=printing, notes="warped")
    assert (done["status"], done["destination_runs"], done["notes"]) == ("complete", [], "warped")
    old = piece_of(floor, 1)
    replacement = piece_of(floor, 3)  # the next copy of the line item
    assert (old["status"], old["remanufactured_to"]) == ("incomplete", replacement["uri"])
    assert replacement["status"] == "confirmed" and replacement["line_item"] == floor.item
    assert replacement["name"] == "bracket.stl 3" and replacement["workflow"] == floor.workflow
    new_prints = sorted([p for p in floor.all_prints() if p["piece"] == old["remanufactured_to"]],
                        key=lambda p: p["process_step_position"])
    assert [(p["process_step_position"], p["status"], p["run"]) for p in new_prints] == [
        (0, "created", None), (1, "created", None)]
    assert replacement["current_print"] == new_prints[0]["uri"]
    old_prints = {p["process_step_position"]: p for p in floor.all_prints() if p["piece"] == failed["piece"]}
    assert old_prints[0]["remanufactured_to"] == uuid(new_prints[0]["uri"]) and old_prints[0]["status"] == "error"
    assert old_prints[1]["status"] == "cancelled" and old_prints[1]["run"] is None
    assert old_prints[1]["uri"] not in read(floor, sanding)["prints"]
    assert {"RunTransformationRequested", "RunTransformationStarted", "RunTransformationCompleted",
            "PieceRemanufactured", "PrintRemanufactured"} <= names(floor)
    assert line_item_status(floor) == ("error", 0)  # copy 2 is still in error, nothing else is in production

    second = floor.prints(0)[1]
    scrapped = transform(floor, "scrap", [second["uri"]], source_run=printing)
    assert scrapped["status"] == "complete"
    assert piece_of(floor, 2)["status"] == "cancelled" and "PieceScrapped" in names(floor)
    assert {p["status"] for p in floor.all_prints() if p["piece"] == second["piece"]} == {"cancelled"}
    assert second["uri"] in read(floor, printing)["prints"]  # a started run keeps what it held, as a record
    assert read(floor, sanding)["status"] == "cancelled"  # its prints all gone: it leaves the sander's queue
    assert read(floor, floor.sander)["queue"] == []
    assert line_item_status(floor) == ("confirmed", 0)  # back from error: only the replacement is in production

    # the replacement goes through new runs; the failed run is closed by force and moves nothing it no longer holds
    floor.move(printing, "complete", force=True)
    assert read(floor, new_prints[0]["uri"])["status"] == "created"
    assert piece_of(floor, 1)["status"] == "incomplete" and piece_of(floor, 2)["status"] == "cancelled"
    again = floor.production.create("run", {"prints": [new_prints[0]["uri"]], "printer": floor.printer},
                                    command_ctx())["uri"]
    after = floor.production.create("run", {"prints": [new_prints[1]["uri"]], "post_processor": floor.sander},
                                    command_ctx())["uri"]
    assert piece_of(floor, 3)["status"] == "queued-for-printing"
    floor.move(again, "in-progress")
    assert piece_of(floor, 3)["status"] == "printing" and line_item_status(floor) == ("printing", 0)
    floor.move(again, "complete")
    assert floor.status(after) == "queued-work-ready"
    floor.move(after, "in-progress")
    floor.move(after, "complete", success=True)
    assert piece_of(floor, 3)["status"] == "complete"
    assert line_item_status(floor) == ("complete", 1)
    assert floor.orders.read("line-item", uuid(floor.item), command_ctx()).get("error") is None
    assert (piece_of(floor, 1)["status"], piece_of(floor, 2)["status"]) == ("incomplete", "cancelled")


def test_split_piece_schedules_puts_the_replacement_in_runs_of_its_own(floor):
    printing, sanding = failed_printing(floor)
    failed = floor.prints(0)[0]
    done = transform(floor, "remanufacture", [failed["uri"]], source_run=printing, split_piece_schedules=True)
    assert done["status"] == "complete", done.get("notes")
    replacement = piece_of(floor, 3)
    runs = [read(floor, r) for r in done["destination_runs"]]
    assert [(r["operation"], r["status"]) for r in runs] == [("printing", "queued"), ("post-processing", "queued")]
    assert [read(floor, r["prints"][0])["piece"] for r in runs] == [replacement["uri"]] * 2
    assert replacement["status"] == "queued-for-printing"


def test_a_finished_or_reworked_piece_is_not_reworked_again_and_the_job_runs_once(floor):
    printing, _ = failed_printing(floor)
    failed = floor.prints(0)[0]
    done = transform(floor, "remanufacture", [failed["uri"]], source_run=printing)
    events = floor.production.recorder.max_notification_id()
    ReworkJob(floor.production, lambda result: None).run(done["uri"])
    assert floor.production.recorder.max_notification_id() == events  # a redelivered job changes nothing
    again = error_of(lambda: floor.production.create("run-transformation", {
        "type": "scrap", "source_run": printing, "prints": [failed["uri"]]}, command_ctx()))
    assert again.title == rework.PRINT_RETIRED.format(failed["uri"])


def test_a_transformation_applies_once_when_the_job_is_resumed(floor):
    printing, _ = failed_printing(floor)
    failed = floor.prints(0)[0]
    uri = floor.production.create("run-transformation", {"type": "remanufacture", "source_run": printing,
                                                         "prints": [failed["uri"]]}, command_ctx())["uri"]
    job = ReworkJob(floor.production, lambda result: None)
    job._step(uuid(uri), "start", lambda t: t.start())
    job._apply(uuid(uri))  # the process dies here: applied, not yet complete
    events = floor.production.recorder.max_notification_id()
    job.run(uri)  # the sweep starts it again
    assert read(floor, uri)["status"] == "complete"
    assert len(floor.pieces()) == 3
    assert floor.production.recorder.max_notification_id() == events + 2  # only the completion (and its receipt)


def test_the_line_item_waits_for_the_replacement_of_its_last_failed_piece(floor):
    """Copy 1 done, copy 2 failed: its replacement keeps the line item in production (never complete without it)."""
    first, second = floor.prints(0)
    runs = [floor.production.create("run", {"prints": [p["uri"]], "printer": floor.printer}, command_ctx())["uri"]
            for p in (first, second)]
    sanding = floor.production.create("run", {"prints": [floor.prints(1)[0]["uri"]], "post_processor": floor.sander},
                                      command_ctx())["uri"]
    floor.move(runs[0], "in-progress")
    floor.move(runs[0], "complete")
    floor.move(sanding, "in-progress")
    floor.move(sanding, "complete", success=True)
    floor.move(runs[1], "in-progress")
    floor.move(runs[1], "error")
    assert line_item_status(floor) == ("error", 1)
    transform(floor, "remanufacture", [second["uri"]], source_run=runs[1])
    assert line_item_status(floor) == ("printing", 1)
    assert [piece_of(floor, c)["status"] for c in (1, 2, 3)] == ["complete", "incomplete", "confirmed"]


def test_a_second_start_of_a_slow_job_does_not_fail_it(floor, monkeypatch):
    """The sweep re-asks for a job still running: the second start finds the rules applied (its own would refuse the
    retired prints) and goes on from the first's result, never recording a failure."""
    printing, _ = failed_printing(floor)
    uri = floor.production.create("run-transformation", {"type": "remanufacture", "source_run": printing,
                                                         "prints": [floor.prints(0)[0]["uri"]]}, command_ctx())["uri"]
    first = ReworkJob(floor.production, lambda result: None)
    first._step(uuid(uri), "start", lambda t: t.start())
    real, asked = floor.production._receipt, []

    def not_yet(command_id):  # the second start looks for the rules' receipt just before the first one commits
        if command_id.endswith(":apply") and not asked:
            asked.append(command_id)
            first._apply(uuid(uri))
            return None
        return real(command_id)

    monkeypatch.setattr(floor.production, "_receipt", not_yet)
    ReworkJob(floor.production, lambda result: None).run(uri)
    assert asked and read(floor, uri)["status"] == "complete"
    assert len(floor.pieces()) == 3


def test_rework_of_a_running_and_of_a_waiting_run(floor):
    """A piece remanufactured while its run still prints: its print is cancelled there and the run's completion
    carries only the others. A piece scrapped from a run that has not started leaves it; the emptied run is
    cancelled."""
    printing = floor.run(0, printer=floor.printer)
    sanding = floor.run(1, post_processor=floor.sander)
    floor.move(printing, "in-progress")
    first, second = floor.prints(0)
    transform(floor, "remanufacture", [first["uri"]], source_run=printing)
    assert read(floor, first["uri"])["status"] == "cancelled" and read(floor, first["uri"])["remanufactured_to"]
    floor.move(printing, "complete")
    assert read(floor, first["uri"])["status"] == "cancelled"
    assert [piece_of(floor, c)["status"] for c in (1, 2, 3)] == ["incomplete", "queued-for-post-processing",
                                                                  "confirmed"]
    assert floor.status(sanding) == "queued-work-ready"  # the remanufactured piece's print left it
    assert read(floor, sanding)["prints"] == [next(p["uri"] for p in floor.prints(1) if p["copy"] == 2)]
    transform(floor, "scrap", read(floor, sanding)["prints"], source_run=sanding)
    assert floor.status(sanding) == "cancelled" and read(floor, sanding)["prints"] == []
    assert read(floor, floor.sander)["queue"] == []
    assert piece_of(floor, 2)["status"] == "cancelled"
    assert line_item_status(floor) == ("printing", 0)  # only the replacement is left, not started


# -- redo ------------------------------------------------------------------------------------------------------------

def test_redo_makes_a_new_print_for_the_step(floor):
    printing, sanding = failed_printing(floor)
    failed = floor.prints(0)[0]
    done = transform(floor, "redo", [failed["uri"]], source_run=printing)
    assert done["status"] == "complete"
    prints = [p for p in floor.all_prints() if p["piece"] == failed["piece"]]
    redo = next(p for p in prints if p["uri"] != failed["uri"] and p["process_step_position"] == 0)
    assert (redo["status"], redo["run"]) == ("created", None)
    assert read(floor, failed["uri"])["remanufactured_to"] == uuid(redo["uri"])
    piece = piece_of(floor, 1)
    assert (piece["status"], piece["current_print"]) == ("confirmed", redo["uri"])
    assert "PrintRedoScheduled" in names(floor)
    transform(floor, "redo", [next(p["uri"] for p in floor.prints(0) if p["copy"] == 2)], source_run=printing)
    assert line_item_status(floor) == ("confirmed", 0)  # no piece in error any more
    # the redone prints print again; the sanding run (both pieces' next step) becomes work-ready after them
    redone = [p["uri"] for p in floor.all_prints() if p["process_step_position"] == 0 and p["status"] == "created"]
    again = floor.production.create("run", {"prints": redone, "printer": floor.printer}, command_ctx())["uri"]
    floor.move(printing, "cancelled")  # the failed run is given up: what it held as a record stays as it is
    assert read(floor, failed["uri"])["status"] == "error"
    floor.move(again, "in-progress")
    floor.move(again, "complete")
    assert floor.status(sanding) == "queued-work-ready"
    assert {p["status"] for p in floor.pieces()} == {"queued-for-post-processing"}


# -- change_workflow -------------------------------------------------------------------------------------------------

def test_change_workflow_moves_the_piece_to_a_custom_workflow(floor):
    printing = floor.run(0, printer=floor.printer)
    sanding = floor.run(1, post_processor=floor.sander)
    floor.move(printing, "in-progress")
    floor.move(printing, "complete")
    floor.move(sanding, "in-progress")
    polish_type = post_processor_type(floor.production, "Polish")
    polish = step(floor.production, polish_type, success="optional")
    print_step = floor.prints(0)[0]["process_step"]
    moved = floor.prints(1)[0]
    done = transform(floor, "change_workflow", [moved["uri"]], source_run=sanding, process_steps=[print_step, polish])
    assert done["status"] == "complete", done.get("notes")
    custom = read(floor, done["custom_workflow"])
    assert custom["process_steps"] == [print_step, polish] and custom["source_workflow"] == floor.workflow
    piece = piece_of(floor, 1)
    assert (piece["workflow"], piece["reworked"], piece["status"], piece["current_step_position"]) == (
        done["custom_workflow"], True, "queued-for-post-processing", 1)
    assert read(floor, moved["uri"])["status"] == "cancelled"
    assert moved["uri"] not in read(floor, sanding)["prints"]  # the piece left the source run
    [destination] = done["destination_runs"]
    run = read(floor, destination)
    new_print = read(floor, run["prints"][0])
    assert (new_print["piece"], new_print["process_step"], new_print["workflow"]) == (
        moved["piece"], polish, done["custom_workflow"])
    assert (run["status"], run["post_processor_type"], run["operation"]) == (
        "queued-work-ready", polish_type, "post-processing")
    assert piece["current_print"] == run["prints"][0]
    assert "PieceWorkflowChanged" in names(floor)
    # the rest of the source run completes without it; the moved piece completes at its new step
    floor.move(sanding, "complete", success=True)
    assert piece_of(floor, 2)["status"] == "complete" and piece_of(floor, 1)["status"] == "queued-for-post-processing"
    station = create(floor.production, "post-processor", {"name": "Polisher", "post_processor_type": polish_type,
                                                          "location": LOCATION})
    floor.production.update("run", uuid(destination), {"post_processor": station}, command_ctx())
    floor.move(destination, "in-progress")
    floor.move(destination, "complete")
    assert piece_of(floor, 1)["status"] == "complete"
    assert line_item_status(floor) == ("complete", 2)


def test_a_resumed_job_keeps_the_runs_it_made(floor):
    printing = floor.run(0, printer=floor.printer)
    floor.move(printing, "in-progress")
    moved = floor.prints(0)[0]
    steps = [moved["process_step"], floor.prints(1)[0]["process_step"]]
    uri = floor.production.create("run-transformation", {"type": "change_workflow", "source_run": printing,
                                                         "prints": [moved["uri"]], "process_steps": steps},
                                  command_ctx())["uri"]
    job = ReworkJob(floor.production, lambda result: None)
    job._step(uuid(uri), "start", lambda t: t.start())
    made, warnings = job._schedule(uuid(uri), job._apply(uuid(uri)))  # the process dies after making the runs
    assert len(made) == 2 and warnings == []
    job.run(uri)
    done = read(floor, uri)
    assert (done["status"], done["destination_runs"], done.get("notes")) == ("complete", made, None)
    assert [read(floor, r)["status"] for r in made] == ["queued", "queued"]  # printing again, then sanding
    assert (piece_of(floor, 1)["status"], piece_of(floor, 1)["current_step_position"]) == ("queued-for-printing", 0)


# -- flag_non_conformance --------------------------------------------------------------------------------------------

def test_flag_non_conformance_needs_a_review_station(floor):
    printing = floor.run(0, printer=floor.printer)
    floor.move(printing, "in-progress")
    flagged = floor.prints(0)[0]
    done = transform(floor, "flag_non_conformance", [flagged["uri"]], source_run=printing, notes="porous")
    assert done["status"] == "error" and done["notes"] == f"porous\n{rework.NO_REVIEW_STATION}"
    assert piece_of(floor, 1)["status"] == "printing"  # nothing changed

    review_type = post_processor_type(floor.production, "NCR", special_type="non_conformance_review")
    station = create(floor.production, "post-processor", {"name": "QA bench", "post_processor_type": review_type,
                                                          "location": LOCATION})
    done = transform(floor, "flag_non_conformance", [flagged["uri"]], source_run=printing)
    assert done["status"] == "complete", done.get("notes")
    [review_run] = done["destination_runs"]
    run = read(floor, review_run)
    assert (run["post_processor"], run["status"]) == (station, "queued-work-ready")
    assert flagged["uri"] not in read(floor, printing)["prints"]
    assert (read(floor, flagged["uri"])["status"], read(floor, flagged["uri"])["run"]) == ("created", None)
    assert piece_of(floor, 1)["status"] == "queued-for-post-processing"
    assert "PieceNonConformanceFlagged" in names(floor)
    floor.move(review_run, "in-progress")
    assert piece_of(floor, 1)["status"] == "post-processing"
    floor.move(review_run, "complete", success=True)
    piece = piece_of(floor, 1)
    assert (piece["status"], piece["current_print"]) == ("confirmed", flagged["uri"])  # back at the reviewed step


# -- orders: the line item and its failed pieces (§1.4) --------------------------------------------------------------

def test_the_line_item_follows_failed_pieces():
    assert progress.pieces_failed(["complete", "error"]) and progress.pieces_failed(["error", "incomplete"])
    assert not progress.pieces_failed(["error", "printing"]) and not progress.pieces_failed(["error", "confirmed"])
    assert progress.recovered_status(["complete", "cancelled"]) == "complete"
    assert progress.recovered_status(["complete", "confirmed", "incomplete"]) == "printing"
    assert progress.recovered_status(["confirmed", "incomplete"]) == "confirmed"
    assert progress.recovered_status(["error", "confirmed"]) is None
    assert progress.recovered_status(["cancelled"]) is None
