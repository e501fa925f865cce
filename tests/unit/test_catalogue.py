"""The resource catalogue: the committed resources.json is what the generator makes of the reference and the
overrides, and it says what the reference and the domain maps say."""
import json

import pytest

from tools import catalogue_generate as generate

SERVICES = {"orders", "production", "materials", "files", "capture", "identity", "notifications", "gateway"}
VERBS = {"LIST", "POST", "GET", "PUT", "DELETE"}
TYPES = {"string", "integer", "number", "boolean", "datetime", "uri", "array", "object", "any"}


@pytest.fixture(scope="module")
def built():
    return generate.build()


@pytest.fixture(scope="module")
def resources(built):
    return built["resources"]


def test_committed_catalogue_is_up_to_date(built):
    with open(generate.OUTPUT, encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == generate.render(built), (
        "shared/catalogue/resources.json is stale: run `python -m tools.catalogue_generate` and commit the result")


def test_rendering_is_deterministic(built):
    text = generate.render(built)
    assert text.endswith("}\n") and text == generate.render(generate.build())
    assert json.loads(text) == built


def test_every_resource_is_complete(resources):
    assert len(resources) >= 200
    for name, spec in resources.items():
        assert spec["path"].startswith("/") and spec["path"].endswith("/"), name
        assert spec["service"] in SERVICES, name
        assert spec["verbs"] and set(spec["verbs"]) <= VERBS, name
        assert spec["not_found"], name
        item_verbs = {"GET", "PUT", "DELETE"} & set(spec["verbs"])
        assert (spec["item_path"] is not None) == bool(item_verbs), name
        for field_name, field in spec["fields"].items():
            assert field["type"] in TYPES, (name, field_name)
            if field["type"] == "array":
                assert field["items"] in TYPES, (name, field_name)
            if "ref" in field:
                assert field["ref"] in resources, (name, field_name, field["ref"])
        for filter_name in spec["required_filters"] + list(spec["default_filters"]):
            assert filter_name in spec["fields"], (name, filter_name)
        for action in spec["actions"]:
            assert action["path"].startswith(spec["path"] + "{uuid}/"), (name, action["path"])


def test_names_follow_paths(resources):
    assert {"order", "line-item", "api_tokens", "custom_field", "guideline/for-process-step",
            "service-provider/v1/order"} <= set(resources)
    assert resources["guideline/for-process-step"]["path"] == "/guideline/for-process-step/"
    assert resources["order"]["item_path"] == "/order/{uuid}/"


def test_order_matches_the_reference(resources):
    order = resources["order"]
    assert len(order["fields"]) >= 40
    assert order["service"] == "orders" and order["verbs"] == ["LIST", "POST", "GET", "PUT", "DELETE"]
    assert order["fields"]["status"]["choices"] == [
        "calculating_estimates", "cancelled", "confirmed", "complete", "error", "new", "pending", "in-preparation",
        "processing", "post-processing", "printing", "shipping", "cloning"]
    assert order["fields"]["order_type"]["choices"] == ["benchmark", "commercial", "r-d", "sample-free", "timestudy"]
    assert order["fields"]["build_file_status"]["choices"] == ["Pending", "In Progress", "Complete"]
    priority = order["fields"]["priority"]
    assert (priority["type"], priority["default"], priority["minimum"], priority["maximum"]) == ("integer", 65, 0, 100)
    assert order["fields"]["bureau"]["ref"] == "bureau" and order["fields"]["user"]["ref"] == "users"
    assert order["fields"]["line_items"]["items"] == "uri" and order["fields"]["line_items"]["ref"] == "line-item"
    assert order["fields"]["due_date"]["type"] == "datetime"
    assert order["fields"]["customer_email"]["type"] == "string"  # the reference lost its type
    assert order["not_found"] == "The requested order cannot be found."
    assert {"status": 400, "title": "Provided status transformation is not allowed"} in order["errors"]


def test_required_marks_come_from_the_maps(resources):
    order = resources["order"]["fields"]
    # The reference marks these "Required" on POST; orders.md says they are computed or filters.
    for name in ("piece_count", "notes", "estimates", "shipping_type", "run_status", "updated"):
        assert not order[name]["required"], name
    assert order["run_status"]["filter_only"] and order["piece_count"]["readonly"]
    assert order["name"]["required"] and order["bureau"]["required"]
    assert [n for n, f in order.items() if f["required"]] == ["bureau", "name"]


def test_read_only_identity_fields(resources):
    for name, spec in resources.items():
        for field_name in ("uri", "uuid", "created", "updated"):
            if field_name in spec["fields"] and (name, field_name) != ("ecco", "uuid"):  # legacy Echo sends its uuid
                assert spec["fields"][field_name]["readonly"], (name, field_name)


def test_filters_from_the_maps(resources):
    assert resources["sensor-data"]["required_filters"] == ["sensor"]
    assert resources["sensor-data"]["verbs"] == ["LIST", "GET"]
    assert resources["access-info-for-resource"]["required_filters"] == ["target_uri"]
    assert resources["access-info-for-resource"]["verbs"] == ["LIST"]
    assert resources["line-item"]["default_filters"] == {"type": "product"}


def test_actions_have_their_uuid(resources):
    actions = {a["path"]: a for spec in resources.values() for a in spec["actions"]}
    assert actions["/order/{uuid}/clone/"]["verbs"] == ["POST"]
    assert "/line-item/{uuid}/clone/" in actions and "/document/{uuid}/replace/" in actions
    assert actions["/document/{uuid}/replace/"]["fields"]["name"]["required"]
    assert not actions["/line-item/{uuid}/clone/"]["fields"]["quantity"]["required"]  # orders.md §1.4
    assert "order//clone" not in json.dumps(resources)


def test_hidden_endpoints_get_the_maps_paths(resources):
    line_item = resources["line-item"]  # its GET block sits inside /line-item//clone/
    assert "GET" in line_item["verbs"] and line_item["fields"]["type"]["choices"] == [
        "product", "specimen", "waste", "tooling"]
    assert resources["addiguru-analysis"]["path"] == "/addiguru-analysis/"
    assert resources["bureau-settings"]["service"] == "identity"
    assert "addiguru_id" not in resources["access-info-for-resource"]["fields"]
    assert set(resources["material-batch-linking"]["fields"]) >= {"source_batch", "destination_batch", "quantity"}


def test_read_projections_are_served_by_the_gateway(resources):
    for name in ("event", "flat-order", "flat-line-item", "flat-piece", "assignment", "pieces-by-run"):
        assert resources[name]["service"] == "gateway", name
        assert set(resources[name]["verbs"]) <= {"LIST", "GET"}, name
        assert not any(f["required"] for f in resources[name]["fields"].values()), name


def test_special_endpoints(resources):
    for name in ("about", "sessions", "csrf-token", "content"):
        assert resources[name].get("special") is True, name
    assert resources["content"]["item_path"] == "/content/{uuid}/"


def test_blocked_and_implied_verbs(resources):
    assert resources["material-batch"]["verbs"] == ["LIST", "GET"]  # materials.md §3.8: writes are 403
    assert resources["material-batch-action"]["verbs"] == ["LIST", "POST", "GET"]  # a ledger
    assert resources["shipment"]["verbs"] == ["LIST", "GET", "PUT"]  # orders.md §1.23: no POST
    assert resources["piece"]["verbs"] == ["LIST", "GET", "PUT"]  # production.md §3.2: PUT implied
    assert resources["line-item"]["verbs"] == ["LIST", "POST", "GET", "PUT", "DELETE"]


def test_services_follow_the_design(resources):
    expected = {"order": "orders", "run": "production", "material-lot": "materials", "model": "files",
                "modeler": "capture", "users": "identity", "bureau-notification": "notifications",
                "event": "gateway", "sensor-data": "capture", "bureau": "identity"}
    assert {name: resources[name]["service"] for name in expected} == expected


def test_reference_quirks_are_handled(resources):
    material = resources["material"]["fields"]
    assert "Polyjet Anatomy" in material["manufacturing_process"]["choices"]  # a choice list wrapped over lines
    assert "Laser cutting" in material["manufacturing_process"]["choices"]
    assert "choices" not in resources["prosper"]["fields"]["service_url"]  # '"s|e|r|v|i|c|e|_|u|r|l"'
    assert resources["users"]["fields"]["email"]["type"] == "string"  # the row lost its name
    assert material["units"]["default"] == "cm3"
    assert resources["model"]["fields"]["allowed_transformations"]["default"] == {"resize": False, "rotation": False}

