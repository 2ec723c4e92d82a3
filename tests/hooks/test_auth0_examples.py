"""Auth0's own examples, pasted unchanged, shape real tokens: the Hooks of
the seed documents and the credentials-exchange Actions reference."""

import json
from io import StringIO
from pathlib import Path

import jwt
import pytest
from django.core.management import call_command
from django.test import Client as HttpClient

from hooks.models import Hook, HookRun
from hooks.services import hook_create, hook_secrets_set
from hooks.trial_run import hook_test_run
from tests.factories import SEED_HOOK as SEED
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db
AUD = "https://api.example.test/"

# -- Hooks (the seed documents) -----------------------------------------------------------

ADD_SCOPE = """module.exports = function(client, scope, audience, context, cb) {
    // Scopes to be added
    var access_token = {};

    // Get the scope that's currently on the access token
    // and add it to the object we're working with
    access_token.scope = scope;

    // Append the `read:resource` scope
    access_token.scope.push('read:resource');

    // Callback to indicate completion and to return new
    // array of scopes
    cb(null, access_token);
};"""
ADD_CLAIM = """module.exports = function(client, scope, audience, context, cb) {
    // Claims to be added
    var access_token = {};

    // New claim to add to the token
    access_token['https://example.com/foo'] = 'bar';

    // Callback to indicate completion and to return new claim
    cb(null, access_token);
  };"""
DENY = """module.exports = function(client, scope, audience, context, cb) {
  cb(new Error('access denied'));
};"""
SECRET = """module.exports = function(client, scope, audience, context, cb) {
  var access_token = {};
  access_token.scope = scope;
  access_token['https://example.com/foo'] = context.webtask.secrets.FOO;
  cb(null, access_token);
};"""

# -- Actions (Auth0's credentials-exchange reference) -----------------------------------------

ACTION_REQUEST_IP = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim("https://my-api.exampleco.com/request-ip", event.request.ip);
};"""
ACTION_GEO_DENY = """exports.onExecuteCredentialsExchange = async (event, api) => {
  if (event.request.geoip.continentCode === "NA") {
    api.access.deny('invalid_request', "Access from North America is not allowed.");
  }
};"""
ACTION_TIER = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/tier', event.client.metadata.tier);
};"""
ACTION_DENY_UNLESS_GOLD = """exports.onExecuteCredentialsExchange = async (event, api) => {
  if (event.client.metadata.tier !== 'gold') {
    api.access.deny('invalid_scope', 'Only gold clients get this API.');
  }
};"""
ACTION_SECRET = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/key', event.secrets.API_KEY);
};"""
ACTION_CACHE = """exports.onExecuteCredentialsExchange = async (event, api) => {
  const record = api.cache.get('upstream-token');
  if (record) {
    api.accessToken.setCustomClaim('https://example.com/cached', record.value);
    return;
  }
  const result = api.cache.set('upstream-token', 'fetched-once', { ttl: 60000 });
  api.accessToken.setCustomClaim('https://example.com/cached', result.type);
};"""


class World:
    def __init__(self, slug: str, metadata: dict[str, str] | None = None) -> None:
        self.tenant = make_tenant(slug)
        api = make_api(self.tenant, AUD, scopes=["read:data", "read:resource", "extra"])
        self.client, self.secret = make_client(
            self.tenant, {api: ["read:data"]}, metadata=metadata or {"tier": "gold"}
        )

    def enable(self, script: str) -> Hook:
        Hook.objects.filter(tenant=self.tenant).delete()
        return hook_create(
            tenant=self.tenant, name="example", script=script, enabled=True, actor=TEST_ACTOR
        )

    def token(self):
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.secret,
            "audience": AUD,
        }
        return HttpClient().post(
            f"/{self.tenant.slug}/oauth/token",
            json.dumps(body),
            content_type="application/json",
            REMOTE_ADDR="203.0.113.9",
        )

    def claims(self) -> dict:
        response = self.token()
        assert response.status_code == 200, response.content
        jwks = jwt.PyJWKSet.from_dict(
            HttpClient().get(f"/{self.tenant.slug}/.well-known/jwks.json").json()
        )
        return jwt.decode(
            response.json()["access_token"], jwks.keys[0], algorithms=["RS256"], audience=AUD
        )


@pytest.fixture
def world() -> World:
    return World("acme")


def test_hook_seed_adds_a_claim_and_the_extra_scope(world):
    world.enable(SEED)

    claims = world.claims()

    assert claims["https://foo.com/claim"] == "bar"
    assert claims["scope"] == "read:data extra"


def test_hook_add_scope_example(world):
    world.enable(ADD_SCOPE)

    assert world.claims()["scope"] == "read:data read:resource"


def test_hook_add_claim_example_drops_the_scope_it_did_not_return(world):
    world.enable(ADD_CLAIM)

    claims = world.claims()

    assert claims["https://example.com/foo"] == "bar"
    assert "scope" not in claims


def test_hook_deny_example(world):
    world.enable(DENY)

    response = world.token()

    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "error_description": "access denied"}


def test_hook_secret_example(world):
    hook = world.enable(SECRET)
    hook_secrets_set(hook=hook, secrets={"FOO": "bar"}, actor=TEST_ACTOR)

    assert world.claims()["https://example.com/foo"] == "bar"


def test_action_request_ip_example(world):
    hook = world.enable(ACTION_REQUEST_IP)

    claims = world.claims()

    assert hook.kind == "action"
    assert claims["https://my-api.exampleco.com/request-ip"] == "203.0.113.9"
    assert claims["scope"] == "read:data"  # an Action keeps the granted scopes


def test_action_geoip_deny_example_issues_without_geoip(world):
    world.enable(ACTION_GEO_DENY)

    assert world.claims()["scope"] == "read:data"


def test_action_metadata_claim_and_deny(world):
    world.enable(ACTION_TIER)
    assert world.claims()["https://example.com/tier"] == "gold"

    silver = World("silver", metadata={"tier": "silver"})
    silver.enable(ACTION_DENY_UNLESS_GOLD)
    response = silver.token()
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "Only gold clients get this API.",
    }
    world.enable(ACTION_DENY_UNLESS_GOLD)
    assert world.claims()["scope"] == "read:data"


@pytest.mark.parametrize(
    "code, status, error",
    [
        ("invalid_request", 400, "invalid_request"),
        ("invalid_scope", 400, "invalid_scope"),
        ("server_error", 500, "server_error"),
    ],
)
def test_action_deny_codes_map_to_the_hook_errors(world, code, status, error):
    world.enable(
        "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
        f"  api.access.deny('{code}', 'No.');\n"
        "};"
    )

    response = world.token()

    assert (response.status_code, response.json()) == (
        status,
        {"error": error, "error_description": "No."},
    )


def test_action_deny_with_an_unknown_code_is_a_server_error(world):
    world.enable(
        "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
        "  api.access.deny('access_denied', 'No.');\n"
        "};"
    )

    response = world.token()

    assert response.status_code == 500
    assert "code must be" in response.json()["error_description"]


def test_action_secret_example(world):
    hook = world.enable(ACTION_SECRET)
    hook_secrets_set(hook=hook, secrets={"API_KEY": "k-123"}, actor=TEST_ACTOR)

    assert world.claims()["https://example.com/key"] == "k-123"


def test_action_cache_persists_across_requests_and_stays_with_its_hook(world):
    world.enable(ACTION_CACHE)
    other = World("other")
    other.enable(ACTION_CACHE)

    assert world.claims()["https://example.com/cached"] == "success"
    assert world.claims()["https://example.com/cached"] == "fetched-once"
    assert other.claims()["https://example.com/cached"] == "success"


def test_action_cache_limits_answer_errors_as_auth0_does(world):
    world.enable(
        "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
        "  const results = [\n"
        "    api.cache.set('big', 'x'.repeat(4097)).code,\n"
        "    api.cache.set('n', 42).code,\n"
        "    api.cache.set('long', 'v', {ttl: 25 * 3600 * 1000}).code,\n"
        "  ];\n"
        "  for (let i = 0; i < 20; i++) api.cache.set('k' + i, 'v');\n"
        "  results.push(api.cache.set('k20', 'v').code);\n"
        "  api.accessToken.setCustomClaim('https://example.com/codes', results);\n"
        "};"
    )

    assert world.claims()["https://example.com/codes"] == [
        "VALUE_TOO_LARGE",
        "INVALID_VALUE",
        "INVALID_EXPIRY",
        "TOO_MANY_ENTRIES",
    ]


def test_action_claims_that_break_the_rules_are_dropped_and_reported(world):
    script = (
        "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
        "  api.accessToken.setCustomClaim('scope', 'admin')\n"
        "    .accessToken.setCustomClaim('sub', 'someone-else')\n"
        "    .accessToken.setCustomClaim('plain', 1)\n"
        "    .accessToken.setCustomClaim('https://auth0.com/x', 1)\n"
        "    .accessToken.setCustomClaim('https://example.com/ok', 1);\n"
        "};"
    )
    hook = world.enable(script)

    claims = world.claims()
    report = hook_test_run(tenant=world.tenant, script=script, payload={}, hook=hook)

    assert claims["scope"] == "read:data"
    assert claims["sub"] == f"{world.client.client_id}@clients"
    assert "plain" not in claims and "https://auth0.com/x" not in claims
    assert claims["https://example.com/ok"] == 1
    assert report.claims == {"https://example.com/ok": 1}
    assert {d.name for d in report.dropped} == {"scope", "sub", "plain", "https://auth0.com/x"}


def test_action_test_run_takes_an_event_and_the_hooks_secrets(world):
    hook = world.enable(ACTION_SECRET)
    hook_secrets_set(hook=hook, secrets={"API_KEY": "saved"}, actor=TEST_ACTOR)
    from hooks.points import POINTS

    payload = POINTS["credentials-exchange"].sample_for("action")
    report = hook_test_run(tenant=world.tenant, script=ACTION_SECRET, payload=payload, hook=hook)

    assert report.ok
    assert report.claims == {"https://example.com/key": "saved"}
    assert report.scope == ["read:connections"]
    run = HookRun.objects.get(hook=hook)
    assert run.source == "test"


def test_action_through_the_cli_shapes_a_real_token(world, tmp_path: Path):
    path = tmp_path / "action.js"
    path.write_text(ACTION_TIER)
    out = StringIO()

    call_command(
        "hooks",
        "create",
        "-t",
        "credentials-exchange",
        "-n",
        "tier",
        "-p",
        "acme",
        str(path),
        stdout=out,
    )
    call_command("hooks", "enable", "-p", "acme", "tier", stdout=out)
    call_command("hooks", "run", "-p", "acme", "tier", stdout=out)

    assert Hook.objects.get(tenant=world.tenant, name="tier").kind == "action"
    assert "Outcome: ok" in out.getvalue()
    assert '"scope": "read:connections"' in out.getvalue()  # the sample event's grant
    assert world.claims()["https://example.com/tier"] == "gold"
