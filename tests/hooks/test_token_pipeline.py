"""Hooks through the real token endpoint (SPEC §3 hook rows, §4)."""

import json
import time

import jwt
import pytest
from django.test import Client as HttpClient

from hooks.models import Hook, HookRun, HookStorage
from hooks.services import hook_create
from tests.factories import SEED_HOOK as SEED
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

AUD = "https://api.example.test/"
TIMEOUT_MS = 1000
MARGIN_S = 2.0

pytestmark = pytest.mark.django_db


GOOD = "module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: s}); };"


@pytest.fixture
def tenant():
    tenant = make_tenant("acme")
    tenant.hook_timeout_ms = TIMEOUT_MS
    tenant.save()
    return tenant


@pytest.fixture
def client_and_secret(tenant):
    api = make_api(tenant, AUD, scopes=["test", "read:data", "read:connections"])
    return make_client(tenant, {api: ["test"]}, metadata={"plan": "gold"})


def with_hook(tenant, script, **kwargs):
    Hook.objects.filter(tenant=tenant).delete()
    kwargs.setdefault("actor", TEST_ACTOR)
    return hook_create(tenant=tenant, name="hook", script=script, enabled=True, **kwargs)


def request_token(tenant, client_and_secret, **extra):
    client, secret = client_and_secret
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": AUD,
        **extra,
    }
    return HttpClient().post(
        f"/{tenant.slug}/oauth/token",
        json.dumps(body),
        content_type="application/json",
        HTTP_USER_AGENT="pytest/1",
    )


def claims_of(tenant, response):
    assert response.status_code == 200, response.content
    jwks = jwt.PyJWKSet.from_dict(HttpClient().get(f"/{tenant.slug}/.well-known/jwks.json").json())
    return jwt.decode(
        response.json()["access_token"], jwks.keys[0], algorithms=["RS256"], audience=AUD
    )


def assert_hook_error(response, status, error, description=None):
    assert response.status_code == status, response.content
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"] == error
    if description is not None:
        assert response.json()["error_description"] == description


# --- the seeds ---------------------------------------------------------------------


def test_seed_rule_adds_claim_and_extra_scope(tenant, client_and_secret):
    with_hook(tenant, SEED)
    response = request_token(tenant, client_and_secret)
    claims = claims_of(tenant, response)
    assert claims["scope"] == "test extra"
    assert claims["https://foo.com/claim"] == "bar"
    assert response.json()["scope"] == "test extra"


def test_seed_004_add_scope_example(tenant, client_and_secret):
    with_hook(
        tenant,
        """module.exports = function(client, scope, audience, context, cb) {
    var access_token = {};
    access_token.scope = scope;
    access_token.scope.push('read:resource');
    cb(null, access_token);
  };""",
    )
    assert (
        claims_of(tenant, request_token(tenant, client_and_secret))["scope"] == "test read:resource"
    )


def test_seed_004_add_claim_example_has_no_scope(tenant, client_and_secret):
    with_hook(
        tenant,
        """module.exports = function(client, scope, audience, context, cb) {
    var access_token = {};
    access_token['https://example.com/foo'] = 'bar';
    cb(null, access_token);
  };""",
    )
    claims = claims_of(tenant, request_token(tenant, client_and_secret))
    assert claims["https://example.com/foo"] == "bar"
    assert "scope" not in claims


def test_seed_004_starter_code_keeps_granted_scopes(tenant, client_and_secret):
    from hooks.points import CREDENTIALS_EXCHANGE

    with_hook(tenant, CREDENTIALS_EXCHANGE.starter_script)
    assert claims_of(tenant, request_token(tenant, client_and_secret))["scope"] == "test"


def test_without_enabled_hook_token_has_granted_scopes_only(tenant, client_and_secret):
    hook = with_hook(tenant, SEED)
    Hook.objects.filter(pk=hook.pk).update(enabled=False)
    claims = claims_of(tenant, request_token(tenant, client_and_secret))
    assert claims["scope"] == "test"
    assert "https://foo.com/claim" not in claims


# --- arguments -----------------------------------------------------------------------


def test_hook_receives_client_audience_context_and_secrets(tenant, client_and_secret):
    client, _ = client_and_secret
    with_hook(
        tenant,
        """module.exports = function(client, scope, audience, context, cb) {
      cb(null, {'https://t.test/args': {client: client, audience: audience,
        ip: context.ip, ua: context.userAgent, body: context.body,
        secret: context.webtask.secrets.API_KEY}});
    };""",
        secrets={"API_KEY": "k-123"},
    )
    args = claims_of(tenant, request_token(tenant, client_and_secret))["https://t.test/args"]
    assert args["client"] == {
        "tenant": "acme",
        "id": client.client_id,
        "name": "svc",
        "metadata": {"plan": "gold"},
    }
    assert args["audience"] == AUD
    assert args["ip"] == "127.0.0.1" and args["ua"] == "pytest/1"
    assert args["secret"] == "k-123"
    assert "client_secret" not in args["body"]
    assert args["body"]["audience"] == AUD


def test_hook_cannot_override_standard_claims(tenant, client_and_secret):
    client, _ = client_and_secret
    with_hook(
        tenant,
        """module.exports = function(c, s, a, ctx, cb) {
      cb(null, {iss: 'evil', sub: 'evil', aud: 'evil', exp: 1, iat: 1, azp: 'e', gty: 'e', jti: 'e',
                'https://auth0.com/x': 1, plain: 2, scope: s});
    };""",
    )
    claims = claims_of(tenant, request_token(tenant, client_and_secret))
    assert claims["iss"] == tenant.issuer and claims["sub"] == f"{client.client_id}@clients"
    assert claims["gty"] == "client-credentials"
    assert "https://auth0.com/x" not in claims and "plain" not in claims


# --- callback styles -------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        "module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: ['x']}); };",
        "module.exports = function(c, s, a, ctx, cb) { Promise.resolve().then(() => cb(null, {scope: ['x']})); };",
        "module.exports = function(c, s, a, ctx, cb) { setTimeout(() => cb(null, {scope: ['x']}), 10); };",
        "module.exports = async function(c, s, a, ctx) { await null; return {scope: ['x']}; };",
        "module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: ['x']}); cb(null, {scope: ['y']}); };",
    ],
    ids=["sync-cb", "promise-cb", "settimeout-cb", "async-return", "cb-twice-first-wins"],
)
def test_callback_styles_all_issue_the_token(tenant, client_and_secret, script):
    with_hook(tenant, script)
    assert claims_of(tenant, request_token(tenant, client_and_secret))["scope"] == "x"


def test_cb_with_nothing_issues_token_without_scope(tenant, client_and_secret):
    with_hook(tenant, "module.exports = function(c, s, a, ctx, cb) { cb(); };")
    assert "scope" not in claims_of(tenant, request_token(tenant, client_and_secret))


def test_non_object_result_is_server_error(tenant, client_and_secret):
    with_hook(tenant, "module.exports = function(c, s, a, ctx, cb) { cb(null, 'nope'); };")
    assert_hook_error(request_token(tenant, client_and_secret), 500, "server_error")


# --- errors ----------------------------------------------------------------------------


def test_cb_error_is_server_error_with_its_message(tenant, client_and_secret):
    with_hook(
        tenant, "module.exports = function(c, s, a, ctx, cb) { cb(new Error('access denied')); };"
    )
    assert_hook_error(
        request_token(tenant, client_and_secret), 500, "server_error", "access denied"
    )


def test_throw_is_server_error_with_its_message(tenant, client_and_secret):
    with_hook(tenant, "module.exports = function() { throw new Error('boom'); };")
    assert_hook_error(request_token(tenant, client_and_secret), 500, "server_error", "boom")


def test_invalid_scope_error_is_400_invalid_scope(tenant, client_and_secret):
    with_hook(
        tenant,
        "module.exports = function(c, s, a, ctx, cb) { cb(new InvalidScopeError('no admin')); };",
    )
    assert_hook_error(request_token(tenant, client_and_secret), 400, "invalid_scope", "no admin")


def test_invalid_request_error_is_400_invalid_request(tenant, client_and_secret):
    with_hook(
        tenant,
        "module.exports = function(c, s, a, ctx, cb) { cb(new InvalidRequestError('bad')); };",
    )
    assert_hook_error(request_token(tenant, client_and_secret), 400, "invalid_request", "bad")


def test_stored_syntax_error_is_server_error(tenant, client_and_secret):
    hook = with_hook(tenant, GOOD)
    Hook.objects.filter(pk=hook.pk).update(script="module.exports = function( {")
    assert_hook_error(request_token(tenant, client_and_secret), 500, "server_error")


HOSTILE = {
    "sync-loop": ("module.exports = function() { while (true) {} };", "timed out"),
    "then-loop": (
        "module.exports = function() { Promise.resolve().then(() => { while (true) {} }); };",
        "timed out",
    ),
    "settimeout-loop": (
        "module.exports = function() { setTimeout(() => { while (true) {} }, 1); };",
        "timed out",
    ),
    "never-calls-back": (
        "module.exports = function(c, s, a, ctx, cb) {};",
        "without calling back",
    ),
    "heap-bomb": (
        "module.exports = function() { var a = []; while (true) a.push(new Array(1e6).fill(1)); };",
        None,
    ),
    "arraybuffer-bomb": (
        "module.exports = function() { var a = []; while (true) a.push(new ArrayBuffer(1 << 30)); };",
        None,
    ),
    "huge-array-fill": ("module.exports = function() { new Array(3e8).fill(1.5); };", None),
    "100mb-result": (
        "module.exports = function(c, s, a, ctx, cb) { cb(null, {'https://x.test/big': 'x'.repeat(1e8)}); };",
        None,
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_hook_costs_only_its_own_request(tenant, client_and_secret, name):
    script, expected = HOSTILE[name]
    with_hook(tenant, script)
    start = time.monotonic()
    response = request_token(tenant, client_and_secret)
    elapsed = time.monotonic() - start

    assert_hook_error(response, 500, "server_error")
    if expected:
        assert expected in response.json()["error_description"]
    assert elapsed < TIMEOUT_MS / 1000 + MARGIN_S
    # The very next request, with a good hook, succeeds.
    with_hook(tenant, GOOD)
    assert claims_of(tenant, request_token(tenant, client_and_secret))["scope"] == "test"


# --- sandbox and isolation ---------------------------------------------------------------


def test_hook_cannot_reach_host_facilities(tenant, client_and_secret):
    with_hook(
        tenant,
        """module.exports = function(c, s, a, ctx, cb) {
      cb(null, {'https://t.test/env': [typeof process,
                                       typeof XMLHttpRequest, typeof Deno, typeof Bun]});
    };""",
    )
    env = claims_of(tenant, request_token(tenant, client_and_secret))["https://t.test/env"]
    assert env == ["undefined"] * 4


def test_other_tenants_hook_globals_and_secrets_are_invisible(tenant, client_and_secret):
    with_hook(
        tenant,
        """globalThis.leak = 'from-acme';
      module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: s}); };""",
        secrets={"TOKEN": "acme-only"},
    )
    claims_of(tenant, request_token(tenant, client_and_secret))

    other = make_tenant("globex")
    api = make_api(other, AUD)
    other_client = make_client(other, {api: []})
    with_hook(
        other,
        """module.exports = function(c, s, a, ctx, cb) {
      cb(null, {'https://t.test/seen': [typeof leak, JSON.stringify(ctx.webtask.secrets)]});
    };""",
    )
    assert claims_of(other, request_token(other, other_client))["https://t.test/seen"] == [
        "undefined",
        "{}",
    ]


def test_tenant_without_hook_never_runs_another_tenants_hook(tenant, client_and_secret):
    with_hook(tenant, SEED)
    other = make_tenant("globex")
    api = make_api(other, AUD, scopes=["test"])
    other_client = make_client(other, {api: ["test"]})
    claims = claims_of(other, request_token(other, other_client))
    assert claims["scope"] == "test" and "https://foo.com/claim" not in claims
    assert not HookRun.objects.filter(tenant=other).exists()


# --- run log and storage ----------------------------------------------------------------


def test_each_run_is_recorded_with_outcome_and_console(tenant, client_and_secret):
    hook = with_hook(
        tenant,
        """module.exports = function(c, s, a, ctx, cb) {
      console.log('hello', {n: 1}); cb(new Error('nope'));
    };""",
    )
    request_token(tenant, client_and_secret)
    run = HookRun.objects.get(hook=hook)
    assert run.outcome == "error" and run.source == "token"
    assert "hello" in run.console
    assert "nope" in run.error
    assert run.duration_ms > 0


def test_timeout_is_recorded_as_timeout(tenant, client_and_secret):
    hook = with_hook(tenant, "module.exports = function() { while (true) {} };")
    request_token(tenant, client_and_secret)
    assert HookRun.objects.get(hook=hook).outcome == "timeout"


def test_storage_persists_between_requests(tenant, client_and_secret):
    hook = with_hook(
        tenant,
        """module.exports = function(c, s, a, ctx, cb) {
      ctx.webtask.storage.get(function(err, data) {
        var n = ((data && data.n) || 0) + 1;
        ctx.webtask.storage.set({n: n}, function(err) {
          cb(null, {'https://t.test/n': n});
        });
      });
    };""",
    )
    assert claims_of(tenant, request_token(tenant, client_and_secret))["https://t.test/n"] == 1
    assert claims_of(tenant, request_token(tenant, client_and_secret))["https://t.test/n"] == 2
    assert HookStorage.objects.get(hook=hook).data == {"n": 2}


def test_arguments_are_copies(tenant, client_and_secret):
    with_hook(
        tenant,
        """module.exports = function(c, s, a, ctx, cb) {
      c.metadata.plan = 'hacked'; s.push('admin'); cb(null, {scope: ['test']});
    };""",
    )
    claims_of(tenant, request_token(tenant, client_and_secret))
    client, _ = client_and_secret
    client.refresh_from_db()
    assert client.metadata == {"plan": "gold"}
