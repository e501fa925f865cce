"""Generated from the catalogue: for every stored resource, a user of bureau A cannot read, list, change, delete or
reference bureau B's resource, and B's resource is unchanged afterwards."""
import uuid

import pytest

from gateway import computed
from gateway.references import REFERENCE_NOT_FOUND, RELATED_NOT_FOUND
from shared import catalogue, uris
from tests.kit.payloads import PayloadFactory, Unreachable
from tests.kit.plugin import eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e

# Stored resources (a batch's genealogy is computed on request from its batch, gateway.computed: its tenancy is
# tested with the batch's in tests/e2e/test_materials_http.py)
STORED = [s for s in catalogue.catalogue().values()
          if not s.special and s.service != "gateway" and ("GET" in s.verbs or "LIST" in s.verbs)
          and s.name not in computed.READS]


def referrers(name):
    """Resources A could create that hold a URI field pointing at `name`."""
    return [(spec, field) for spec in catalogue.catalogue().values()
            if "POST" in spec.verbs and not spec.special and spec.name not in ("bureau",)
            for field in spec.writable_fields().values() if field.ref == name]


def factory_for(system, session, tenant_user, bureau):
    ctx = {"user": uris.normalise(tenant_user), "bureau": uris.normalise(bureau)}

    def create_internally(spec, payload):
        with system.rpc() as rpc:
            result = getattr(rpc, spec.service).create(spec.name, payload, dict(ctx, command_id=str(uuid.uuid4())))
        location = session.base_url + result["uri"]
        if "GET" in spec.verbs:
            eventually(lambda: session.get(location).status_code == 200)
        return location

    return PayloadFactory(session, bureau, tenant_user, create_internally)


@pytest.fixture(scope="module")
def tenants(system, admin):
    alpha, beta = make_tenant(admin, login, "alpha"), make_tenant(admin, login, "beta")
    return (alpha, factory_for(system, alpha.manager, alpha.manager_user, alpha.bureau),
            beta, factory_for(system, beta.manager, beta.manager_user, beta.bureau))


def listed(session, spec, factory):
    query = []
    for name in spec.required_filters:
        field = spec.fields[name]
        query.append(f"filter[{name}]={factory.value_for(field, spec.name)}")
    response = session.get(spec.path + ("?" + "&".join(query) if query else ""))
    assert response.status_code == 200, response.text
    return [r.get("uri") for r in response.json()["resources"]]


@pytest.mark.parametrize("spec", STORED, ids=lambda s: s.name)
def test_another_bureaus_resource_is_invisible_and_untouchable(tenants, spec):
    alpha, alpha_factory, beta, beta_factory = tenants
    try:
        theirs = beta.bureau if spec.name == "bureau" else beta_factory.create(spec)
    except Unreachable as reason:
        pytest.fail(str(reason))
    before = beta.manager.get(theirs).json() if "GET" in spec.verbs else None
    csrf = {"X-CSRF-Token": alpha.manager.get("/csrf-token/").json()["token"]}

    for intruder in (alpha.manager, alpha.standard):
        if "GET" in spec.verbs:
            assert intruder.get(theirs).status_code == 404
        if "LIST" in spec.verbs:
            assert theirs not in listed(intruder, spec, alpha_factory)
    if "PUT" in spec.verbs:
        assert alpha.manager.put(theirs, json={}, headers=csrf).status_code == 404
    if "DELETE" in spec.verbs:
        assert alpha.manager.delete(theirs, headers=csrf).status_code == 404
    for referrer, field in referrers(spec.name)[:1]:
        try:
            payload = alpha_factory.minimal(referrer)
        except Unreachable as reason:
            pytest.fail(str(reason))
        payload[field.name] = [theirs] if field.type == "array" else theirs
        response = alpha.manager.post(referrer.path, json=payload)
        if (referrer.name, field.name) in REFERENCE_NOT_FOUND | RELATED_NOT_FOUND:  # the map's own 404 for these
            assert response.status_code == 404, response.text
        else:
            assert response.status_code == 400, response.text
            assert response.json()["errors"][0]["field"] == field.name

    if before is not None:
        after = beta.manager.get(theirs).json()
        if _without_link_expiry(after) != _without_link_expiry(before):
            # a background job may have moved it on meanwhile (a layout packs, a capture parses): then nothing that
            # changed it may be the intruders' doing
            path = uris.normalise(theirs)
            events = beta.manager.get(f"/event/?filter[reference]={path}").json()["resources"]
            intruders = {uris.normalise(alpha.manager_user), uris.normalise(alpha.standard_user)}
            assert not [e for e in events if e.get("user") and uris.normalise(e["user"]) in intruders], events
            assert after.get("bureau") == before.get("bureau")


def _without_link_expiry(body):
    """Signed links are minted per read (files.md §0.2); their target, not their expiry, is the resource's data."""
    return {k: v.split("?", 1)[0] if isinstance(v, str) and "signature=" in v else v for k, v in body.items()}
