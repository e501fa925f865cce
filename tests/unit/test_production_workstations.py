"""Production's workstation and workflow rules (production.md §4.1–4.4, §5): names unique per bureau, build volumes
by plate shape, delete guards, the steps a workflow keeps, usage_state and its 409s, and /workflow/{uuid}/replace/."""
import pytest

from services.production import domain
from services.production.application import Production
from shared.errors import Conflict, InvalidPayload, NotFound
from tests.kit.apps import BUREAU, IN_MEMORY, command_ctx

OTHER_BUREAU = "/bureau/22222222-2222-2222-2222-222222222222/"


@pytest.fixture
def production():
    app = Production(env=IN_MEMORY)
    yield app
    app.close()


def create(app, resource, payload, **ctx):
    return app.create(resource, payload, command_ctx(**ctx))["uri"]


def uuid(path):
    return path.rstrip("/").rsplit("/", 1)[1]


def manufacturer(app, **ctx):
    return create(app, "manufacturer", {"name": "Stratasys"}, **ctx)


def printer_type(app, name="Fortus 450", **fields):
    payload = {"name": name, "manufacturer": fields.pop("manufacturer", None) or manufacturer(app),
               "materials": ["/material/33333333-3333-3333-3333-333333333333/"],
               "build_volume": {"x": 400, "y": 350, "z": 400}, "build_plate_shape": "rectangular", **fields}
    return create(app, "printer-type", payload)


def post_processor_type(app, name="Sanding", **fields):
    return create(app, "post-processor-type", {"name": name, "duration": 3600, **fields})


def step(app, workstation_type, **fields):
    payload = {"workstation_type_uri": workstation_type, "notes": "optional", "success": "required",
               "tracking_id": "hidden", "upload": "optional", **fields}
    return create(app, "process-step", payload)


def error_of(call):
    with pytest.raises((InvalidPayload, Conflict, NotFound)) as caught:
        call()
    return caught.value


def test_printer_type_defaults_and_build_volume_by_plate_shape(production):
    fields = production.read("printer-type", uuid(printer_type(production)), command_ctx())
    assert (fields["build_packer_type"], fields["min_packing_distance"], fields["material_mode"]) == (
        "pack2d", 5.0, "single_material")
    circular = printer_type(production, "Round", build_plate_shape="circular", build_volume={"x": 250, "z": 300})
    assert production.read("printer-type", uuid(circular), command_ctx())["build_volume"] == {"x": 250, "z": 300}
    for shape, volume in (("rectangular", {"x": 400, "z": 400}), ("circular", {"x": 250, "y": 100, "z": 3}),
                          ("rectangular", {"x": -1, "y": 2, "z": 3}), ("rectangular", "big")):
        error = error_of(lambda: printer_type(production, "Bad", build_plate_shape=shape, build_volume=volume))
        assert error.field == "build_volume"
    error = error_of(lambda: printer_type(production, "Bad", build_plate_shape="triangle"))
    assert error.field == "build_plate_shape"
    assert error_of(lambda: printer_type(production, "Neg", min_packing_distance=-1)).field == "min_packing_distance"


def test_names_are_unique_per_bureau(production):
    first = printer_type(production)
    error = error_of(lambda: printer_type(production))
    assert (error.title, error.field) == (domain.PRINTER_TYPE_NAME_EXISTS, "name")
    other = create(production, "manufacturer", {"name": "M"}, bureau=OTHER_BUREAU)
    printer_type_payload = {"name": "Fortus 450", "manufacturer": other, "materials": [],
                            "build_volume": {"x": 1, "y": 1, "z": 1}, "build_plate_shape": "rectangular"}
    production.create("printer-type", printer_type_payload, command_ctx(bureau=OTHER_BUREAU))  # another bureau's
    second = printer_type(production, "Fortus 900")
    error = error_of(lambda: production.update("printer-type", uuid(second), {"name": "Fortus 450"}, command_ctx()))
    assert error.title == domain.PRINTER_TYPE_NAME_EXISTS
    production.update("printer-type", uuid(first), {"name": "Fortus 450 mc"}, command_ctx())
    production.update("printer-type", uuid(second), {"name": "Fortus 450"}, command_ctx())  # the name is free now


def test_manufacturer_and_materials_are_checked(production):
    foreign = create(production, "manufacturer", {"name": "Elsewhere"}, bureau=OTHER_BUREAU)
    error = error_of(lambda: printer_type(production, manufacturer=foreign))
    assert error.title == domain.MANUFACTURER_MISMATCH
    error = error_of(lambda: printer_type(production, "M2", materials=["/model/33333333-3333-3333-3333-333333333333/"]))
    assert error.field == "materials"


def test_printer_type_delete_guards(production):
    kind = printer_type(production)
    printer = create(production, "printer", {"name": "P1", "printer_type": kind,
                                             "location": "/location/44444444-4444-4444-4444-444444444444/"})
    assert error_of(lambda: production.delete("printer-type", uuid(kind), command_ctx())).title == \
        domain.PRINTER_TYPE_HAS_PRINTERS
    assert error_of(lambda: create(production, "printer", {
        "name": "P1", "printer_type": kind, "location": "/location/44444444-4444-4444-4444-444444444444/"})).title \
        == domain.PRINTER_NAME_EXISTS
    production.delete("printer", uuid(printer), command_ctx())
    production.delete("printer-type", uuid(kind), command_ctx())
    assert error_of(lambda: production.read("printer-type", uuid(kind), command_ctx())).status == 404


def test_post_processors(production):
    kind = post_processor_type(production)
    fields = production.read("post-processor-type", uuid(kind), command_ctx())
    assert (fields["in_progress_max"], fields["batching_strategy"]) == (10, "match_previous")
    assert error_of(lambda: post_processor_type(production, "Tumble", batching_strategy="by_number_of_parts")
                    ).field == "number_of_parts"
    assert error_of(lambda: post_processor_type(production, "Zero", in_progress_max=0)).field == "in_progress_max"
    assert error_of(lambda: create(production, "post-processor", {"post_processor_type": kind})).field == "name"
    service = create(production, "post-processor", {"post_processor_type": kind, "is_service": True})
    machine = create(production, "post-processor", {"post_processor_type": kind, "name": "Sander 1",
                                                    "location": "/location/44444444-4444-4444-4444-444444444444/"})
    assert production.read("post-processor", uuid(machine), command_ctx())["in_progress_max"] == 10
    assert error_of(lambda: production.delete("post-processor-type", uuid(kind), command_ctx())).title == \
        domain.POST_PROCESSOR_TYPE_HAS_POST_PROCESSORS
    for each in (service, machine):
        production.delete("post-processor", uuid(each), command_ctx())
    production.delete("post-processor-type", uuid(kind), command_ctx())


def test_process_steps_record_their_inputs_and_name_a_real_workstation_type(production):
    kind = printer_type(production)
    made = step(production, kind)
    fields = production.read("process-step", uuid(made), command_ctx())
    assert (fields["notes"], fields["success"], fields["tracking_id"], fields["upload"]) == (
        "optional", "required", "hidden", "optional")
    assert error_of(lambda: step(production, kind, notes="sometimes")).field == "notes"
    assert error_of(lambda: step(production, kind, upload=None)).field == "upload"
    for bad in ("/printer/44444444-4444-4444-4444-444444444444/", "/printer-type/44444444-4444-4444-4444-444444444444/",
                "/shipping/44444444-4444-4444-4444-444444444444/"):
        assert error_of(lambda: step(production, bad)).title == domain.WORKSTATION_TYPE_INVALID
    shipping = "/shipping/55555555-5555-5555-5555-555555555555/"
    ctx = command_ctx(shipping_stations={shipping: True})
    production.create("process-step", {"workstation_type_uri": shipping, "notes": "optional", "success": "optional",
                                       "tracking_id": "required", "upload": "hidden"}, ctx)


def workflow(app, steps, name="Print and sand", **fields):
    return create(app, "workflow", {"name": name, "process_steps": steps, **fields})


def test_workflows_keep_ordered_steps_and_guard_them(production):
    printing = step(production, printer_type(production))
    sanding = step(production, post_processor_type(production))
    flow = workflow(production, [printing, sanding])
    body = production.read("workflow", uuid(flow), command_ctx())
    assert (body["process_steps"], body["usage_state"], body["type"]) == (
        [printing, sanding], "inactive", "additive_manufacturing")
    assert production.read("process-step", uuid(sanding), command_ctx())["workflows"] == [flow]
    assert production.read("process-step", uuid(sanding), command_ctx())["step_positions"] == [1]
    assert error_of(lambda: production.delete("process-step", uuid(sanding), command_ctx())).title == \
        domain.STEP_IN_WORKFLOW
    assert error_of(lambda: workflow(production, [printing])).title == domain.WORKFLOW_NAME_EXISTS
    assert error_of(lambda: workflow(production, ["/process-step/44444444-4444-4444-4444-444444444444/"],
                                     name="x")).title == domain.STEP_INVALID
    kind = production.read("process-step", uuid(printing), command_ctx())["workstation_type_uri"]
    assert error_of(lambda: production.delete("printer-type", uuid(kind), command_ctx())).title == \
        domain.TYPE_IN_WORKFLOW
    production.update("workflow", uuid(flow), {"process_steps": [printing]}, command_ctx())
    assert production.read("process-step", uuid(sanding), command_ctx())["workflows"] == []
    production.delete("process-step", uuid(sanding), command_ctx())
    facts = production.workflow_facts(flow, command_ctx())
    assert facts["has_printer_type"] and facts["operations"] == ["printing"]


def test_usage_state_archives_and_409s(production):
    printing = step(production, printer_type(production))
    flow = workflow(production, [printing])
    error = error_of(lambda: production.update("workflow", uuid(flow), {"usage_state": "active"}, command_ctx()))
    assert (error.title, error.status) == (domain.ONLY_ARCHIVE, 400)
    loaded = production.repository.get(production.load("workflow", uuid(flow), command_ctx()).id)
    loaded.note_usage("active")
    production.save(loaded)
    error = error_of(lambda: production.update("workflow", uuid(flow), {"usage_state": "archived"}, command_ctx()))
    assert (error.title, error.status) == (domain.WORKFLOW_PROCESSING, 409)
    error = error_of(lambda: production.update("workflow", uuid(flow), {"process_steps": []}, command_ctx()))
    assert (error.title, error.status) == (domain.WORKFLOW_PROCESSING, 409)
    production.update("workflow", uuid(flow), {"description": "still editable"}, command_ctx())
    loaded = production.repository.get(loaded.id)
    loaded.note_usage("can_be_safely_archived")
    production.save(loaded)
    production.update("workflow", uuid(flow), {"usage_state": "archived"}, command_ctx())
    loaded = production.repository.get(loaded.id)
    loaded.note_usage("active")  # an archived workflow stays archived
    assert loaded.fields["usage_state"] == "archived"


def test_another_bureaus_workflow_is_not_found(production):
    printing = step(production, printer_type(production))
    flow = workflow(production, [printing])
    with pytest.raises(NotFound):
        production.read("workflow", uuid(flow), command_ctx(bureau=OTHER_BUREAU))
    with pytest.raises(NotFound):
        production.act("workflow", uuid(flow), "replace", {"name": "x", "description": "y",
                                                            "process_steps": [printing]},
                       command_ctx(bureau=OTHER_BUREAU))


def test_replace_pinned_to_a_line_item_and_globally(production):
    printing = step(production, printer_type(production))
    sanding = step(production, post_processor_type(production))
    flow = workflow(production, [printing])
    line_item = "/line-item/66666666-6666-6666-6666-666666666666/"
    result = production.act("workflow", uuid(flow), "replace", {
        "name": "Print and sand", "description": "for this one", "process_steps": [printing, sanding],
        "line_item": line_item}, command_ctx())
    new = production.read("workflow", uuid(result["uri"]), command_ctx())
    assert (new["line_item"], new["source_workflow"], new["process_steps"]) == (line_item, flow, [printing, sanding])
    assert new["name"] == "Print and sand (2)"  # renamed: the source holds the name
    assert result["repoint"] == [line_item]
    error = error_of(lambda: production.act("workflow", uuid(flow), "replace", {
        "name": "n", "description": "d", "process_steps": [printing]}, command_ctx()))
    assert error.status == 409  # globally: only a workflow in use
    loaded = production.repository.get(production.load("workflow", uuid(flow), command_ctx()).id)
    loaded.note_usage("active")
    production.save(loaded)
    users = {line_item: "pending", "/line-item/77777777-7777-7777-7777-777777777777/": "printing"}
    result = production.act("workflow", uuid(flow), "replace", {
        "name": "Print and sand", "description": "v2", "process_steps": [printing, sanding]},
        command_ctx(workflow_users=users))
    source = production.read("workflow", uuid(flow), command_ctx())
    assert source["usage_state"] == "archived" and source["name"].startswith("Print and sand (archived")
    assert production.read("workflow", uuid(result["uri"]), command_ctx())["name"] == "Print and sand"
    assert result["repoint"] == [line_item]  # only line items not processing yet follow
    for field in ("name", "process_steps"):
        payload = {"name": "n", "description": "d", "process_steps": [printing]}
        payload.pop(field)
        assert error_of(lambda: production.act("workflow", uuid(flow), "replace", payload, command_ctx())).field \
            == field


def test_a_step_says_what_its_run_must_be_given_to_complete(production):
    made = step(production, printer_type(production))  # notes optional, success required, tracking_id hidden
    loaded = production.load("process-step", uuid(made), command_ctx())
    loaded.check_completion({"success": True})
    loaded.check_completion({"success": False, "notes": "warped corner"})  # an answer, even a no
    assert error_of(lambda: loaded.check_completion({"notes": "done"})).field == "success"
    assert error_of(lambda: loaded.check_completion({"success": True, "tracking_id": "1Z"})).field == "tracking_id"
