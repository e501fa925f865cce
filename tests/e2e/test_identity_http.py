"""Identity over HTTP: bureaus and users made by the platform administrator, roles, sessions, API tokens,
lock-out and rate limits."""
import base64
import uuid

import pytest
import requests

from tests.kit.plugin import ApiSession, eventually, login
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tenant(admin):
    return make_tenant(admin, login, "acme")


def basic(token_uuid, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{token_uuid}:{secret}".encode()).decode()}


def test_new_users_log_in_and_see_only_their_bureau(tenant):
    me = tenant.manager.get("/sessions/").json()
    assert me["bureau"] == tenant.bureau and me["user"] == tenant.manager_user
    bureaus = tenant.manager.get("/bureau/").json()
    assert [b["uri"] for b in bureaus["resources"]] == [tenant.bureau]
    user = tenant.manager.get(tenant.manager_user).json()
    assert "password" not in user or user["password"] is None
    assert "password_hash" not in user


def test_login_by_email_and_wrong_password(system, tenant):
    username = tenant.manager.get("/sessions/").json()["username"]
    response = requests.post(system.base_url + "/sessions/", json={"username": username, "password": "nope"},
                             timeout=10)
    assert response.status_code == 401 and "session" not in response.cookies


def test_only_a_platform_administrator_creates_bureaus(tenant):
    response = tenant.manager.post("/bureau/", json={"name": f"rogue {uuid.uuid4().hex[:6]}"})
    assert response.status_code == 403 and "platform administrator" in response.json()["errors"][0]["title"]


def test_bureau_names_are_unique(admin, tenant):
    name = tenant.manager.get(tenant.bureau).json()["name"]
    response = admin.post("/bureau/", json={"name": name.upper()})
    assert response.status_code == 400
    assert response.json()["errors"][0]["title"] == "The requested bureau name already exists."


def test_usernames_are_unique(admin, tenant):
    username = tenant.manager.get("/sessions/").json()["username"]
    response = admin.post("/users/", json={"username": username, "bureau": tenant.bureau, "password": "x"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "username"


def test_roles_need_a_manager_and_a_csrf_token(tenant):
    payload = {"bureau": tenant.bureau, "user": tenant.standard_user, "role": "manager"}
    csrf = tenant.standard.get("/csrf-token/").json()["token"]
    refused = tenant.standard.post("/role/", json=dict(payload, csrf_token=csrf))
    assert refused.status_code == 403
    no_token = tenant.manager.post("/role/", json=dict(payload, csrf_token="forged"))
    assert no_token.status_code == 403 and no_token.json()["errors"][0]["field"] == "csrf_token"
    other_sessions_token = tenant.manager.post("/role/", json=dict(payload, csrf_token=csrf))
    assert other_sessions_token.status_code == 403
    before = tenant.manager.get(f"/role/?filter[user]={tenant.standard_user}").json()["total_count"]
    assert tenant.manager.get(f"/role/?filter[user]={tenant.standard_user}").json()["total_count"] == before
    own = tenant.manager.get("/csrf-token/").json()["token"]
    granted = tenant.manager.post("/role/", json=dict(payload, role="restricted", csrf_token=own))
    assert granted.status_code == 201, granted.text
    assert tenant.manager.get(granted.headers["Location"]).json()["role"] == "restricted"


def test_standard_users_cannot_administer_the_bureau(tenant):
    assert tenant.standard.post("/users/", json={"username": f"x{uuid.uuid4().hex[:6]}"}).status_code == 403
    assert tenant.standard.put(tenant.bureau, json={"description": "mine now"}).status_code == 403
    assert tenant.standard.post("/order/", json={"name": "but orders are fine"}).status_code == 201


def test_access_info_answers_from_the_role_rules(tenant):
    def actions(session, target):
        body = session.get(f"/access-info-for-resource/?filter[target_uri]={target}").json()
        return set(body["resources"][0]["actions"])

    assert actions(tenant.manager, tenant.bureau) == {"read", "update"}
    assert actions(tenant.standard, tenant.bureau) == {"read"}
    order = tenant.standard.post("/order/", json={"name": "mine"}).headers["Location"]
    assert actions(tenant.standard, order) == {"read", "update", "delete"}
    assert tenant.standard.get("/access-info-for-resource/").status_code == 400


def test_api_tokens_authenticate_as_basic_and_stop_at_once_when_revoked(system, tenant):
    created = tenant.manager.post("/api_tokens/", json={"name": "printer farm script"})
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["secret"] and token["uuid"]
    listed = tenant.manager.get("/api_tokens/").json()["resources"]
    assert [t["name"] for t in listed if t["uuid"] == token["uuid"]] == ["printer farm script"]
    assert all("secret" not in t or t["secret"] is None for t in listed)  # shown once, never again

    client = ApiSession(system.base_url)
    assert client.get("/order/", headers=basic(token["uuid"], token["secret"])).status_code == 200
    assert client.get("/order/", headers=basic(token["uuid"], "wrong")).status_code == 401
    made = client.post("/order/", json={"name": "by token"}, headers=basic(token["uuid"], token["secret"]))
    assert made.status_code == 201
    assert tenant.manager.get(made.headers["Location"]).json()["user"] == tenant.manager_user

    assert tenant.manager.delete(created.headers["Location"]).status_code == 204
    assert client.get("/order/", headers=basic(token["uuid"], token["secret"])).status_code == 401


def test_logout_ends_the_session(system, admin, tenant):
    username = f"leaver-{uuid.uuid4().hex[:6]}@example.com"
    assert admin.post("/users/", json={"username": username, "bureau": tenant.bureau,
                                       "password": "bye"}).status_code == 201
    session = login(system.base_url, username, "bye")
    key = session.cookies["session"]
    assert session.delete("/sessions/").status_code == 204
    assert session.get("/order/").status_code == 401
    replay = ApiSession(system.base_url)
    assert replay.get("/order/", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_repeated_failures_lock_the_account(system, admin, tenant):
    username = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    assert admin.post("/users/", json={"username": username, "bureau": tenant.bureau,
                                       "password": "right"}).status_code == 201
    client = ApiSession(system.base_url)
    for _ in range(5):
        assert client.post("/sessions/", json={"username": username, "password": "wrong"}).status_code == 401
    locked = client.post("/sessions/", json={"username": username, "password": "right"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    eventually(lambda: admin.get(f"/users/?filter[username]={username}").json()["resources"][0]["blocked_until"])


def test_restricted_users_cannot_delete_a_confirmed_order(admin, tenant):
    csrf = tenant.manager.get("/csrf-token/").json()["token"]
    for role in tenant.manager.get(f"/role/?filter[user]={tenant.standard_user}").json()["resources"]:
        assert tenant.manager.put(role["uri"], json={"role": "restricted", "csrf_token": csrf}).status_code == 204
    order = tenant.standard.post("/order/", json={"name": "to confirm"}).headers["Location"]
    product = tenant.standard.post("/product/", json={"order": order, "no_model_upload": True}).headers["Location"]
    item = tenant.standard.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"]
    for status in ("calculating_estimates", "pending", "confirmed"):
        assert tenant.manager.put(item, json={"status": status}).status_code == 204
    assert tenant.standard.get(order).json()["status"] == "confirmed"
    refused = tenant.standard.delete(order)
    assert refused.status_code == 400 and "already confirmed" in refused.json()["errors"][0]["title"]
    assert tenant.standard.get(order).status_code == 200
    assert tenant.manager.delete(order).status_code == 204


def test_login_with_username_or_email_and_archived_users_cannot(system, admin, tenant):
    tag = uuid.uuid4().hex[:6]
    created = admin.post("/users/", json={"username": f"op{tag}", "email": f"op{tag}@acme.test",
                                          "bureau": tenant.bureau, "password": "s3cret"})
    assert created.status_code == 201
    assert login(system.base_url, f"op{tag}", "s3cret").get("/sessions/").json()["username"] == f"op{tag}"
    assert login(system.base_url, f"OP{tag}@acme.test", "s3cret").get("/order/").status_code == 200
    assert admin.put(created.headers["Location"], json={"archived": True}).status_code == 204
    refused = requests.post(system.base_url + "/sessions/", timeout=10,
                            json={"username": f"op{tag}", "password": "s3cret"})
    assert refused.status_code == 401


def test_every_address_in_emails_logs_in_and_is_taken(system, admin, tenant):
    """The reference's `emails` (a list) are login names like `email`: each logs in, and none can be reused."""
    tag = uuid.uuid4().hex[:6]
    created = admin.post("/users/", json={"username": f"em{tag}", "emails": [f"em{tag}@acme.test", f"alt{tag}@acme.test"],
                                          "bureau": tenant.bureau, "password": "s3cret"})
    assert created.status_code == 201
    for address in (f"em{tag}@acme.test", f"ALT{tag}@acme.test"):
        assert login(system.base_url, address, "s3cret").get("/sessions/").json()["username"] == f"em{tag}"
    taken = admin.post("/users/", json={"username": f"other{tag}", "emails": [f"alt{tag}@acme.test"],
                                        "bureau": tenant.bureau, "password": "x"})
    assert taken.status_code == 400 and f"alt{tag}@acme.test" in taken.json()["errors"][0]["title"]


def test_password_change_takes_effect(system, admin, tenant):
    name = f"pw{uuid.uuid4().hex[:6]}"
    user = admin.post("/users/", json={"username": name, "bureau": tenant.bureau, "password": "old"})
    assert admin.put(user.headers["Location"], json={"password": "new"}).status_code == 204
    assert requests.post(system.base_url + "/sessions/", timeout=10,
                         json={"username": name, "password": "old"}).status_code == 401
    login(system.base_url, name, "new")


def test_sessions_end_after_inactivity(system, admin, tenant, config):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from gateway.readstore import ReadStore, read_store_url
    from gateway.tables import session_activity

    name = f"idle{uuid.uuid4().hex[:6]}"
    admin.post("/users/", json={"username": name, "bureau": tenant.bureau, "password": "pw"})
    session = login(system.base_url, name, "pw")
    assert session.get("/order/").status_code == 200  # first activity recorded
    store = ReadStore(read_store_url(config))
    try:
        session_uuid = session.cookies["session"].split(".")[0]
        long_ago = (datetime.now(timezone.utc) - timedelta(minutes=481)).isoformat()
        with store.engine.begin() as conn:
            changed = conn.execute(update(session_activity).where(session_activity.c.uuid == session_uuid)
                                   .values(last_seen=long_ago))
            assert changed.rowcount == 1
    finally:
        store.dispose()
    response = session.get("/order/")
    assert response.status_code == 401 and "inactivity" in response.json()["errors"][0]["title"]
