"""Access rules a client cannot get around: API tokens belong to their user, archiving a user or changing a password
ends their credentials, a cookie session refuses unsafe requests from other origins, and every reference in a
payload (URIs, URIs inside objects, uuids named by a table) must be the caller's bureau's."""
import base64
import uuid

import pytest

from shared import catalogue
from tests.kit.payloads import PayloadFactory
from tests.kit.plugin import ApiSession, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e

PARTNER = "https://app.partner.test"  # an origin the deployment allows (STRATUM_CORS_ORIGINS)


@pytest.fixture(scope="module")
def config_overrides():
    return {"STRATUM_CORS_ORIGINS": f"https://other.partner.test, {PARTNER}/"}


@pytest.fixture(scope="module")
def alpha(admin):
    return make_tenant(admin, login, "alpha")


@pytest.fixture(scope="module")
def beta(admin):
    return make_tenant(admin, login, "beta")


def basic(token):
    credentials = f"{token['uuid']}:{token['secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


def new_user(system, admin, bureau, password="pw-1"):
    """A user of `bureau` (its URI) and its username."""
    username = f"u{uuid.uuid4().hex[:8]}@example.com"
    created = admin.post("/users/", json={"username": username, "bureau": bureau, "password": password})
    assert created.status_code == 201, created.text
    return created.headers["Location"], username


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


# -- D6: archiving a user or changing a password ends their sessions and tokens -----------------------------------

def test_archiving_a_user_ends_their_sessions_and_tokens(system, admin, alpha):
    user, username = new_user(system, admin, alpha.bureau)
    first, second = login(system.base_url, username, "pw-1"), login(system.base_url, username, "pw-1")
    bearer = {"Authorization": "Bearer " + second.cookies["session"]}
    token = first.post("/api_tokens/", json={"name": "cron"}).json()
    client = ApiSession(system.base_url)
    assert client.get("/order/", headers=basic(token)).status_code == 200
    assert client.get("/order/", headers=bearer).status_code == 200

    assert admin.put(user, json={"archived": True}).status_code == 204
    for response in (first.get("/order/"), second.get("/sessions/"), client.get("/order/", headers=bearer),
                     client.get("/order/", headers=basic(token))):
        assert response.status_code == 401 and title(response) == "The credentials are not valid; please log in again."
    assert alpha.manager.get("/order/").status_code == 200  # other users' sessions go on


def test_a_password_change_ends_every_session_and_token_of_the_user(system, admin, alpha):
    user, username = new_user(system, admin, alpha.bureau, password="old")
    session = login(system.base_url, username, "old")
    token = session.post("/api_tokens/", json={"name": "cron"}).json()
    client = ApiSession(system.base_url)

    assert admin.put(user, json={"password": "new"}).status_code == 204
    assert session.get("/order/").status_code == 401
    assert client.get("/order/", headers=basic(token)).status_code == 401
    fresh = login(system.base_url, username, "new")  # sessions begun after the change work
    assert fresh.get("/order/").status_code == 200
    assert admin.get("/sessions/").status_code == 200  # the administrator's own session is not the user's

    # no document or audit row holds the password or its hash
    body = admin.get(user).json()
    assert "password_hash" not in body and body.get("password") is None
    rows = admin.get(f"/event/?filter[reference]={user}&page[limit]=100").json()["resources"]
    assert rows and not any(r["key"] in ("password", "password_hash") for r in rows)
    assert not any("argon2" in str(r["current_value"]) + str(r["previous_value"]) for r in rows)


def test_changing_ones_own_password_ends_the_session_that_changed_it(system, admin, alpha):
    """Documented choice: every credential of the user ends, the one making the change included."""
    user, username = new_user(system, admin, alpha.bureau, password="mine")
    csrf = admin.get("/csrf-token/").json()["token"]
    assert admin.post("/role/", json={"bureau": alpha.bureau, "user": user, "role": "manager",
                                      "csrf_token": csrf}).status_code == 201
    session = login(system.base_url, username, "mine")
    assert session.put(user, json={"password": "mine too"}).status_code == 204
    assert session.get("/order/").status_code == 401
    assert login(system.base_url, username, "mine too").get("/order/").status_code == 200


# -- D7: cookie sessions refuse unsafe requests from other origins ----------------------------------------------

def test_cookie_sessions_refuse_writes_from_another_origin(system, alpha):
    def create_user(session, headers):
        return session.post("/users/", json={"username": f"x{uuid.uuid4().hex[:8]}"}, headers=headers)

    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page.html"},
                    {"Origin": system.base_url.replace("127.0.0.1", "localhost")}):
        refused = create_user(alpha.manager, headers)
        assert refused.status_code == 403, (headers, refused.text)
        assert "cross-origin" in title(refused) and "session cookie" in title(refused)
    evil = {"Origin": "https://evil.example"}
    assert alpha.manager.put(alpha.bureau, json={"description": "defaced"}, headers=evil).status_code == 403
    assert alpha.manager.get(alpha.bureau).json()["description"] != "defaced"
    before = alpha.manager.get("/users/").json()["total_count"]
    assert alpha.manager.delete("/sessions/", headers=evil).status_code == 403  # no logout from elsewhere either
    assert alpha.manager.get("/users/").json()["total_count"] == before  # nothing was made, still logged in

    # the gateway's own pages, the allowed origins, and clients that send no Origin are fine
    for headers in ({"Origin": system.base_url}, {"Referer": system.base_url + "/docs"}, {"Origin": PARTNER},
                    {}):
        accepted = create_user(alpha.manager, headers)
        assert accepted.status_code == 201, (headers, accepted.text)
    assert alpha.manager.get("/order/", headers=evil).status_code == 200  # reads are not affected

    # a Bearer key or an API token is never sent by a browser on its own: not affected
    bearer = {"Authorization": "Bearer " + alpha.manager.cookies["session"], **evil}
    assert create_user(ApiSession(system.base_url), bearer).status_code == 201


def test_role_changes_still_need_the_csrf_token(alpha):
    payload = {"bureau": alpha.bureau, "user": alpha.standard_user, "role": "manager"}
    refused = alpha.manager.post("/role/", json=payload, headers={"Origin": alpha.manager.base_url})
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "csrf_token"


# -- D8 and the rest: every reference in a payload is to the caller's bureau ----------------------------------

@pytest.fixture(scope="module")
def theirs(system, beta):
    """Resources of bureau beta that alpha must not be able to name."""
    factory = PayloadFactory(beta.manager, beta.bureau, beta.manager_user)
    order = beta.manager.post("/order/", json={"name": "beta's"}).headers["Location"]
    return {"order": order, "material": factory.create(catalogue.resource("material"))}


def uuid_of(location):
    return location.rstrip("/").rsplit("/", 1)[1]


def count(admin, path):
    return admin.get(path).json()["total_count"]


def test_a_comment_on_another_bureaus_order_is_refused(admin, alpha, theirs):
    order = uuid_of(theirs["order"])
    response = alpha.manager.post("/comment/", json={"related_table_name": "order", "related_uuid": order,
                                                     "text": "hello from alpha"})
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["field"] == "related_uuid" and error["title"] == f"'related_uuid' names no order of yours: {order}"
    assert count(admin, f"/comment/?filter[related_uuid]={order}") == 0  # nothing stored
    unknown = str(uuid.uuid4())
    response = alpha.manager.post("/comment/", json={"related_table_name": "line_item", "related_uuid": unknown,
                                                     "text": "hello"})
    assert response.status_code == 400 and title(response) == f"'related_uuid' names no line_item of yours: {unknown}"

    mine = alpha.manager.post("/order/", json={"name": "alpha's"}).headers["Location"]
    ok = alpha.manager.post("/comment/", json={"related_table_name": "order", "related_uuid": uuid_of(mine),
                                               "text": "fine"})
    assert ok.status_code == 201, ok.text


def test_uris_inside_objects_and_without_a_kind_are_checked(admin, alpha, beta, theirs):
    mine = alpha.manager.post("/order/", json={"name": "alpha's"}).headers["Location"]
    action = alpha.manager.post("/comment/", json={"related_table_name": "order", "related_uuid": uuid_of(mine),
                                                   "text": "for beta?", "comment_action": {
                                                       "assignee_user": beta.standard_user}})
    assert action.status_code == 400, action.text
    assert action.json()["errors"][0] == {
        "code": "invalid-payload", "field": "comment_action",
        "title": f"'comment_action.assignee_user' does not point at an existing users: "
                 f"{beta.standard_user.replace(admin.base_url, '')}"}

    product = alpha.manager.post("/product/", json={"order": mine, "no_model_upload": True}).headers["Location"]
    item = alpha.manager.post("/line-item/", json={"product": product, "quantity": 1,
                                                   "materials": {"base": theirs["material"]}})
    assert item.status_code == 400 and item.json()["errors"][0]["field"] == "materials", item.text
    assert count(admin, f"/line-item/?filter[product]={product}") == 0

    label = alpha.manager.post("/label/", json={"name": "urgent"}).headers["Location"]
    tagged = alpha.manager.post("/label-relationship/", json={"label": label, "target_uri": theirs["order"]})
    assert tagged.status_code == 400 and tagged.json()["errors"][0]["field"] == "target_uri", tagged.text
    assert title(tagged).startswith("'target_uri' does not point at an existing order: ")
    library = alpha.manager.post("/model-library/", json={"name": "bracket", "type": "product",
                                                          "owner": beta.manager_user})
    assert library.status_code == 400 and library.json()["errors"][0]["field"] == "owner", library.text
    assert alpha.manager.post("/label-relationship/", json={"label": label, "target_uri": mine}).status_code == 201


def test_a_user_uuid_and_a_permission_holder_must_be_the_callers(admin, alpha, beta):
    theirs = uuid_of(beta.standard_user)
    expert = alpha.manager.put(alpha.standard_user, json={"conversion_expert_uuid": theirs})
    assert expert.status_code == 400, expert.text
    assert expert.json()["errors"][0] == {"code": "invalid-payload", "field": "conversion_expert_uuid",
                                          "title": f"'conversion_expert_uuid' names no users of yours: {theirs}"}
    assert alpha.manager.get(alpha.standard_user).json().get("conversion_expert_uuid") != theirs
    ours = alpha.manager.put(alpha.standard_user, json={"conversion_expert_uuid": uuid_of(alpha.manager_user)})
    assert ours.status_code == 204, ours.text

    holder = alpha.manager.post("/permissions/", json={"namespace": "run", "object": "*", "right": "read",
                                                      "holder": beta.standard_user})
    assert holder.status_code == 400 and holder.json()["errors"][0]["field"] == "holder", holder.text
    anyone = alpha.manager.post("/permissions/", json={"namespace": "run", "object": "*", "right": "read",
                                                      "holder": "*"})
    assert anyone.status_code == 201, anyone.text
