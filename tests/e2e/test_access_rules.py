"""Access rules a client cannot get around: API tokens belong to their user, archiving a user or changing a password
ends their credentials, a cookie session refuses unsafe requests from other origins, and every reference in a
payload (URIs, URIs inside objects, uuids named by a table) must be the caller's bureau's."""
import base64

import pytest

from tests.kit.plugin import ApiSession, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def alpha(admin):
    return make_tenant(admin, login, "alpha")


def basic(token):
    credentials = f"{token['uuid']}:{token['secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


def title(response):
    return response.json()["errors"][0]["title"]


# -- D5: an API token is its owner's -----------------------------------------------------------------------------

def test_api_tokens_are_seen_and_revoked_only_by_their_owner(system, admin, alpha):
    created = alpha.manager.post("/api_tokens/", json={"name": "manager's farm script"})
    assert created.status_code == 201, created.text
    managers, location = created.json(), created.headers["Location"]
    own = alpha.standard.post("/api_tokens/", json={"name": "standard's script"})
    assert own.status_code == 201, own.text
    standards, own_location = own.json(), own.headers["Location"]

    def listed(session):
        return {t["uuid"] for t in session.get("/api_tokens/").json()["resources"]}

    # another user of the same bureau (even its manager) neither sees nor revokes a token that is not theirs
    assert managers["uuid"] not in listed(alpha.standard) and standards["uuid"] in listed(alpha.standard)
    assert standards["uuid"] not in listed(alpha.manager) and managers["uuid"] in listed(alpha.manager)
    assert alpha.standard.get(location).status_code == 404
    assert alpha.manager.get(own_location).status_code == 404
    assert alpha.standard.get(f"/api_tokens/?filter[uuid]={managers['uuid']}").json()["total_count"] == 0
    refused = alpha.standard.delete(location)
    assert refused.status_code == 404 and title(refused) == "The requested api_tokens cannot be found."
    assert alpha.manager.delete(own_location).status_code == 404
    # …nor its trace in the audit log
    assert alpha.standard.get(f"/event/?filter[reference]={location}").json()["total_count"] == 0
    assert alpha.manager.get(f"/event/?filter[reference]={location}").json()["total_count"] > 0
    client = ApiSession(system.base_url)
    assert client.get("/order/", headers=basic(managers)).status_code == 200  # still working
    assert client.get("/order/", headers=basic(standards)).status_code == 200

    # the owner revokes their own; a platform administrator may revoke anyone's
    assert alpha.manager.delete(location).status_code == 204
    assert client.get("/order/", headers=basic(managers)).status_code == 401
    assert standards["uuid"] in listed(admin)
    assert admin.delete(own_location).status_code == 204
    assert client.get("/order/", headers=basic(standards)).status_code == 401
