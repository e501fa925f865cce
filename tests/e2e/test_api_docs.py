"""The API describes itself: /openapi.json is valid OpenAPI 3.1 and covers the catalogue; /docs is readable."""
import pytest
import requests
from openapi_spec_validator import validate as validate_openapi

from shared import catalogue

pytestmark = pytest.mark.e2e


def test_openapi_document_is_valid_and_complete(system):
    document = requests.get(system.base_url + "/openapi.json", timeout=30).json()
    assert document["openapi"] == "3.1.0"
    validate_openapi(document)  # raises on any violation of the OpenAPI 3.1 schema
    for spec in catalogue.catalogue().values():
        if not spec.special and spec.verbs:
            assert spec.path in document["paths"] or spec.item_path in document["paths"], spec.name
    # the upload protocol (files.md §0.2): where the bytes go, and how they come back
    created = document["paths"]["/model/"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "X-Upload-Location"} <= set(created)
    assert "Model-Location" in document["paths"]["/design-file/"]["post"]["responses"]["201"]["headers"]
    assert "put" in document["paths"]["/upload/{resource}/{uuid}/"]
    assert "get" in document["paths"]["/content/{uuid}/"]


def test_docs_page_lists_every_resource(system):
    response = requests.get(system.base_url + "/docs", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    for spec in catalogue.catalogue().values():
        if not spec.special:
            assert f"id='{spec.name}'" in response.text


def test_openapi_document_describes_every_answer(system):
    document = requests.get(system.base_url + "/openapi.json", timeout=30).json()
    paths, components = document["paths"], document["components"]
    created = paths["/order/"]["post"]["responses"]
    assert {"201", "400", "401", "403", "404", "409", "413", "422", "503"} <= set(created)
    assert {"Location", "Stratum-Ignored-Fields"} <= set(created["201"]["headers"])
    assert "Retry-After" in components["responses"]["Error503"]["headers"]
    listing = paths["/order/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing["required"] == ["resources", "total_count"]
    assert components["schemas"]["Error"]["properties"]["errors"]["items"]["required"] == ["code", "title"]
    assert "501" in paths["/order/{uuid}/clone/"]["post"]["responses"]  # an action may not be built yet
    assert "image/png" in paths["/model/{uuid}/snapshot/binary/"]["get"]["responses"]["200"]["content"]
    assert "secret" in created_body(paths["/api_tokens/"]["post"])["required"]  # shown once, at creation
    # what the gateway answers itself: the deployment, the session, the CSRF token
    assert paths["/about/"]["get"]["security"] == [] and paths["/sessions/"]["post"]["security"] == []
    assert "429" in paths["/sessions/"]["post"]["responses"] and "get" in paths["/csrf-token/"]


def created_body(operation):
    return operation["responses"]["201"]["content"]["application/json"]["schema"]
