"""/layout/'s rules on an in-memory production store: the documented 400s, the plate resolved at POST (from the
build object or a printer type), the job's steps (queued → processing → complete | error), each recorded once, and
the names in the feed."""
import pytest

from services.production.application import Production
from services.production.packing.job import step
from services.production.packing.layout import LAYOUT_REQUESTED, Layout
from shared.errors import InvalidPayload
from tests.kit.apps import IN_MEMORY, command_ctx

MODEL = "/model/22222222-2222-2222-2222-222222222222/"


@pytest.fixture
def production():
    app = Production(env=IN_MEMORY)
    yield app
    app.close()


def ctx():
    return command_ctx(layout_models={MODEL: {"model": MODEL, "name": "cube"}})


def payload(**changes):
    return {"models": [MODEL, MODEL], "build": {"type": "rectangle", "x": 200, "y": 150},
            "min_packing_distance": 5, **changes}


def test_a_layout_is_queued_with_its_plate_and_options(production):
    result = production.create("layout", payload(build={"type": "circle", "diameter": 120, "rotations": [0, 45],
                                                        "time_limit_s": 3}), ctx())
    layout = production.load("layout", result["uri"].split("/")[2], {"platform_admin": True})
    assert layout.fields["status"] == "queued"
    assert layout.fields["_plate"] == {"kind": "circle", "diameter": 120.0, "z": None}
    assert (layout.fields["_rotations"], layout.fields["_time_limit"], layout.fields["_spacing"]) == ([0.0, 45.0],
                                                                                                       3.0, 5.0)
    assert Layout.follow_ups("create", result, {}) == [(LAYOUT_REQUESTED, {"layout": result["uri"]})]


def test_the_plate_can_come_from_a_printer_type(production):
    maker = production.create("manufacturer", {"name": "EOS"}, command_ctx())["uri"]
    made = production.create("printer-type", {"name": "SLS", "build_plate_shape": "rectangular",
                                              "build_volume": {"x": 340, "y": 340, "z": 600}, "manufacturer": maker,
                                              "materials": []}, command_ctx())
    result = production.create("layout", payload(build={"printer_type": made["uri"]}), ctx())
    layout = production.load("layout", result["uri"].split("/")[2], {"platform_admin": True})
    assert layout.fields["_plate"] == {"kind": "rectangle", "x": 340.0, "y": 340.0, "z": 600.0}


@pytest.mark.parametrize("changes, message", [
    ({"build": {"type": "rectangle", "x": 0, "y": 10}}, "The build parameters are invalid."),
    ({"build": {"type": "hexagon"}}, "The build parameters are invalid."),
    ({"build": {"type": "rectangle", "x": 10, "y": 10, "packer_type": "pack3d"}}, "The build parameters are invalid."),
    ({"build": {"printer_type": "/printer-type/44444444-4444-4444-4444-444444444444/"}},
     "The build parameters are invalid."),
    ({"min_packing_distance": -2}, "The model spacing is an invalid value."),
    ({"min_packing_distance": "wide"}, "The model spacing is an invalid value."),
])
def test_the_documented_400s(production, changes, message):
    with pytest.raises(InvalidPayload) as refused:
        production.create("layout", payload(**changes), ctx())
    assert str(refused.value.args[0]).startswith(message)


def test_an_unresolved_model_is_refused(production):
    with pytest.raises(InvalidPayload, match="is not a model or print you can see"):
        production.create("layout", payload(), command_ctx(layout_models={}))


def test_the_job_steps_and_their_names(production):
    result = production.create("layout", payload(), ctx())
    uuid = result["uri"].split("/")[2]
    step(production, uuid, "start", {}, "start")
    step(production, uuid, "start", {}, "start")  # a redelivered job records nothing twice
    step(production, uuid, "progressed", {"progress": {"phase": "packing", "placed": 1}}, "p1")
    answer = {"positions": [{"model": MODEL, "index": 0, "x": 1.0, "y": 2.0, "z": 0.0, "rotation_z": 0.0,
                             "matrix": []}], "unfitted": [{"model": MODEL, "index": 1, "reason": "no room"}],
              "fill_percentage": 12.5, "engine": "raster"}
    step(production, uuid, "complete", {"result": answer, "png": {"sha256": "0" * 64, "size": 1}}, "done")
    step(production, uuid, "fail", {"reason": "late"}, "done2")  # a finished layout stays finished
    layout = production.load("layout", uuid, {"platform_admin": True})
    assert layout.fields["status"] == "complete" and layout.fields["fill_percentage"] == 12.5
    assert layout.fields["unfitted"][0]["index"] == 1 and layout.fields["_snapshot"]["size"] == 1
    names = [e["names"][-1] for e in production.feed(1, 100)["events"] if e["resource"] == "layout"]
    assert names == ["LayoutCreated", "LayoutProcessingStarted", "LayoutProgressed", "LayoutCompleted"]


def test_a_failed_job_says_why(production):
    uuid = production.create("layout", payload(), ctx())["uri"].split("/")[2]
    step(production, uuid, "start", {}, "start")
    step(production, uuid, "fail", {"reason": "Failed to create layout: no models"}, "done")
    layout = production.load("layout", uuid, {"platform_admin": True})
    assert (layout.fields["status"], layout.fields["error"]) == ("error", "Failed to create layout: no models")


def test_a_layout_needs_at_least_one_copy(production):
    with pytest.raises(InvalidPayload, match="'models' must name 1 to 2000 copies"):
        production.create("layout", payload(models=[]), ctx())
