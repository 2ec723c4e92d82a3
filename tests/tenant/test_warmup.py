"""README, "Configuration": each worker loads the signing keys and enabled
hooks when it starts, before its first request."""

import gc
import json

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from hooks.services import hook_create
from tenant import config_cache
from tenant.site.warmup import warm
from tests.factories import SEED_HOOK, TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

AUD = "https://api.example.test/"


def first_token_queries(tenant, client, secret) -> list[str]:
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
    }
    with CaptureQueriesContext(connection) as queries:
        response = HttpClient().post(
            f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
        )
    assert response.status_code == 200, response.content
    return [query["sql"] for query in queries]


@pytest.mark.parametrize("warmed", [True, False])
def test_a_warmed_process_reads_no_key_or_hook_on_its_first_token(settings, warmed):
    settings.TESSERA_CONFIG_MAX_STALENESS = 60  # no re-read of the generation mid-test
    worlds = []
    for slug in ("alpha", "bravo"):
        tenant = make_tenant(slug)
        api = make_api(tenant, AUD)
        client, secret = make_client(tenant, {api: ["read:data"]})
        hook_create(
            tenant=tenant, name=f"{slug}-hook", script=SEED_HOOK, enabled=True, actor=TEST_ACTOR
        )
        worlds.append((tenant, client, secret))
    config_cache.forget()  # a fresh process
    if warmed:
        warm()
        gc.unfreeze()  # warm() freezes what it loaded; the suite's process goes on
    for world in worlds:
        sql = " ".join(first_token_queries(*world))
        assert ("tenant_signingkey" in sql) is not warmed, sql
        assert ('"hooks_hook"' in sql) is not warmed, sql
