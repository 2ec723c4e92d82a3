"""``/healthz``, ``/readyz`` and ``/metrics``: JSON, guarded, tenant-agnostic."""

import json

import pytest
from django.test import Client as HttpClient

from tests.factories import make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

REMOTE_IP = "203.0.113.9"


def test_healthz_is_open_and_json():
    response = HttpClient().get("/healthz", REMOTE_ADDR=REMOTE_IP)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_check_to_a_loopback_client():
    response = HttpClient().get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
    assert body["checks"]["config_age_seconds"] <= 1


@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_guarded_paths_refuse_a_remote_client_without_a_token(path):
    response = HttpClient().get(path, REMOTE_ADDR=REMOTE_IP)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_guarded_paths_need_the_bearer_token_when_one_is_set(path, settings):
    settings.TESSERA_METRICS_TOKEN = "s3cret-metrics-token"
    http = HttpClient()
    for authorization in (
        "",
        "Bearer wrong",
        "s3cret-metrics-token",
        "Bearer s3cret-metrics-tokenX",
    ):
        response = http.get(path, HTTP_AUTHORIZATION=authorization)
        assert response.status_code == 401, authorization
        assert response.json()["error"] == "unauthorized"
        assert response["WWW-Authenticate"].startswith("Bearer")
    response = http.get(
        path, HTTP_AUTHORIZATION="Bearer s3cret-metrics-token", REMOTE_ADDR=REMOTE_IP
    )
    assert response.status_code == 200


def test_metrics_count_token_outcomes_without_tenant_labels(settings):
    acme, other = make_tenant("acme"), make_tenant("other")
    api = make_api(acme, "https://api.acme.test/")
    client, secret = make_client(acme, {api: ["read:data"]}, name="billing-secret-name")
    make_api(other, "https://api.other.test/")
    http = HttpClient()
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": api.identifier,
    }

    def post(path, data):
        return http.post(path, json.dumps(data), content_type="application/json")

    assert post("/acme/oauth/token", body).status_code == 200
    assert post("/acme/oauth/token", {**body, "client_secret": "wrong"}).status_code == 401
    assert post("/other/oauth/token", body).status_code == 401
    text = http.get("/metrics").content.decode()
    assert 'tessera_token_requests_total{outcome="ok"}' in text
    assert 'tessera_token_requests_total{outcome="invalid_client"}' in text
    assert "tessera_token_request_seconds_bucket" in text
    assert "tessera_config_age_seconds" in text
    for leak in ("acme", "other", client.client_id, secret, "billing-secret-name"):
        assert leak not in text


def test_metrics_and_readyz_refuse_other_methods():
    response = HttpClient().post("/metrics", json.dumps({}), content_type="application/json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
