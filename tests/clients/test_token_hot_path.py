"""The token request's database work, pinned (SPEC §8 "Fast"), and the
invalidation that keeps memoised configuration correct."""

import gc
import io
import json
import time

import jwt
import pytest
from django.core.cache import caches
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from apis.services import api_create, api_rotate_signing_secret
from clients.models import Client, ClientGrant
from clients.services import client_grant_set_scopes, client_rotate_secret
from hooks.services import hook_create, hook_disable, hook_save_script
from tenant.models import ConfigChange
from tenant.services import tenant_rotate_key
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

AUD = "https://api.example.test/"
SCRIPT = "module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: s.concat(['%s'])}); };"


@pytest.fixture
def setup():
    tenant = make_tenant("acme")
    api = make_api(tenant, AUD)
    client, secret = make_client(tenant, {api: ["read:data"]})
    return tenant, api, client, secret


def token(tenant, client, secret):
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
    }
    return HttpClient().post(
        f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
    )


def scope_of(response):
    assert response.status_code == 200, response.content
    return scope_of_token(response.json()["access_token"])


def scope_of_token(access_token):
    return jwt.decode(access_token, options={"verify_signature": False})["scope"]


@pytest.fixture
def slow_recheck(settings):
    """Deployed, a watcher thread re-reads the generation off the request; the
    tests read it inline once the bound passes, which must not fall inside."""
    settings.TESSERA_CONFIG_MAX_STALENESS = 60


def test_warm_token_request_without_hook_makes_no_queries(setup, slow_recheck):
    tenant, _, client, secret = setup
    token(tenant, client, secret)
    with CaptureQueriesContext(connection) as queries:
        assert token(tenant, client, secret).status_code == 200
    assert len(queries) == 0


def test_warm_token_request_with_hook_only_logs_the_run(setup, slow_recheck):
    tenant, _, client, secret = setup
    hook_create(tenant=tenant, name="h", script=SCRIPT % "extra", enabled=True, actor=TEST_ACTOR)
    token(tenant, client, secret)
    with CaptureQueriesContext(connection) as queries:
        assert token(tenant, client, secret).status_code == 200
    # Deployed, this INSERT runs on the run log's writer thread, off the request.
    assert len(queries) == 1
    assert queries[0]["sql"].startswith("INSERT") and "hooks_hookrun" in queries[0]["sql"]


def test_warm_token_request_with_hook_makes_no_shared_cache_round_trip(
    setup, monkeypatch, slow_recheck
):
    """A hook that has never written its storage costs no storage read, and
    the generation is in memory: no shared-cache (Redis) round trip at all."""
    tenant, _, client, secret = setup
    hook_create(tenant=tenant, name="h", script=SCRIPT % "extra", enabled=True, actor=TEST_ACTOR)
    token(tenant, client, secret)
    shared, reads = caches["shared"], []
    real_get = shared.get

    def counting_get(key, *args):
        reads.append(key)
        return real_get(key, *args)

    monkeypatch.setattr(shared, "get", counting_get)
    assert scope_of(token(tenant, client, secret)) == "read:data extra"
    assert reads == []


def test_saved_hook_takes_effect_on_next_request(setup):
    tenant, _, client, secret = setup
    hook = hook_create(
        tenant=tenant, name="h", script=SCRIPT % "one", enabled=True, actor=TEST_ACTOR
    )
    assert scope_of(token(tenant, client, secret)) == "read:data one"
    hook_save_script(hook=hook, script=SCRIPT % "two", base_version=hook.version, actor=TEST_ACTOR)
    assert scope_of(token(tenant, client, secret)) == "read:data two"
    hook_disable(hook=hook, actor=TEST_ACTOR)
    assert scope_of(token(tenant, client, secret)) == "read:data"


def test_revoked_grant_takes_effect_on_next_request(setup):
    tenant, _, client, secret = setup
    assert token(tenant, client, secret).status_code == 200
    client.grants.get().delete()
    assert token(tenant, client, secret).status_code == 403


def test_changed_grant_scopes_take_effect_on_next_request(setup):
    tenant, _, client, secret = setup
    assert scope_of(token(tenant, client, secret)) == "read:data"
    client_grant_set_scopes(grant=client.grants.get(), scopes=["write:data"], actor=TEST_ACTOR)
    assert scope_of(token(tenant, client, secret)) == "write:data"


def test_rotated_secret_takes_effect_on_next_request(setup):
    tenant, _, client, secret = setup
    assert token(tenant, client, secret).status_code == 200
    new_secret = client_rotate_secret(client=Client.objects.get(pk=client.pk), actor=TEST_ACTOR)
    assert token(tenant, client, secret).status_code == 401
    assert token(tenant, client, new_secret).status_code == 200


def test_a_request_after_the_bound_sees_a_change_made_elsewhere(setup, settings):
    """A change committed by another process (here: written behind this
    process's back, as another server would) is seen once the bound passes."""
    settings.TESSERA_CONFIG_MAX_STALENESS = 1.0
    tenant, _, client, secret = setup
    assert token(tenant, client, secret).status_code == 200  # warms the process
    time.sleep(1.1)
    # Past the bound, this request reads the generation at its start: the
    # bound runs from here, whatever the first request of a process cost.
    assert token(tenant, client, secret).status_code == 200
    grant = client.grants.get()
    # No signals: this process must not hear of it but through the database.
    ClientGrant.scopes.through.objects.filter(clientgrant=grant)._raw_delete("default")
    ClientGrant.objects.filter(pk=grant.pk)._raw_delete("default")
    ConfigChange.objects.create()  # what the other process's transaction inserted
    assert token(tenant, client, secret).status_code == 200  # memoised, within the bound
    time.sleep(1.1)
    assert token(tenant, client, secret).status_code == 403


def test_rotated_key_signs_the_next_token(setup):
    tenant, _, client, secret = setup
    before = jwt.get_unverified_header(token(tenant, client, secret).json()["access_token"])
    tenant_rotate_key(tenant=tenant, actor=TEST_ACTOR)
    after = jwt.get_unverified_header(token(tenant, client, secret).json()["access_token"])
    assert before["kid"] != after["kid"]


def test_rotated_hs256_secret_signs_the_next_token(setup):
    tenant, _, _, _ = setup
    api, old_secret = api_create(
        tenant=tenant, name="Legacy", identifier="legacy", signing_alg="HS256", actor=TEST_ACTOR
    )
    assert old_secret is not None
    client, secret = make_client(tenant, {api: []}, name="legacy-client")
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": "legacy",
    }

    def legacy_token():
        response = HttpClient().post(
            f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
        )
        return response.json()["access_token"]

    jwt.decode(legacy_token(), old_secret, algorithms=["HS256"], audience="legacy")
    new_secret = api_rotate_signing_secret(api=api, actor=TEST_ACTOR)
    jwt.decode(legacy_token(), new_secret, algorithms=["HS256"], audience="legacy")


@pytest.fixture
def wsgi_handler():
    """Django's WSGI handler as granian calls it, with no test client around
    it; like the test client, it leaves the test's database connection open."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.parametrize(
    ("with_hook", "wrong_secret"),
    [(False, False), (True, False), (True, True)],
    ids=["no hook", "hook", "refused client"],
)
def test_token_requests_leave_nothing_for_the_garbage_collector(
    setup, slow_recheck, wsgi_handler, with_hook, wrong_secret
):
    """DRF's view, request and response point at each other; untied once the
    response is rendered, reference counting frees a token request whole,
    and the collector has nothing to pause a worker for."""
    tenant, _, client, secret = setup
    if with_hook:
        hook_create(
            tenant=tenant, name="h", script=SCRIPT % "extra", enabled=True, actor=TEST_ACTOR
        )
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret + "x" if wrong_secret else secret,
            "audience": AUD,
        }
    ).encode()

    def request() -> str:
        started: list[str] = []
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": f"/{tenant.slug}/oauth/token",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
        }
        content = b"".join(wsgi_handler(environ, lambda status, headers: started.append(status)))
        if wrong_secret:
            assert started == ["401 Unauthorized"], content
            assert json.loads(content)["error"] == "invalid_client"
            return ""
        assert started == ["200 OK"], content
        return json.loads(content)["access_token"]

    token = request()
    if not wrong_secret:
        assert ("extra" in scope_of_token(token)) is with_hook
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            request()
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
