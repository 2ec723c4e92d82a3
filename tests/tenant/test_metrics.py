"""Each metric the README names moves when its event happens: ``/metrics``
scraped before and after. (The database-outage ones, dependency errors for
the database, the config age past the grace and the run-log buffer, are in
test_outage.py.)"""

import json
import time

import pytest
from django.test import Client as HttpClient

from hooks import run_log
from hooks.services import hook_create, hook_save_script
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant
from tests.tenant.metrics import Samples, scrape

pytestmark = pytest.mark.django_db(transaction=True)

AUD = "https://api.example.test/"
OK_HOOK = "module.exports = function(c, s, a, ctx, cb) { cb(null, { scope: s }); };"
THROWING_HOOK = "module.exports = function(c, s, a, ctx, cb) { throw new Error('kaput'); };"


class Caller:
    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.tenant = make_tenant(slug)
        api = make_api(self.tenant, AUD)
        self.client, self.secret = make_client(self.tenant, {api: ["read:data"]})

    def token(self, secret: str | None = None):  # type: ignore[no-untyped-def]
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": secret or self.secret,
            "audience": AUD,
        }
        return HttpClient().post(
            f"/{self.slug}/oauth/token", json.dumps(body), content_type="application/json"
        )


def moved(before: Samples, after: Samples, name: str, *labels: str) -> float:
    return after[name, labels] - before[name, labels]


def test_token_requests_and_their_latency_count_each_outcome():
    acme = Caller("acme")
    before = scrape()
    assert [acme.token().status_code for _ in range(3)] == [200] * 3
    assert acme.token("wrong").status_code == 401
    after = scrape()
    assert moved(before, after, "tessera_token_requests_total", "ok") == 3
    assert moved(before, after, "tessera_token_requests_total", "invalid_client") == 1
    assert moved(before, after, "tessera_token_request_seconds_count") == 4
    assert moved(before, after, "tessera_token_request_seconds_sum") > 0


def test_hook_runs_and_their_duration_count_each_outcome():
    acme = Caller("acme")
    hook = hook_create(tenant=acme.tenant, name="h", script=OK_HOOK, enabled=True, actor=TEST_ACTOR)
    before = scrape()
    assert acme.token().status_code == 200
    assert acme.token().status_code == 200
    hook_save_script(
        hook=hook,
        script=THROWING_HOOK,
        base_version=hook.version,
        confirm_failing=True,
        actor=TEST_ACTOR,
    )
    assert acme.token().status_code == 500
    run_log.shutdown()
    after = scrape()
    assert moved(before, after, "tessera_hook_runs_total", "ok") == 2
    assert moved(before, after, "tessera_hook_runs_total", "error") == 1
    assert moved(before, after, "tessera_hook_run_seconds_count") == 3
    assert moved(before, after, "tessera_token_requests_total", "server_error") == 1


def test_config_invalidations_count_changes_a_server_notices(settings):
    settings.TESSERA_CONFIG_MAX_STALENESS = 60
    acme = Caller("acme")
    assert acme.token().status_code == 200
    before = scrape()
    assert acme.token().status_code == 200  # nothing changed
    assert moved(before, scrape(), "tessera_config_invalidations_total") == 0
    make_api(acme.tenant, "https://other.example.test/")
    assert acme.token().status_code == 200
    assert moved(before, scrape(), "tessera_config_invalidations_total") == 1


def test_config_age_grows_until_the_generation_is_read_again(settings):
    settings.TESSERA_CONFIG_MAX_STALENESS = 60
    acme = Caller("acme")
    assert acme.token().status_code == 200
    assert scrape()["tessera_config_age_seconds", ()] < 1
    time.sleep(1.2)
    assert acme.token().status_code == 200  # within the bound: served from memory
    assert scrape()["tessera_config_age_seconds", ()] >= 1.2
    make_api(acme.tenant, "https://other.example.test/")  # a change is read at once
    assert scrape()["tessera_config_age_seconds", ()] < 1


def test_redis_away_counts_dependency_errors_and_local_rate_limits(settings):
    # The production cache layout, on a port where no Redis listens.
    unreachable = "redis://127.0.0.1:1/0"
    options = {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25}
    settings.CACHES = {
        "default": {
            "BACKEND": "tenant.dependencies.ResilientRedisCache",
            "LOCATION": unreachable,
            "OPTIONS": {**options, "FALLBACK": "local"},
        },
        "shared": {
            "BACKEND": "tenant.dependencies.ResilientRedisCache",
            "LOCATION": unreachable,
            "OPTIONS": {**options, "FALLBACK": "miss"},
        },
    }
    acme = Caller("acme")
    before = scrape()
    assert acme.token().status_code == 200
    assert acme.token().status_code == 200
    after = scrape()
    assert moved(before, after, "tessera_dependency_errors_total", "redis") >= 1
    assert moved(before, after, "tessera_rate_limit_local_fallbacks_total") >= 2
