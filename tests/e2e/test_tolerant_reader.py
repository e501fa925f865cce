"""Clients of any vintage work unchanged: unknown fields are ignored and named back, older field names and
forgiving values are read for what they mean, `Prefer: handling=strict` restores the strict 400s, and browser
applications on an allowed origin may call the API (CORS)."""
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e

APP_ORIGIN = "https://mes-ui.example.test"
OTHER_ORIGIN = "https://elsewhere.example.test"
STRICT = {"Prefer": "handling=strict"}
IGNORED = "Stratum-Ignored-Fields"


@pytest.fixture(scope="module")
def config_overrides():
    return {"STRATUM_CORS_ORIGINS": f"{APP_ORIGIN}, https://second.example.test"}


def new_order(admin, name="form order"):
    return admin.post("/order/", json={"name": name, "shipping": {"name": "Ada", "address": "1 Loop Rd"}}
                      ).headers["Location"]


def test_a_web_forms_full_order_save_succeeds_and_names_what_it_ignored(admin):
    order = new_order(admin)
    form = admin.get(order).json()  # the form shows every field and sends them all back …
    form.update(name="Form order v2", priority="80",  # … a number typed into a text box
                due_date="2026-12-24T16:00:00.250Z",  # … a date with milliseconds and Z
                customer_email="", notes=None,  # … optional fields left empty
                ui_tab="shipping")  # … and a field of its own
    saved = admin.put(order, json=form)
    assert saved.status_code == 204, saved.text
    assert saved.headers[IGNORED] == "ui_tab"
    stored = admin.get(order).json()
    assert (stored["name"], stored["priority"], stored["customer_email"]) == ("Form order v2", 80, None)
    assert stored["due_date"] == "2026-12-24T16:00:00.250000+00:00"
    assert "ui_tab" not in stored
    # strict handling answers today's 400 naming the field, and changes nothing
    strict = admin.put(order, json=dict(form, name="strict"), headers=STRICT)
    assert strict.status_code == 400 and strict.json()["errors"][0]["field"] in ("ui_tab", "priority", "uri")
    assert admin.get(order).json()["name"] == "Form order v2"


def test_a_read_only_field_sent_with_another_value_is_refused(admin):
    order = new_order(admin)
    created = admin.get(order).json()["created"]
    assert admin.put(order, json={"created": created, "name": "same created"}).status_code == 204
    refused = admin.put(order, json={"created": "2001-01-01T00:00:00Z", "name": "changed created"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "created"
    assert admin.get(order).json()["name"] == "same created"


def test_a_model_created_with_an_older_field_name(admin):
    response = admin.post("/model/", json={"name": "bracket.stl", "type": "stl", "model_unit": "in"})
    assert response.status_code == 201 and IGNORED not in response.headers
    assert admin.get(response.headers["Location"]).json()["user_unit"] == "in"
    strict = admin.post("/model/", json={"name": "bracket.stl", "type": "stl", "model_unit": "in"}, headers=STRICT)
    assert strict.status_code == 400 and strict.json()["errors"][0]["field"] == "model_unit"


def test_a_line_item_with_an_undocumented_flag(admin):
    order = new_order(admin, "flags")
    product = admin.post("/product/", json={"order": order, "no_model_upload": True}).headers["Location"]
    response = admin.post("/line-item/", json={"product": product, "quantity": "3", "rush_job": True})
    assert response.status_code == 201 and response.headers[IGNORED] == "rush_job"
    item = admin.get(response.headers["Location"]).json()
    assert item["quantity"] == 3 and "rush_job" not in item
    strict = admin.post("/line-item/", json={"product": product, "quantity": 3, "rush_job": True}, headers=STRICT)
    assert strict.status_code == 400 and strict.json()["errors"][0]["title"] == "Unknown field 'rush_job' for line-item."


def test_ambiguous_values_stay_400s_naming_the_field(admin):
    order = new_order(admin, "ambiguous")
    for change, field in (({"priority": "eighty"}, "priority"), ({"name": ""}, None), ({"due_date": "tomorrow"},
                                                                                        "due_date")):
        response = admin.put(order, json=change)
        if field is None:
            assert response.status_code == 204  # an empty name is a value a string field may hold
        else:
            assert response.status_code == 400 and response.json()["errors"][0]["field"] == field


def test_a_preflight_from_an_allowed_origin_is_granted_without_a_session(system):
    response = requests.options(system.base_url + "/order/", timeout=10, headers={
        "Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, idempotency-key"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "idempotency-key" in response.headers["Access-Control-Allow-Headers"].lower()


def test_a_credentialed_request_from_an_allowed_origin_reads_the_headers_it_needs(admin):
    response = admin.post("/order/", json={"name": f"browser {uuid.uuid4().hex[:6]}", "extra": 1},
                          headers={"Origin": APP_ORIGIN})
    assert response.status_code == 201, response.text
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "X-Upload-Location", IGNORED} <= exposed
    listed = admin.get("/order/?page[limit]=1", headers={"Origin": APP_ORIGIN})
    assert listed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_another_origin_gets_no_grant(system, admin):
    preflight = requests.options(system.base_url + "/order/", timeout=10, headers={
        "Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "Access-Control-Allow-Origin" not in preflight.headers
    read = admin.get("/order/?page[limit]=1", headers={"Origin": OTHER_ORIGIN})
    assert "Access-Control-Allow-Origin" not in read.headers
