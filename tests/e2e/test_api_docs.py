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
