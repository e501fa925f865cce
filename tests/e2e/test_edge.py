"""The edge refuses what could never be stored or replayed, answers errors a client can act on, and keeps each
caller's Idempotency-Key to its own request (hardening issue D1, D2, D4, D9, D10)."""
import json
import time
import uuid

import pytest
import requests

from tests.kit.plugin import ADMIN_EMAIL, ADMIN_PASSWORD, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def config_overrides():
    return {"STRATUM_RPC_TIMEOUT": "5"}  # the outage test waits out one RPC deadline


@pytest.fixture(scope="module")
def tenant(admin):
    return make_tenant(admin, login, "edge")


def error_of(response):
    return response.json()["errors"][0]


def raw_post(session, path, body):
    return session.post(path, data=body, headers={"Content-Type": "application/json"})


# -- D1: poison values never reach a store ---------------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ('{"name": "x\\u0000y"}', "name"),              # PostgreSQL's JSONB refuses NUL
    ('{"name": "x\\ud800y"}', "name"),              # a lone surrogate is no Unicode
    ('{"name": "t", "n": {"deep": "a\\u0000"}}', "n"),
])
def test_strings_that_cannot_be_stored_are_refused_naming_the_field(system, admin, body, field):
    response = raw_post(admin, "/api_tokens/", body)
    assert response.status_code == 400 and error_of(response).get("field") == field, response.text
    # the identity feed is healthy: a login (which reads it) still works
    assert login(system.base_url, ADMIN_EMAIL, ADMIN_PASSWORD).get("/sessions/").status_code == 200


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_refused(admin, number):
    response = raw_post(admin, "/payment/", '{"sub_total": %s}' % number)
    assert response.status_code == 400 and number.lstrip("-") in error_of(response)["title"], response.text
    assert admin.get("/payment/?filter[sub_total]>0").status_code == 200


def test_nesting_beyond_the_limit_is_refused(admin):
    deep = '{"name": "n", "shipping": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}"
    response = raw_post(admin, "/order/", deep)
    assert response.status_code == 400 and "nested" in error_of(response)["title"]
    shallow = {"name": "ok", "shipping": {"name": "Ada", "address": "1 Loop Rd"}}
    assert admin.post("/order/", json=shallow).status_code == 201


# -- D2: one huge body cannot stall a service ------------------------------------------------------------------------

def test_a_body_over_the_limit_is_413_and_orders_keep_flowing(admin):
    huge = admin.post("/order/", json={"name": "x" * (10 * 1024 * 1024)})
    assert huge.status_code == 413 and "KiB" in error_of(huge)["title"]
    chunked = admin.post("/order/", data=iter([b'{"name": "', b"y" * (2 * 1024 * 1024), b'"}']),
                         headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    started = time.monotonic()
    assert admin.post("/order/", json={"name": "after the flood"}).status_code == 201
    assert time.monotonic() - started < 10
    assert admin.get("/order/?filter[name]=after the flood").json()["total_count"] >= 1


# -- D4: an Idempotency-Key belongs to its caller and its request ----------------------------------------------------

def test_idempotency_keys_belong_to_their_caller_and_request(admin, tenant):
    key = str(uuid.uuid4())
    first = admin.post("/order/", json={"name": "keyed"}, headers={"Idempotency-Key": key})
    again = admin.post("/order/", json={"name": "keyed"}, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.headers["Location"] == again.headers["Location"]  # a retry acts once
    other = tenant.manager.post("/order/", json={"name": "keyed"}, headers={"Idempotency-Key": key})
    assert other.status_code == 201 and other.headers["Location"] != first.headers["Location"]
    assert tenant.manager.get(first.headers["Location"]).status_code == 404  # learns nothing of the other's order
    changed = admin.post("/order/", json={"name": "another"}, headers={"Idempotency-Key": key})
    assert changed.status_code == 422 and "Idempotency-Key reused" in error_of(changed)["title"]
    elsewhere = admin.put(first.headers["Location"], json={"name": "renamed"}, headers={"Idempotency-Key": key})
    assert elsewhere.status_code == 422
    assert admin.get(first.headers["Location"]).json()["name"] == "keyed"  # nothing happened


# -- D9: bad queries are 400s that say what is wrong -----------------------------------------------------------------

@pytest.mark.parametrize("query, field", [
    ("/order/?filter[name]=%00", "filter[name]"),
    ("/order/?page[offset]=99999999999999999999", "page[offset]"),
    ("/event/?filter[current_value]=x", "current_value"),
    ("/event/?sort=previous_value", "previous_value"),
])
def test_bad_list_queries_are_400_naming_the_parameter(admin, query, field):
    response = admin.get(query)
    assert response.status_code == 400 and error_of(response)["field"] == field, response.text


def test_events_are_filtered_and_sorted_by_their_uri(admin):
    order = admin.post("/order/", json={"name": "audited"}).headers["Location"]
    rows = admin.get("/event/", params={"filter[reference]": order}).json()["resources"]
    one = rows[0]["uri"]
    found = admin.get("/event/", params={"filter[uri]": one}).json()
    assert [r["uri"] for r in found["resources"]] == [one]
    assert admin.get("/event/?sort=-uri&page[limit]=5").status_code == 200


# -- D10: answers a client can act on ----------------------------------------------------------------------------------

def test_405_says_which_methods_are_allowed(admin):
    response = admin.patch("/order/", json={})
    assert response.status_code == 405 and set(response.headers["Allow"].split(", ")) == {"GET", "POST"}
    response = admin.post("/csrf-token/")
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


def test_an_outage_is_503_with_retry_after(system, admin):
    """A service that does not answer (stopped here) is a 503 with Retry-After, never a 500."""
    system.stop_service("materials")
    try:
        response = admin.post("/tooling-type/", json={"name": "Gripper"})
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert error_of(response)["code"] == "service-unavailable"
    finally:
        system.start_service("materials")
    assert admin.post("/tooling-type/", json={"name": "Gripper"}).status_code == 201


def test_a_malformed_body_is_400_not_500(admin):
    for body in (b"{", b'{"name": "\xff"}', json.dumps([1, 2]).encode()):
        assert raw_post(admin, "/order/", body).status_code == 400
    assert requests.post(admin.base_url + "/order/", data=b"{}", timeout=10).status_code == 401
