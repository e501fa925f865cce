"""/create-runs/ and /packing-process/ (production.md §2.2, §4.12, §4.14): the batching rules, the 400s at POST, and
the saga on an in-memory production store (packing skipped: do_build_volume_check false; the packing itself runs
over HTTP in tests/e2e/test_create_runs_http.py), each step recorded once."""
import pytest

from services.production import batching, create_runs, runs
from services.production.create_runs_job import CreateRunsJob
from shared.errors import NotFound
from tests.kit.apps import command_ctx
from tests.unit.test_production_planning import apps, confirm, follow_all, line_item, made  # noqa: F401
from tests.unit.test_production_workstations import (OTHER_BUREAU, create, error_of, post_processor_type,
                                                     printer_type, step, uuid, workflow)

ADMIN = {"platform_admin": True}
LOCATION = "/location/44444444-4444-4444-4444-444444444444/"


# -- the batching rules -----------------------------------------------------------------------------------------------

def item(n, upstream="/run/a/", order="/order/1/", size=1000.0, area=100.0):
    return {"print": f"/print/{n}/", "upstream": upstream, "order": order, "size": size, "area": area}


def test_single_gives_each_print_its_own_run():
    assert batching.batch("single", [item(1), item(2)], [{"run": "/run/open/", "prints": 0}]) == [
        {"run": None, "prints": ["/print/1/"]}, {"run": None, "prints": ["/print/2/"]}]


def test_by_number_of_parts_fills_open_runs_first_then_new_ones():
    open_runs = [{"run": "/run/full/", "prints": 3}, {"run": "/run/open/", "prints": 2}]
    groups = batching.batch("by_number_of_parts", [item(n) for n in range(5)], open_runs, limit=3)
    assert groups == [{"run": "/run/open/", "prints": ["/print/0/"]},
                      {"run": None, "prints": ["/print/1/", "/print/2/", "/print/3/"]},
                      {"run": None, "prints": ["/print/4/"]}]


def test_by_size_xyz_and_xy_sum_the_pieces_against_the_volume_or_plate():
    volume = batching.capacity("by_size_xyz", {"build_volume": {"x": 10, "y": 10, "z": 25}})  # 2500 mm³
    groups = batching.batch("by_size_xyz", [item(1, size=1500), item(2, size=1500), item(3, size=900)], [],
                            volume)
    assert [g["prints"] for g in groups] == [["/print/1/", "/print/3/"], ["/print/2/"]]
    plate = batching.capacity("by_size_xy", {"build_volume": {"x": 10, "y": 20}})
    assert plate == 200
    groups = batching.batch("by_size_xy", [item(1, area=150), item(2, area=60)],
                            [{"run": "/run/open/", "area": 100}], plate)
    assert groups == [{"run": "/run/open/", "prints": ["/print/2/"]}, {"run": None, "prints": ["/print/1/"]}]
    # a piece too large for an empty run still gets one
    assert batching.batch("by_size_xyz", [item(1, size=9999)], [], volume) == [{"run": None, "prints": ["/print/1/"]}]


def test_match_previous_keeps_the_upstream_grouping_and_by_order_the_order():
    prints = [item(1, upstream="/run/a/"), item(2, upstream="/run/b/"), item(3, upstream="/run/a/")]
    open_runs = [{"run": "/run/after-a/", "upstreams": {"/run/a/"}, "orders": {"/order/9/"}},
                 {"run": "/run/mixed/", "upstreams": {"/run/a/", "/run/c/"}, "orders": {"/order/1/"}}]
    assert batching.batch("match_previous", prints, open_runs) == [
        {"run": "/run/after-a/", "prints": ["/print/1/", "/print/3/"]}, {"run": None, "prints": ["/print/2/"]}]
    by_order = batching.batch("by_order", [item(1, order="/order/1/"), item(2, order="/order/2/")], open_runs)
    assert by_order == [{"run": "/run/mixed/", "prints": ["/print/1/"]}, {"run": None, "prints": ["/print/2/"]}]


# -- POST and the saga, in memory -------------------------------------------------------------------------------------

class Service:
    """What the saga uses of the production service; the files service only answers model sizes here."""

    def __init__(self, production):
        self.app = production
        self.config = {}
        self.services = self
        self.announced = []

    def _announce(self, result):
        self.announced.append(result)
        return result

    def call(self, service, method, *args):
        raise NotFound("The requested model cannot be found.")


class Shop:
    def __init__(self, orders, production, strategy="by_number_of_parts", parts=3):
        self.orders, self.production = orders, production
        self.printer_type = printer_type(production, "Fuse")
        self.printer = create(production, "printer", {"name": "Fuse #1", "printer_type": self.printer_type,
                                                      "location": LOCATION})
        self.sift_type = post_processor_type(production, "Sift", batching_strategy=strategy, number_of_parts=parts)
        self.workflow = workflow(production, [step(production, self.printer_type), step(production, self.sift_type)])

    def pieces(self, quantity):
        item = line_item(self.orders, quantity, self.workflow)
        confirm(self.orders, item)
        follow_all(self.orders, self.production)
        return [p["uri"] for p in sorted(
            ({"uri": f["uri"], **f["fields"]} for f in self.production.referencing("piece", "line_item", item, ADMIN)),
            key=lambda p: p["copy"])]

    def create_runs(self, pieces, **fields):
        payload = {"pieces": pieces, "primary_workstation": self.printer, "do_build_volume_check": False, **fields}
        return self.production.create("create-runs", payload, command_ctx())["uri"]

    def saga(self, path):
        CreateRunsJob(Service(self.production)).run(path)
        return self.production.read("create-runs", uuid(path), ADMIN)

    def read(self, path):
        return self.production.read(path.split("/")[1], uuid(path), ADMIN)


@pytest.fixture
def shop(apps):  # noqa: F811
    return Shop(*apps)


def test_the_400s_at_post(shop):
    pieces = shop.pieces(2)
    sifter_type = shop.sift_type
    for payload, field, text in (
            ({"primary_workstation": sifter_type}, "primary_workstation", create_runs.NOT_A_PRINTER),
            ({"pieces": []}, "pieces", create_runs.PIECES_REQUIRED),
            ({"pieces": ["/piece/99999999-9999-9999-9999-999999999999/"]}, "pieces", "pieces must name pieces")):
        refused = error_of(lambda: shop.production.create(
            "create-runs", {"pieces": pieces, "primary_workstation": shop.printer, **payload}, command_ctx()))
        assert (refused.field, refused.title.startswith(text)) == (field, True), refused.title
    foreign = error_of(lambda: shop.production.create(
        "create-runs", {"pieces": pieces, "primary_workstation": shop.printer}, command_ctx(bureau=OTHER_BUREAU)))
    assert foreign.field == "primary_workstation"
    other_type = printer_type(shop.production, "Other")
    other = create(shop.production, "printer", {"name": "Other #1", "printer_type": other_type, "location": LOCATION})
    refused = error_of(lambda: shop.production.create("create-runs", {"pieces": pieces, "primary_workstation": other},
                                                      command_ctx()))
    assert "is not done on this printer's type" in refused.title
    shop.saga(shop.create_runs(pieces[:1]))
    refused = error_of(lambda: shop.create_runs(pieces))
    assert "is in a run already" in refused.title


def test_the_saga_makes_the_printing_run_and_the_downstream_runs(shop):
    pieces = shop.pieces(4)
    path = shop.create_runs(pieces, run_name="Monday", priority=80)
    assert shop.read(path)["status"] == "pending"
    done = shop.saga(path)
    assert done["status"] == "complete" and done["finished"] and done["unfitted_pieces"] == []
    primary = shop.read(done["primary_run"])
    assert (primary["name"], primary["priority"], primary["pieces_locked"], primary["printer"]) == (
        "Monday", 80, True, shop.printer)
    assert len(primary["prints"]) == 4 and primary.get("layout") is None
    process = shop.read(primary["packing_process"])
    assert (process["status"], process["run"], process["fitted_pieces"]) == ("complete", done["primary_run"], pieces)
    # by_number_of_parts with 3 parts: two sifting runs, 3 + 1
    sifting = [shop.read(r) for r in done["resulting_runs"][1:]]
    assert done["resulting_runs_count"] == 3 and sorted(len(r["prints"]) for r in sifting) == [1, 3]
    assert {r["operation"] for r in sifting} == {"post-processing"}
    assert {p["status"] for p in (shop.read(piece) for piece in pieces)} == {"queued-for-printing"}
    # a second start of the same saga changes nothing
    before = shop.production.recorder.max_notification_id()
    shop.saga(path)
    assert shop.production.recorder.max_notification_id() == before


def test_a_later_request_infills_the_open_downstream_run(shop):
    first = shop.saga(shop.create_runs(shop.pieces(2), locked=False))
    open_run = first["resulting_runs"][1]
    assert shop.read(open_run)["pieces_locked"] is False and len(shop.read(open_run)["prints"]) == 2
    second = shop.saga(shop.create_runs(shop.pieces(2)))
    assert open_run in second["resulting_runs"]  # 2 + 1 = the 3 parts the sifter takes
    assert len(shop.read(open_run)["prints"]) == 3
    new = [r for r in second["resulting_runs"][1:] if r != open_run]
    assert len(new) == 1 and len(shop.read(new[0])["prints"]) == 1 and shop.read(new[0])["pieces_locked"] is True


def test_a_packing_process_starts_the_saga_and_follows_its_plate(shop):
    pieces = shop.pieces(2)
    result = shop.production.create("packing-process", {"pieces": pieces, "printer": shop.printer,
                                                        "do_build_volume_check": False}, command_ctx())
    assert create_runs.PackingProcess.follow_ups("create", result, {}) == [
        (create_runs.CREATE_RUNS_REQUESTED, {"create_runs": result["create_runs"]})]
    process = shop.read(result["uri"])
    assert (process["status"], process["create_runs"]) == ("pending", result["create_runs"])
    saga = shop.read(result["create_runs"])
    assert (saga["primary_workstation"], saga["pieces"], saga["status"]) == (shop.printer, pieces, "pending")
    done = shop.saga(result["create_runs"])
    process = shop.read(result["uri"])
    assert (process["status"], process["run"]) == ("complete", done["primary_run"])
    assert shop.read(done["primary_run"])["packing_process"] == result["uri"]
    refused = error_of(lambda: shop.production.create("packing-process", {"pieces": pieces, "printer": shop.sift_type},
                                                      command_ctx()))
    assert refused.field == "printer" and "printer" in refused.title


def test_the_feed_names(shop):
    path = shop.create_runs(shop.pieces(1))
    shop.saga(path)
    names = [e["names"][-1] for e in shop.production.feed(1, 5000)["events"] if e["resource"] == "create-runs"]
    assert names == ["RunCreationRequested", "RunCreationStarted", "RunCreationCompleted"]
    names = [e["names"][-1] for e in shop.production.feed(1, 5000)["events"] if e["resource"] == "packing-process"]
    assert names == ["PackingRequested", "PackingUpdated", "PackingCompleted"]


def test_a_saga_that_cannot_make_its_run_ends_in_error_with_notes(shop):
    pieces = shop.pieces(1)
    path = shop.create_runs(pieces)
    current = shop.read(pieces[0])["current_print"]
    shop.production.create("run", {"prints": [current]}, command_ctx())  # taken meanwhile by a run made by hand
    done = shop.saga(path)
    assert done["status"] == "error" and done["finished"]
    assert done["notes"].startswith("The runs could not be created: ") and "another run" in done["notes"]
    assert done["resulting_runs"] == [] and done["primary_run"] is None


# -- notify-user (capture-and-platform.md E2, "Packing (create-runs / packing-process) notify-user") -------------------

def test_notify_user_tells_the_requester_once_the_saga_ends():
    from services.notifications.mail import render
    from services.notifications.triggers import intents_for
    from tests.unit.test_notifications_triggers import CREATOR, FakeFacts, event

    saga_uuid = "77777777-7777-7777-7777-777777777777"
    stored = {"user": CREATOR, "printer_name": "Fuse #1", "pieces_count": 6, "on_packing_process_failure": "ignore",
              "on_packing_process_success": "silent"}

    def ended(fields, **options):
        facts = FakeFacts(resources={("create-runs", saga_uuid): dict(stored, **options)})
        names = ["RunCreationUpdated", "RunCreationStatusChanged",
                 "RunCreationFailed" if fields["status"] == "error" else "RunCreationCompleted"]
        return intents_for(event(names, fields, application="production", resource="create-runs",
                                 uuid_=saga_uuid), facts)

    unfitted = {"status": "complete", "unfitted_pieces": ["/piece/1/", "/piece/2/"], "resulting_runs_count": 2,
                "primary_run": "/run/9/", "notes": "2 piece(s) did not fit the build plate."}
    assert ended(unfitted) == []  # ignore, silent: nobody is told
    told = ended(unfitted, on_packing_process_failure="notify-user")
    assert [(i.fields["template"], i.fields["emails"]) for i in told] == [
        ("stratum.create_runs_finished", ["creator@example.com"])]
    subject, text, html = render("stratum.create_runs_finished", told[0].fields["context"])
    assert subject == "Runs on Fuse #1: 2 piece(s) did not fit" and "2 of the 6 pieces did not fit" in text
    assert "https://stratum.test/run/9/" in html
    everything = {"status": "complete", "unfitted_pieces": [], "resulting_runs_count": 3, "primary_run": "/run/9/"}
    assert ended(everything, on_packing_process_failure="notify-user") == []  # nothing failed
    told = ended(everything, on_packing_process_success="notify-user")
    assert render("stratum.create_runs_finished", told[0].fields["context"])[0] == "Runs on Fuse #1 are created"
    failed = ended({"status": "error", "notes": "The runs could not be created: …"},
                   on_packing_process_failure="notify-user")
    assert render("stratum.create_runs_finished", failed[0].fields["context"])[0] == \
        "Runs on Fuse #1 could not be created"


def test_a_saga_failing_after_its_printing_run_lists_what_it_made(shop, monkeypatch):
    def broken(strategy, workstation_type):  # a fault after the printing run: the batching step breaks
        raise RuntimeError("batching broke")
    monkeypatch.setattr(batching, "capacity", broken)
    done = shop.saga(shop.create_runs(shop.pieces(2)))
    assert done["status"] == "error" and done["notes"] == "The runs could not be created: RuntimeError: batching broke"
    assert done["resulting_runs_count"] == 1 and shop.read(done["resulting_runs"][0])["operation"] == "printing"
