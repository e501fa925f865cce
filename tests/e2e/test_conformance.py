"""Generated from the catalogue: every documented resource answers through the gateway as documented.

For each resource: LIST answers 200 with `resources` (or the documented 400 for a missing required filter); where
the verbs exist, a minimal valid payload is created, read back, found by a filter, updated and deleted; every enum
field rejects a value outside its documented choices with a 400 naming it."""
import re
import uuid

import pytest

from shared import catalogue, uris
from tests.kit.payloads import PayloadFactory, Unreachable, filterable_field
from tests.kit.plugin import ApiSession, eventually

pytestmark = pytest.mark.e2e

WRITE_ONLY = {"csrf_token", "password"}  # accepted, never returned
RESOURCES = [spec for spec in catalogue.catalogue().values() if not spec.special]
ENUM_CASES = [(spec, field) for spec in RESOURCES if "POST" in spec.verbs
              for field in spec.writable_fields().values() if field.choices]


@pytest.fixture(scope="module")
def factory(system, admin):
    session = admin.get("/sessions/").json()
    ctx = {"user": uris.normalise(session["user"]), "bureau": uris.normalise(session["bureau"])}

    def create_internally(spec, payload):
        """What a service's own rule would do (e.g. production creating a print): a direct command, no HTTP verb."""
        with system.rpc() as rpc:
            result = getattr(rpc, spec.service).create(spec.name, payload, dict(ctx, command_id=str(uuid.uuid4())))
        location = admin.base_url + result["uri"]
        eventually(lambda: admin.get(location).status_code == 200 or "GET" not in spec.verbs)
        return location

    return PayloadFactory(admin, session["bureau"], session["user"], create_internally)


def required_filter_query(spec, factory):
    parts = []
    for name in spec.required_filters:
        field = spec.fields[name]
        value = factory.value_for(field, spec.name) if field.type == "uri" else "conformance"
        parts.append(f"filter[{name}]={value}")
    return "?" + "&".join(parts) if parts else ""


@pytest.mark.parametrize("spec", RESOURCES, ids=lambda s: s.name)
def test_list_answers(admin, factory, spec):
    if "LIST" not in spec.verbs:
        response = admin.get(spec.path)
        assert response.status_code == 405, response.text
        return
    for name in spec.required_filters:
        missing = admin.get(spec.path)
        assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == name
    try:
        query = required_filter_query(spec, factory)
    except Unreachable as reason:
        pytest.fail(str(reason))
    response = admin.get(spec.path + query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["resources"], list) and body["total_count"] >= 0


# POST-only resources without an item path that make a resource of another kind (files.md: the zip of an order's
# models), answered 201 with its Location
MAKES_ANOTHER = {"zipfile-request": "/zipfile/"}


@pytest.mark.parametrize("spec", [s for s in RESOURCES if "POST" in s.verbs], ids=lambda s: s.name)
def test_round_trip(admin, factory, spec):
    try:
        payload = factory.minimal(spec)
    except Unreachable as reason:
        pytest.fail(str(reason))
    created = admin.post(spec.path, json=payload)
    if spec.item_path is None and spec.name in MAKES_ANOTHER:  # a request that makes another resource: 201 to it
        assert created.status_code == 201, created.text
        assert created.headers["Location"].startswith(admin.base_url + MAKES_ANOTHER[spec.name])
        assert admin.get(created.headers["Location"]).status_code == 200
        return
    if spec.item_path is None and "LIST" not in spec.verbs:  # nothing to read back (/contact-us/): 204, as the
        assert created.status_code == 204, created.text          # reference answers
        return
    assert created.status_code == 201, created.text
    location = created.headers["Location"]

    if "GET" in spec.verbs:
        body = admin.get(location).json()
        assert body["uri"] == location
        for name, value in payload.items():
            if spec.fields[name].type not in ("datetime",) and name not in WRITE_ONLY:
                assert body[name] == value, name

    searchable = filterable_field(spec, payload)
    if "LIST" in spec.verbs and searchable and not spec.required_filters:
        name, value = searchable
        value = str(value).lower() if isinstance(value, bool) else value
        listed = admin.get(f"{spec.path}?filter[{name}]={value}").json()
        assert location in [r["uri"] for r in listed["resources"]]

    csrf = {"X-CSRF-Token": admin.get("/csrf-token/").json()["token"]}
    if "PUT" in spec.verbs:
        assert admin.put(location, json={}, headers=csrf).status_code == 204
    if "DELETE" in spec.verbs:
        assert admin.delete(location, headers=csrf).status_code == 204
        if "GET" in spec.verbs:
            assert admin.get(location).status_code == 404


@pytest.mark.parametrize("spec, field", ENUM_CASES, ids=lambda x: getattr(x, "name", ""))
def test_enum_fields_reject_undocumented_values(admin, factory, spec, field):
    payload = dict(factory.minimal(spec), **{field.name: "not-a-documented-choice"})  # (may make what it names)
    before = admin.get(spec.path + required_filter_query(spec, factory)).json()["total_count"] \
        if "LIST" in spec.verbs else None
    response = admin.post(spec.path, json=payload)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == field.name
    if before is not None:  # and nothing was stored
        assert admin.get(spec.path + required_filter_query(spec, factory)).json()["total_count"] == before


SPECIAL = [s for s in catalogue.catalogue().values() if s.special and s.name not in ("about", "sessions", "csrf-token")]


@pytest.mark.parametrize("spec", SPECIAL, ids=lambda s: s.name)
def test_parameterised_endpoints_answer_with_a_documented_4xx(admin, spec):
    """With nothing configured or stored behind them, these answer the caller's error, never 404 for the path
    itself being unknown, never 5xx."""
    for path in (spec.path, spec.item_path):
        if not path:
            continue
        response = admin.get(re.sub(r"\{\w+\}", str(uuid.uuid4()), path))
        assert 400 <= response.status_code < 500, response.text
        error = response.json()["errors"][0]
        assert not error["title"].startswith("There is no resource at"), error


def test_csrf_token_is_stable_per_session_and_needs_one(admin, system):
    first, second = admin.get("/csrf-token/").json()["token"], admin.get("/csrf-token/").json()["token"]
    assert first == second and len(first) == 64
    assert ApiSession(system.base_url).get("/csrf-token/").status_code == 403
