"""What the schema fuzz (test_schema_fuzz) found, each pinned by a focused test: answers that never left the server
or were 500s, and answers that did not match the OpenAPI document."""
import uuid
from urllib.parse import quote

import pytest
import requests

from tests.kit.meshes import box_stl
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e


def test_ignored_field_names_a_header_cannot_carry_are_percent_encoded(admin):
    # a line break in a header value made the answer a 500; a name beyond Latin-1 left the connection without one
    response = admin.post("/manufacturer/", json={"name": "Acme", "a\nb": 1, "零件": 2, "x,y": 3, "plain": 4})
    assert response.status_code == 201, response.text
    assert response.headers["Stratum-Ignored-Fields"] == "a%0Ab, %E9%9B%B6%E4%BB%B6, x%2Cy, plain"
    updated = admin.put(response.headers["Location"], json={"name": "Acme 2", "\r\n": True})
    assert updated.status_code == 204 and updated.headers["Stratum-Ignored-Fields"] == "%0D%0A"


def test_thousands_of_ignored_fields_are_named_up_to_a_bound(admin):
    body = {"name": "Many", **{f"unknown_{n}": n for n in range(2000)}}
    response = admin.post("/manufacturer/", json=body)
    assert response.status_code == 201, response.text
    named = response.headers["Stratum-Ignored-Fields"].split(", ")
    assert named[:2] == ["unknown_0", "unknown_1"] and named[-1] == "..." and len(named) == 51


def test_a_path_no_route_matches_is_a_json_404(system):
    response = requests.get(system.base_url + "/quote/%0Aabc/", timeout=30)  # no route matches a line break
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/json", response.text
    assert response.json()["errors"][0]["code"] == "not-found"
    response = requests.request("PROPFIND", system.base_url + "/order/", timeout=30)  # no handler takes the method
    assert response.status_code == 405 and response.headers["Content-Type"] == "application/json", response.text
    assert response.json()["errors"][0]["code"] == "method-not-allowed" and "GET" in response.headers["Allow"]


def test_a_csrf_token_with_non_ascii_characters_is_refused_not_a_500(admin):
    me = admin.get("/sessions/").json()
    response = admin.post("/role/", json={"bureau": me["bureau"], "user": me["user"], "role": "manager",
                                          "csrf_token": "jeton-été"})
    assert response.status_code == 403 and response.json()["errors"][0]["field"] == "csrf_token", response.text
    header = admin.post("/role/", json={"bureau": me["bureau"], "user": me["user"], "role": "manager"},
                        headers={"X-CSRF-Token": "jeton-\xe9t\xe9"})
    assert header.status_code == 403, header.text


def test_a_file_named_beyond_latin_1_can_be_downloaded(admin, tmp_path):
    # its name went into Content-Disposition as it was: the download closed without an answer
    name = '零件 "draft".stl'
    created = admin.post("/model/", json={"name": name, "type": "stl", "file_unit": "mm"})
    assert created.status_code == 201, created.text
    box_stl(tmp_path / "box.stl")
    uploaded = requests.put(created.headers["X-Upload-Location"], data=(tmp_path / "box.stl").read_bytes(),
                            headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert uploaded.status_code == 204
    model = eventually(lambda: (body := admin.get(created.headers["Location"]).json())["status"] == "processed"
                       and body, timeout=60)
    download = requests.get(model["content"], timeout=30)
    assert download.status_code == 200 and download.content == (tmp_path / "box.stl").read_bytes()
    disposition = download.headers["Content-Disposition"]
    assert disposition == "attachment; filename=\"__ draft.stl\"; filename*=UTF-8''" + quote("零件 draft.stl", safe="")


def test_write_only_fields_are_taken_and_never_shown(admin):
    # a role's csrf_token was shown as null, which the document (a required string) said it could not be
    username = f"writeonly-{uuid.uuid4().hex[:6]}@example.com"
    user = admin.post("/users/", json={"username": username, "password": "s3cret", "bureau": admin.get(
        "/sessions/").json()["bureau"]})
    assert user.status_code == 201, user.text
    assert "password" not in admin.get(user.headers["Location"]).json()
    roles = admin.get("/role/").json()["resources"]
    assert roles and all("csrf_token" not in role for role in roles)
    document = admin.get("/openapi.json").json()["components"]["schemas"]
    assert document["Role"]["properties"]["csrf_token"]["writeOnly"] is True
