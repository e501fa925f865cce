"""Generated from the catalogue: every documented resource answers through the gateway as documented.

For each resource: LIST answers 200 with `resources` (or the documented 400 for a missing required filter); where
the verbs exist, a minimal valid payload is created, read back, found by a filter, updated and deleted; every enum
field rejects a value outside its documented choices with a 400 naming it."""
import pytest

from shared import catalogue
from shared.testing.payloads import PayloadFactory, Unreachable, filterable_field

pytestmark = pytest.mark.e2e

RESOURCES = [spec for spec in catalogue.catalogue().values() if not spec.special]
ENUM_CASES = [(spec, field) for spec in RESOURCES if "POST" in spec.verbs
              for field in spec.writable_fields().values() if field.choices]


@pytest.fixture(scope="module")
def factory(admin):
    session = admin.get("/sessions/").json()
    return PayloadFactory(admin, session["bureau"], session["user"])


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


@pytest.mark.parametrize("spec", [s for s in RESOURCES if "POST" in s.verbs], ids=lambda s: s.name)
def test_round_trip(admin, factory, spec):
    try:
        payload = factory.minimal(spec)
    except Unreachable as reason:
        pytest.fail(str(reason))
    created = admin.post(spec.path, json=payload)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]

    if "GET" in spec.verbs:
        body = admin.get(location).json()
        assert body["uri"] == location
        for name, value in payload.items():
            if spec.fields[name].type not in ("datetime",):
                assert body[name] == value, name

    searchable = filterable_field(spec, payload)
    if "LIST" in spec.verbs and searchable and not spec.required_filters:
        name, value = searchable
        value = str(value).lower() if isinstance(value, bool) else value
        listed = admin.get(f"{spec.path}?filter[{name}]={value}").json()
        assert location in [r["uri"] for r in listed["resources"]]

    if "PUT" in spec.verbs:
        assert admin.put(location, json={}).status_code == 204
    if "DELETE" in spec.verbs:
        assert admin.delete(location).status_code == 204
        if "GET" in spec.verbs:
            assert admin.get(location).status_code == 404


@pytest.mark.parametrize("spec, field", ENUM_CASES, ids=lambda x: getattr(x, "name", ""))
def test_enum_fields_reject_undocumented_values(admin, factory, spec, field):
    try:
        payload = dict(factory.minimal(spec), **{field.name: "not-a-documented-choice"})
    except Unreachable as reason:
        pytest.fail(str(reason))
    response = admin.post(spec.path, json=payload)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == field.name
