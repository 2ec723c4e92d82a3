"""Token requests that run a tenant's flow leave their hook arguments for dry
runs (``hooks.recorded_inputs``): without any secret, one per client, audience
and requested scope, bounded per tenant, pruned with the runs, off with a
setting, and at no database cost for a request seen before. Two tenants side
by side."""

import base64
import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.choices import TokenEndpointAuthMethod
from clients.services import client_update
from hooks import run_log
from hooks.action_services import (
    BindingSpec,
    SecretSpec,
    action_create,
    action_deploy,
    bindings_replace,
)
from hooks.models import RecordedInput
from hooks.points import credentials_exchange_payload
from hooks.recorded_inputs import worth_recording
from hooks.services import hook_create
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

HOOK = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  cb(null, {scope: scope, 'https://example.com/k': context.webtask.secrets.KEY.length});\n"
    "};\n"
)
ACTION = (
    "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
    "  api.accessToken.setCustomClaim('https://example.com/n', event.secrets.TOKEN.length);\n"
    "};\n"
)
HOOK_SECRET = "hook-secret-value-7f3a9c"
ACTION_SECRET = "action-secret-value-2b8e1d"


class Tenant:
    def __init__(self, slug: str) -> None:
        self.tenant = make_tenant(slug)
        self.audience = f"https://api.{slug}.test/"
        api = make_api(self.tenant, self.audience, scopes=["read:data", "write:data"])
        self.post_client, self.post_secret = make_client(
            self.tenant, {api: ["read:data", "write:data"]}, name="poster"
        )
        self.basic_client, self.basic_secret = make_client(
            self.tenant,
            {api: ["read:data"]},
            name="basic",
            token_endpoint_auth_method=TokenEndpointAuthMethod.CLIENT_SECRET_BASIC,
        )
        hook_create(
            tenant=self.tenant,
            name="h",
            script=HOOK,
            enabled=True,
            secrets={"KEY": HOOK_SECRET + slug},
            actor=TEST_ACTOR,
        )
        action = action_create(
            tenant=self.tenant,
            name="a",
            code=ACTION,
            secrets=[SecretSpec("TOKEN", ACTION_SECRET + slug)],
            actor=TEST_ACTOR,
        )
        action_deploy(action=action, actor=TEST_ACTOR)
        bindings_replace(
            tenant=self.tenant,
            trigger_id="credentials-exchange",
            bindings=[BindingSpec(action, "a")],
            actor=TEST_ACTOR,
        )

    def secrets(self) -> list[str]:
        slug = self.tenant.slug
        return [self.post_secret, self.basic_secret, HOOK_SECRET + slug, ACTION_SECRET + slug]

    def post(self, scope: str | None = None, *, form: bool = False):
        body = {
            "grant_type": "client_credentials",
            "client_id": self.post_client.client_id,
            "client_secret": self.post_secret,
            "audience": self.audience,
        }
        if scope:
            body["scope"] = scope
        url = f"/{self.tenant.slug}/oauth/token"
        if form:
            response = HttpClient().post(
                url, urlencode(body), content_type="application/x-www-form-urlencoded"
            )
        else:
            response = HttpClient().post(url, json.dumps(body), content_type="application/json")
        assert response.status_code == 200, response.content
        return response

    def basic(self):
        credentials = f"{self.basic_client.client_id}:{self.basic_secret}"
        response = HttpClient().post(
            f"/{self.tenant.slug}/oauth/token",
            json.dumps({"grant_type": "client_credentials", "audience": self.audience}),
            content_type="application/json",
            HTTP_AUTHORIZATION="Basic " + base64.b64encode(credentials.encode()).decode(),
        )
        assert response.status_code == 200, response.content
        return response


@pytest.fixture
def two(db) -> tuple[Tenant, Tenant]:
    return Tenant("acme"), Tenant("globex")


def rows_text() -> str:
    return json.dumps(
        list(
            RecordedInput.objects.values(
                "client_id", "client_name", "audience", "requested_scope", "payload"
            )
        )
    )


def test_recorded_inputs_never_contain_a_secret(two):
    for shop in two:
        shop.post()
        shop.post("read:data", form=True)
        shop.basic()
    assert RecordedInput.objects.count() == 6
    stored = rows_text()
    for shop in two:
        for secret in shop.secrets():
            assert secret not in stored
    # What the hook received is there: the client, its metadata, the context.
    row = RecordedInput.objects.filter(tenant=two[0].tenant, client_name="poster").first()
    assert row is not None
    assert row.payload["client"]["id"] == two[0].post_client.client_id
    assert row.payload["context"]["body"]["grant_type"] == "client_credentials"
    assert "client_secret" not in row.payload["context"]["body"]


def test_inputs_are_one_per_client_audience_and_requested_scope_per_tenant(two):
    acme, globex = two
    acme.post()
    acme.post()
    acme.post("read:data")
    acme.post("write:data")
    acme.post("write:data read:data")
    acme.post("read:data write:data")  # the same scope, another order
    globex.post()
    assert RecordedInput.objects.filter(tenant=acme.tenant).count() == 4
    assert RecordedInput.objects.filter(tenant=globex.tenant).count() == 1


def test_a_request_seen_before_writes_nothing_and_a_changed_client_is_written_again(two):
    acme, _ = two
    acme.post()
    with CaptureQueriesContext(connection) as queries:
        acme.post()
    assert not [q for q in queries if "hooks_recordedinput" in q["sql"]]
    client_update(client=acme.post_client, metadata={"plan": "gold"}, actor=TEST_ACTOR)
    acme.post()
    row = RecordedInput.objects.get(tenant=acme.tenant)
    assert row.payload["client"]["metadata"] == {"plan": "gold"}


def test_recording_is_off_with_the_setting(two, settings):
    settings.TESSERA_RECORD_HOOK_INPUTS = False
    two[0].post()
    assert not RecordedInput.objects.exists()


def test_an_input_over_the_byte_bound_is_not_kept(two, settings):
    settings.TESSERA_RECORDED_INPUT_MAX_BYTES = 200
    two[0].post()
    assert not RecordedInput.objects.exists()


def test_inputs_are_pruned_with_the_runs(two):
    acme, globex = two
    acme.post()
    globex.post()
    RecordedInput.objects.filter(tenant=acme.tenant).update(
        last_seen_at=timezone.now() - timedelta(days=30)
    )
    run_log.prune_runs()
    assert not RecordedInput.objects.filter(tenant=acme.tenant).exists()
    assert RecordedInput.objects.filter(tenant=globex.tenant).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_recorded_set_stays_bounded_under_10000_distinct_requests(settings):
    """What the token path hands the run log's writer thread, 10,000 distinct
    requests over two tenants: each keeps its newest 100, within the bytes."""
    settings.TESSERA_HOOK_RUN_LOG_ASYNC = True
    tenants = [make_tenant("acme"), make_tenant("globex")]
    for n in range(10_000):
        tenant = tenants[n % 2]
        payload = credentials_exchange_payload(
            tenant_slug=tenant.slug,
            client_id=f"client-{n % 37}",
            client_name="svc",
            client_metadata={"n": str(n)},
            audience="https://api.example.test/",
            scope=["read:data"],
            params={"grant_type": "client_credentials", "scope": f"scope:{n}"},
            ip="203.0.113.7",
            user_agent="bench",
        )
        record = worth_recording(
            tenant_id=tenant.pk, trigger_id="credentials-exchange", payload=payload
        )
        assert record is not None
        run_log.record_input(record)
    run_log.shutdown(timeout=60)  # writes what is queued
    for tenant in tenants:
        rows = RecordedInput.objects.filter(tenant=tenant)
        assert rows.count() == settings.TESSERA_RECORDED_INPUTS_PER_TENANT
        assert sum(rows.values_list("size_bytes", flat=True)) <= (
            settings.TESSERA_RECORDED_INPUTS_PER_TENANT * settings.TESSERA_RECORDED_INPUT_MAX_BYTES
        )
    kept = set(RecordedInput.objects.values_list("requested_scope", flat=True))
    assert "scope:9999" in kept and "scope:9998" in kept
    assert "scope:0" not in kept
