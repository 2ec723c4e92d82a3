"""The Management API's OpenAPI document: generated from the code, valid,
listing every endpoint, and browsable with locally served assets."""

import pytest
import requests
from openapi_spec_validator import validate

from tests.management.test_isolation import ENDPOINTS

pytestmark = pytest.mark.django_db(transaction=True)


def test_document_validates_and_lists_every_endpoint(acme):
    response = requests.get(f"{acme.api_url}openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["servers"] == [{"url": f"{acme.tenant.issuer}api/v2"}]
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    for method, path, _scope, _body in ENDPOINTS:
        templated = "/" + path
        for name in ("hook", "rs", "client", "grant", "action", "version", "execution"):
            templated = templated.replace(f"{{{name}}}", f"{{{name}_id}}")
        templated = templated.replace("/credentials-exchange/", "/{trigger_id}/")
        assert (method, templated) in operations, (method, templated)
    assert "/openapi.json" not in document["paths"]
    # Bodies are documented with Auth0's field names.
    create = document["paths"]["/hooks"]["post"]["requestBody"]["content"]["application/json"]
    ref = create["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"name", "script", "triggerId"} <= set(
        document["components"]["schemas"][ref]["required"]
    )
    listed = document["paths"]["/hooks"]["get"]
    assert {"page", "per_page", "include_totals", "fields", "enabled", "triggerId"} <= {
        p["name"] for p in listed["parameters"]
    }


def test_docs_page_serves_its_assets_locally(acme):
    page = requests.get(f"{acme.api_url}docs", timeout=30)
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "unpkg" not in page.text.lower()
    assert "swagger-ui-bundle.js" in page.text
    bundle = (
        acme.tenant.issuer.split("/acme/")[0]
        + "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    )
    assert requests.get(bundle, timeout=30).status_code == 200
