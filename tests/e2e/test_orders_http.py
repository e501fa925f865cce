"""Orders through the HTTP gateway, on SQLite and on PostgreSQL, with every service running on the real broker."""
import uuid

import pytest

from tests.kit.plugin import ADMIN_EMAIL

pytestmark = pytest.mark.e2e


def unique(prefix="order"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_order(api, **fields):
    fields.setdefault("name", unique())
    response = api.post("/order/", json=fields)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def test_about_needs_no_login(system):
    import requests

    body = requests.get(system.base_url + "/about/", timeout=10).json()
    assert body["name"] == "Stratum" and body["version"] and body["deployment_date"]


def test_anonymous_calls_are_refused(system):
    import requests

    response = requests.get(system.base_url + "/order/", timeout=10)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "unauthorized"


def test_wrong_password_is_refused(system):
    import requests

    response = requests.post(system.base_url + "/sessions/", timeout=10,
                             json={"username": ADMIN_EMAIL, "password": "wrong"})
    assert response.status_code == 401
    assert "session" not in response.cookies


def test_session_and_bureau(admin):
    session = admin.get("/sessions/").json()
    assert session["username"] == ADMIN_EMAIL
    bureaus = admin.get("/bureau/").json()
    assert bureaus["total_count"] == 1
    assert bureaus["resources"][0]["uri"] == session["bureau"]


def test_order_lifecycle(admin):
    bureau = admin.get("/sessions/").json()["bureau"]
    name = unique()
    location = create_order(admin, name=name, shipping={"name": "Ada", "address": "1 Loop Rd"}, currency="USD")
    assert location.startswith(admin.base_url + "/order/")

    order = admin.get(location).json()  # read-your-writes: visible at once
    assert order["uri"] == location
    assert order["name"] == name and order["bureau"] == bureau
    assert order["status"] == "new" and order["priority"] == 65
    assert order["customer_id"] == location.rstrip("/").rsplit("/", 1)[1][:8]
    assert order["shipping"] == {"name": "Ada", "address": "1 Loop Rd"}

    assert admin.put(location, json={"priority": 90, "uri": "ignored read-only"}).status_code == 204
    changed = admin.get(location).json()
    assert changed["priority"] == 90 and changed["name"] == name  # partial update keeps the rest

    assert admin.delete(location).status_code == 204
    gone = admin.get(location)
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["title"] == "The requested order cannot be found."
    assert admin.put(location, json={"name": "x"}).status_code == 404
    assert admin.delete(location).status_code == 404


def test_list_filters_sort_and_pages(admin):
    tag = unique("batch")
    for priority in (10, 50, 90):
        create_order(admin, name=f"{tag}-{priority}", priority=priority, order_type="r-d")
    names = ",".join(f"{tag}-{p}" for p in (10, 50, 90))

    listed = admin.get(f"/order/?filter[name]={names}&sort=-priority").json()
    assert listed["total_count"] == 3
    assert [o["priority"] for o in listed["resources"]] == [90, 50, 10]

    ranged = admin.get(f"/order/?filter[name]={names}&filter[priority]>20").json()
    assert sorted(o["priority"] for o in ranged["resources"]) == [50, 90]

    page = admin.get(f"/order/?filter[name]={names}&sort=priority&page[limit]=2&page[offset]=1").json()
    assert page["total_count"] == 3
    assert [o["priority"] for o in page["resources"]] == [50, 90]

    assert admin.get("/order/?filter[nonsense]=1").status_code == 400
    assert admin.get("/order/?page[limit]=zero").status_code == 400


def test_a_list_pages_by_cursor_as_it_pages_by_offset(admin):
    tag = unique("keyset")
    for number in range(7):
        create_order(admin, name=f"{tag}-{number}", priority=number % 3 * 10)
    names = ",".join(f"{tag}-{n}" for n in range(7))
    for sort in ("-priority", "name", "-created"):
        url = f"/order/?filter[name]={names}&sort={sort}"
        whole = [o["name"] for o in admin.get(url).json()["resources"]]
        by_offset = [o["name"] for offset in range(0, 7, 3)
                     for o in admin.get(f"{url}&page[limit]=3&page[offset]={offset}").json()["resources"]]
        by_cursor, after = [], ""
        while True:
            body = admin.get(f"{url}&page[limit]=3{after}").json()
            assert body["total_count"] == 7 and body["meta"]["total_count_is_estimate"] is False
            by_cursor += [o["name"] for o in body["resources"]]
            if body["meta"]["next"] is None:
                break
            after = f"&page[after]={body['meta']['next']}"
        assert len(whole) == 7 and by_offset == whole and by_cursor == whole


@pytest.mark.parametrize("query, problem", [
    ("page[after]=not-a-cursor", "is not a cursor"),
    ("page[after]=", "must be the `meta.next`"),
    ("page[after]=eyJzIjoiMCIsImsiOltdfQ&page[offset]=3", "cannot be used together"),
    ("page[after]=eyJzIjoiMCIsImsiOltdfQ", "another list or sort"),
])
def test_a_bad_cursor_is_a_400_naming_it(admin, query, problem):
    response = admin.get(f"/order/?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["field"] == "page[after]" and problem in error["title"]


@pytest.mark.parametrize("payload, field", [
    ({"name": "x", "status": "bogus"}, "status"),
    ({"name": "x", "order_type": "industrial"}, "order_type"),
    ({"name": "x", "priority": "high"}, "priority"),
    ({"name": "x", "priority": 101}, "priority"),
    ({"name": "x", "due_date": "next week"}, "due_date"),
    ({"name": "x", "colour": "red"}, "colour"),
    ({"priority": 5}, "name"),
    ({"name": "x", "bureau": "http://elsewhere/bureau/00000000-0000-0000-0000-000000000000/"}, "bureau"),
])
def test_bad_input_is_400_naming_the_field_and_changes_nothing(admin, payload, field):
    """Strict handling (the tolerant reader would ignore the unknown `colour`, see test_tolerant_reader)."""
    before = admin.get("/order/").json()["total_count"]
    response = admin.post("/order/", json=payload, headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == field and error["title"]
    assert admin.get("/order/").json()["total_count"] == before


def test_bad_update_changes_nothing(admin):
    location = create_order(admin, priority=30)
    response = admin.put(location, json={"status": "melted"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "status"
    assert admin.get(location).json()["status"] == "new"
    assert admin.put(location, data="not json", headers={"Content-Type": "application/json"}).status_code == 400


def test_form_encoded_payloads(admin):
    name = unique()
    response = admin.post("/order/", data={"name": name, "priority": "12", "quote_required": "true"})
    assert response.status_code == 201, response.text
    order = admin.get(response.headers["Location"]).json()
    assert (order["name"], order["priority"], order["quote_required"]) == (name, 12, True)


def test_blocked_verbs_are_405_json(admin):
    response = admin.delete("/bureau/")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "method-not-allowed"
    assert admin.post("/event/", json={}).status_code == 405


def test_idempotency_key_makes_a_retried_post_harmless(admin):
    name = unique()
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = admin.post("/order/", json={"name": name}, headers=headers)
    second = admin.post("/order/", json={"name": name}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.headers["Location"] == second.headers["Location"]
    assert admin.get(f"/order/?filter[name]={name}").json()["total_count"] == 1


def test_event_log_shows_each_changed_field(admin):
    me = admin.get("/sessions/").json()["user"]
    location = create_order(admin, name="before", priority=40)
    assert admin.put(location, json={"name": "after", "priority": 40}).status_code == 204

    rows = admin.get(f"/event/?filter[reference]={location}&filter[key]=name").json()["resources"]
    assert [(r["previous_value"], r["current_value"]) for r in rows] == [(None, "before"), ("before", "after")]
    assert all(r["user"] == me and r["reference"] == location and r["created"] for r in rows)
    # priority did not change in the PUT: only its creation row exists
    priority_rows = admin.get(f"/event/?filter[reference]={location}&filter[key]=priority").json()
    assert priority_rows["total_count"] == 1
    one = admin.get(rows[1]["uri"])
    assert one.status_code == 200 and one.json()["current_value"] == "after"
    by_user = admin.get(f"/event/?filter[user]={me}&filter[reference]={location}").json()
    assert by_user["total_count"] >= 3
