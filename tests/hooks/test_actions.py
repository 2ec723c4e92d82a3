"""Actions as first-class objects and the credentials-exchange flow, through
the services and the real token endpoint (SPEC §4 "Actions format")."""

import json
import time
from datetime import UTC, datetime

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from hooks.action_services import (
    ActionNameTaken,
    ActionNotBuilt,
    ActionStillBound,
    BindingRefused,
    BindingSpec,
    SecretSpec,
    action_create,
    action_delete,
    action_deploy,
    action_rollback,
    action_update,
    bindings_replace,
)
from hooks.models import Action, ActionVersion, HookRun, TriggerBinding
from hooks.run_log import RunRecord, _write
from hooks.services import hook_create
from tenant.models import AuditEntry
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

AUD = "https://api.example.test/"
TRIGGER = "credentials-exchange"


def claim_action(name: str, value: str) -> str:
    """An Action that sets https://example.com/<name> and records what it saw."""
    return f"""exports.onExecuteCredentialsExchange = async (event, api) => {{
  api.accessToken.setCustomClaim('https://example.com/{name}', {json.dumps(value)});
  api.accessToken.setCustomClaim('https://example.com/seen-by-{name}',
    Object.keys(event.accessToken.customClaims).sort().join(','));
  api.accessToken.setCustomClaim('https://example.com/last', {json.dumps(value)});
}};
"""


DENY = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.access.deny('invalid_request', 'No tokens for ' + event.client.name);
};
"""
SECRET_CLAIM = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/key', event.secrets.KEY);
};
"""


@pytest.fixture
def tenants():
    acme, other = make_tenant("acme"), make_tenant("other")
    clients = {}
    for tenant in (acme, other):
        api = make_api(tenant, AUD, scopes=["read:data"])
        clients[tenant.slug] = make_client(tenant, {api: ["read:data"]})
    return acme, other, clients


def token(tenant, client_and_secret):
    client, secret = client_and_secret
    return HttpClient().post(
        f"/{tenant.slug}/oauth/token",
        json.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": secret,
                "audience": AUD,
            }
        ),
        content_type="application/json",
    )


def results_of(tenant) -> list[dict]:
    """The per-Action results of the tenant's one flow execution."""
    run = HookRun.objects.get(tenant=tenant, execution_id__startswith="ex_")
    assert run.hook is None and isinstance(run.results, list)
    return run.results


def claims_of(response) -> dict:
    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


def deployed(tenant, name, code, **kwargs):
    action = action_create(tenant=tenant, name=name, code=code, actor=TEST_ACTOR, **kwargs)
    action_deploy(action=action, actor=TEST_ACTOR)
    return action


def bind(tenant, *actions):
    return bindings_replace(
        tenant=tenant,
        trigger_id=TRIGGER,
        bindings=[BindingSpec(action, action.name) for action in actions],
        actor=TEST_ACTOR,
    )


# ---- the objects -----------------------------------------------------------------------


def test_create_builds_the_draft(tenants):
    acme, _, _ = tenants
    action = action_create(tenant=acme, name="a", code=claim_action("a", "1"), actor=TEST_ACTOR)
    assert (action.status, action.build_errors, action.runtime) == ("built", [], "node22")
    assert action.built_at is not None


def test_code_that_does_not_compile_fails_the_build_with_its_error(tenants):
    acme, _, _ = tenants
    action = action_create(tenant=acme, name="a", code="exports.x = (;", actor=TEST_ACTOR)
    assert action.status == "failed"
    assert "Syntax error at line 1" in action.build_errors[0]["msg"]
    with pytest.raises(ActionNotBuilt, match="must be in the 'built' state"):
        action_deploy(action=action, actor=TEST_ACTOR)
    assert not ActionVersion.objects.exists()


def test_a_hook_function_is_not_an_action(tenants):
    acme, _, _ = tenants
    code = "module.exports = function(c, s, a, ctx, cb) { cb(null, {}); };"
    action = action_create(tenant=acme, name="a", code=code, actor=TEST_ACTOR)
    assert action.status == "failed"
    assert "onExecuteCredentialsExchange" in action.build_errors[0]["msg"]


def test_names_are_unique_per_tenant_only(tenants):
    acme, other, _ = tenants
    action_create(tenant=acme, name="same", code=DENY, actor=TEST_ACTOR)
    action_create(tenant=other, name="same", code=DENY, actor=TEST_ACTOR)
    with pytest.raises(ActionNameTaken):
        action_create(tenant=acme, name="same", code=DENY, actor=TEST_ACTOR)
    with pytest.raises(IntegrityError), transaction.atomic():
        Action.objects.create(tenant=acme, name="same", trigger_id=TRIGGER)


def test_unknown_trigger_and_runtime_are_refused(tenants):
    acme, _, _ = tenants
    with pytest.raises(ValidationError):
        action_create(tenant=acme, name="a", code=DENY, actor=TEST_ACTOR, trigger_id="post-login")
    with pytest.raises(ValidationError):
        action_create(tenant=acme, name="a", code=DENY, actor=TEST_ACTOR, runtime="node8")
    assert not Action.objects.exists()


# Long enough that no random client id or ciphertext holds it by chance: "v1" did in CI.
PLAIN_SECRET = "plain-secret-value-0123456789"


def test_secrets_are_encrypted_and_limited(tenants):
    acme, _, _ = tenants
    action = action_create(
        tenant=acme,
        name="a",
        code=SECRET_CLAIM,
        actor=TEST_ACTOR,
        secrets=[SecretSpec("KEY", PLAIN_SECRET)],
    )
    assert PLAIN_SECRET not in action.secrets.get().value_encrypted
    with pytest.raises(ValidationError, match="at most 30 secrets"):
        action_update(
            action=action, actor=TEST_ACTOR, secrets=[SecretSpec(f"S{i}", "x") for i in range(31)]
        )
    with pytest.raises(ValidationError, match="at most 4096"):
        action_update(action=action, actor=TEST_ACTOR, secrets=[SecretSpec("KEY", "x" * 4097)])
    with pytest.raises(ValidationError, match="at most 128"):
        action_update(action=action, actor=TEST_ACTOR, secrets=[SecretSpec("K" * 129, "x")])
    action_update(
        action=action,
        actor=TEST_ACTOR,
        secrets=[SecretSpec("KEY", "x" * 4096), SecretSpec("K" * 128, "x")],
    )
    action_update(action=action, actor=TEST_ACTOR, secrets=[SecretSpec("KEY", None)])
    assert list(action.secrets.values_list("name", flat=True)) == ["KEY"]
    assert not any(
        PLAIN_SECRET in json.dumps([e.before, e.after]) for e in AuditEntry.objects.all()
    )


def test_deploy_makes_numbered_immutable_versions(tenants):
    acme, _, _ = tenants
    action = deployed(acme, "a", claim_action("a", "1"))
    action_update(action=action, actor=TEST_ACTOR, code=claim_action("a", "2"))
    second = action_deploy(action=action, actor=TEST_ACTOR)
    versions = list(action.versions.order_by("number").values_list("number", "deployed"))
    assert versions == [(1, False), (2, True)]
    assert '"2"' in second.code
    with pytest.raises(IntegrityError), transaction.atomic():
        ActionVersion.objects.filter(number=1).update(deployed=True)


def test_deploying_an_unchanged_draft_makes_no_new_version(tenants):
    acme, _, _ = tenants
    action = deployed(acme, "a", SECRET_CLAIM, secrets=[SecretSpec("KEY", "one")])
    assert action_deploy(action=action, actor=TEST_ACTOR).number == 1
    action_update(action=action, actor=TEST_ACTOR, secrets=[SecretSpec("KEY", "two")])
    assert action_deploy(action=action, actor=TEST_ACTOR).number == 2
    action_update(action=action, actor=TEST_ACTOR, code=SECRET_CLAIM)  # the same code
    assert action_deploy(action=action, actor=TEST_ACTOR).number == 2
    verbs = AuditEntry.objects.filter(tenant=acme, object_type="action").values_list(
        "action", flat=True
    )
    assert list(verbs.order_by("id")) == ["create", "deploy", "update", "deploy"]


def test_an_action_keeps_auth0s_50_versions_deleting_the_oldest(tenants):
    acme, other, _ = tenants
    theirs = deployed(other, "a", SECRET_CLAIM, secrets=[SecretSpec("KEY", "0")])
    action = deployed(acme, "a", SECRET_CLAIM, secrets=[SecretSpec("KEY", "0")])
    for i in range(1, 52):  # a secret change needs no build: 52 versions in all
        action_update(action=action, actor=TEST_ACTOR, secrets=[SecretSpec("KEY", str(i))])
        action_deploy(action=action, actor=TEST_ACTOR)
    numbers = list(action.versions.order_by("number").values_list("number", flat=True))
    assert numbers == list(range(3, 53))
    assert action.versions.get(deployed=True).number == 52
    rolled = action_rollback(action=action, version=action.versions.get(number=3), actor=TEST_ACTOR)
    assert rolled.number == 53 and action.versions.count() == 50
    assert not action.versions.filter(number=3).exists()  # the oldest went, even rolled back to
    assert list(theirs.versions.values_list("number", flat=True)) == [1]
    last = AuditEntry.objects.filter(tenant=acme, object_type="action").latest("id")
    assert last.after is not None and last.after["deleted_versions"] == [3]


def test_a_tenant_has_at_most_auth0s_100_actions(tenants):
    acme, other, _ = tenants
    Action.objects.bulk_create(
        Action(tenant=acme, name=f"a{i}", trigger_id=TRIGGER, code=DENY) for i in range(99)
    )
    action_create(tenant=acme, name="a99", code=DENY, actor=TEST_ACTOR)
    with pytest.raises(ValidationError, match="at most 100 actions"):
        action_create(tenant=acme, name="a100", code=DENY, actor=TEST_ACTOR)
    action_create(tenant=other, name="a100", code=DENY, actor=TEST_ACTOR)  # per tenant
    assert Action.objects.filter(tenant=acme).count() == 100


# ---- the flow ---------------------------------------------------------------------------


def test_no_hook_and_no_binding_gives_the_plain_token(tenants):
    acme, _, clients = tenants
    action_create(tenant=acme, name="a", code=DENY, actor=TEST_ACTOR)  # not bound: not run
    claims = claims_of(token(acme, clients["acme"]))
    assert claims["scope"] == "read:data" and not [k for k in claims if k.startswith("https")]


def test_bound_actions_run_in_binding_order_and_the_later_claim_wins(tenants):
    acme, other, clients = tenants
    first, second = deployed(acme, "first", claim_action("one", "1")), None
    second = deployed(acme, "second", claim_action("two", "2"))
    bind(acme, first, second)
    claims = claims_of(token(acme, clients["acme"]))
    assert claims["https://example.com/one"] == "1" and claims["https://example.com/two"] == "2"
    assert claims["https://example.com/last"] == "2"
    assert claims["https://example.com/seen-by-one"] == ""
    assert claims["https://example.com/seen-by-two"] == (
        "https://example.com/last,https://example.com/one,https://example.com/seen-by-one"
    )
    bind(acme, second, first)
    assert claims_of(token(acme, clients["acme"]))["https://example.com/last"] == "1"
    # The other tenant's flow is its own: empty.
    assert "https://example.com/last" not in claims_of(token(other, clients["other"]))


def test_the_enabled_hook_runs_first_and_actions_see_its_claims(tenants):
    acme, _, clients = tenants
    hook_create(
        tenant=acme,
        name="hook",
        script="module.exports = function(c, s, a, ctx, cb) {"
        " cb(null, {scope: s.concat(['extra']), 'https://example.com/last': 'hook',"
        " 'https://example.com/hook': 'yes'}); };",
        enabled=True,
        actor=TEST_ACTOR,
    )
    bind(acme, deployed(acme, "a", claim_action("a", "action")))
    claims = claims_of(token(acme, clients["acme"]))
    assert claims["https://example.com/hook"] == "yes"
    assert claims["https://example.com/last"] == "action"
    assert "https://example.com/hook" in claims["https://example.com/seen-by-a"]
    assert claims["scope"] == "read:data extra"


def test_deny_stops_the_flow_and_answers_the_request(tenants):
    acme, _, clients = tenants
    marker = deployed(acme, "after", claim_action("after", "x"))
    bind(acme, deployed(acme, "deny", DENY), marker)
    response = token(acme, clients["acme"])
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "No tokens for svc"}
    results = results_of(acme)
    assert [r["action_name"] for r in results] == ["deny"]
    assert HookRun.objects.get(tenant=acme).outcome == "error"
    assert "No tokens for svc" in results[0]["error"]["msg"]


def test_a_draft_is_not_live_until_deployed(tenants):
    acme, _, clients = tenants
    action = deployed(acme, "a", claim_action("a", "v1"))
    bind(acme, action)
    action_update(action=action, actor=TEST_ACTOR, code=claim_action("a", "v2"))
    assert claims_of(token(acme, clients["acme"]))["https://example.com/a"] == "v1"
    action_deploy(action=action, actor=TEST_ACTOR)
    assert claims_of(token(acme, clients["acme"]))["https://example.com/a"] == "v2"


def test_a_secret_change_takes_a_deploy(tenants):
    acme, _, clients = tenants
    action = deployed(acme, "a", SECRET_CLAIM, secrets=[SecretSpec("KEY", "old")])
    bind(acme, action)
    action_update(action=action, actor=TEST_ACTOR, secrets=[SecretSpec("KEY", "new")])
    assert claims_of(token(acme, clients["acme"]))["https://example.com/key"] == "old"
    action_deploy(action=action, actor=TEST_ACTOR)
    assert claims_of(token(acme, clients["acme"]))["https://example.com/key"] == "new"


def test_rollback_deploys_an_old_version_as_a_new_one(tenants):
    acme, _, clients = tenants
    action = deployed(acme, "a", claim_action("a", "v1"))
    bind(acme, action)
    action_update(action=action, actor=TEST_ACTOR, code=claim_action("a", "v2"))
    action_deploy(action=action, actor=TEST_ACTOR)
    third = action_rollback(action=action, version=action.versions.get(number=1), actor=TEST_ACTOR)
    assert (third.number, third.deployed) == (3, True)
    assert claims_of(token(acme, clients["acme"]))["https://example.com/a"] == "v1"
    action.refresh_from_db()
    assert '"v2"' in action.code  # the draft is left alone


def test_one_deadline_covers_the_whole_flow(tenants):
    acme, _, clients = tenants
    acme.hook_timeout_ms = 1000
    acme.save()
    slow = """exports.onExecuteCredentialsExchange = async (event, api) => {
  await new Promise((resolve) => setTimeout(resolve, 700));
};
"""
    bind(acme, deployed(acme, "slow1", slow), deployed(acme, "slow2", slow))
    start = time.monotonic()
    response = token(acme, clients["acme"])
    assert response.status_code == 500 and "time" in response.json()["error_description"]
    assert time.monotonic() - start < 1.6
    assert [r["outcome"] for r in results_of(acme)] == ["ok", "timeout"]


def test_the_run_log_has_one_execution_with_a_result_per_action(tenants):
    acme, _, clients = tenants
    bind(
        acme,
        deployed(acme, "a", claim_action("a", "1")),
        deployed(acme, "b", claim_action("b", "2")),
    )
    claims_of(token(acme, clients["acme"]))
    assert HookRun.objects.get(tenant=acme).outcome == "ok"
    assert [(r["action_name"], r["version_number"], r["outcome"]) for r in results_of(acme)] == [
        ("a", 1, "ok"),
        ("b", 1, "ok"),
    ]


# ---- bindings and deletes -----------------------------------------------------------


def test_bindings_refuse_another_tenants_action_and_write_nothing(tenants):
    acme, other, _ = tenants
    mine = deployed(acme, "mine", DENY)
    bind(acme, mine)
    theirs = deployed(other, "theirs", DENY)
    with pytest.raises(BindingRefused, match="does not exist"):
        bind(acme, theirs)
    assert list(
        TriggerBinding.objects.filter(tenant=acme).values_list("action__name", flat=True)
    ) == ["mine"]


def test_bindings_refuse_more_than_twenty_and_undeployed_actions(tenants):
    acme, _, _ = tenants
    actions = [deployed(acme, f"a{i}", DENY) for i in range(21)]
    with pytest.raises(BindingRefused, match="at most 20"):
        bind(acme, *actions)
    draft = action_create(tenant=acme, name="draft", code=DENY, actor=TEST_ACTOR)
    with pytest.raises(BindingRefused, match="must be deployed"):
        bind(acme, draft)
    with pytest.raises(BindingRefused, match="bound twice"):
        bind(acme, actions[0], actions[0])
    assert not TriggerBinding.objects.exists()
    bind(acme, *actions[:20])
    assert TriggerBinding.objects.count() == 20


def test_deleting_a_bound_action_needs_force_which_unbinds_it(tenants):
    acme, _, clients = tenants
    keep, gone = deployed(acme, "keep", claim_action("keep", "k")), deployed(acme, "gone", DENY)
    bind(acme, gone, keep)
    with pytest.raises(ActionStillBound):
        action_delete(action=gone, actor=TEST_ACTOR)
    assert token(acme, clients["acme"]).status_code == 400
    action_delete(action=gone, actor=TEST_ACTOR, force=True)
    assert not Action.objects.filter(name="gone").exists()
    assert claims_of(token(acme, clients["acme"]))["https://example.com/keep"] == "k"
    assert list(TriggerBinding.objects.values_list("position", flat=True)) == [0]


def test_every_write_deploy_and_binding_change_is_audited(tenants):
    acme, _, _ = tenants
    action = deployed(acme, "a", SECRET_CLAIM, secrets=[SecretSpec("KEY", "hidden-value")])
    bind(acme, action)
    action_update(action=action, actor=TEST_ACTOR, code=SECRET_CLAIM + "\n")
    action_rollback(action=action, version=action.versions.get(number=1), actor=TEST_ACTOR)
    action_delete(action=action, actor=TEST_ACTOR, force=True)
    actions = list(
        AuditEntry.objects.filter(tenant=acme).order_by("id").values_list("action", flat=True)
    )
    assert actions[-7:] == [
        "create",
        "deploy",
        "bindings.replace",
        "update",
        "rollback v1",
        "bindings.replace",
        "delete",
    ]
    assert "hidden-value" not in json.dumps(list(AuditEntry.objects.values_list("before", "after")))


def test_flow_executions_are_stored_in_batches_too(tenants):
    """The background writer's batch path (COPY on PostgreSQL) keeps the
    per-Action results, text made storable."""
    acme, _, _ = tenants
    records = [
        RunRecord(
            tenant_id=acme.pk,
            hook_id=None,
            hook_version=None,
            source="token",
            started_at=datetime.now(UTC),
            duration_ms=1.0,
            outcome="ok",
            console="",
            error="",
            execution_id=f"ex_batch{i}",
            results=[{"action_name": "a", "logs": "nul\x00 and \ud800"}],
        )
        for i in range(3)
    ]
    _write(records)
    stored = HookRun.objects.filter(execution_id__startswith="ex_batch").order_by("execution_id")
    assert [(run.results or [{}])[0].get("logs") for run in stored] == ["nul\ufffd and \ufffd"] * 3


def test_a_warm_flow_token_request_only_logs_its_execution(tenants, settings):
    """Bindings and deployed versions are memoised like the enabled hook: a
    warm request with a bound Action writes its run record and reads nothing;
    a deploy reaches the next request."""
    settings.TESSERA_CONFIG_MAX_STALENESS = 60  # no inline generation re-read
    acme, _, clients = tenants
    action = deployed(acme, "a", claim_action("a", "v1"))
    bind(acme, action)
    token(acme, clients["acme"])
    with CaptureQueriesContext(connection) as queries:
        assert claims_of(token(acme, clients["acme"]))["https://example.com/a"] == "v1"
    assert [q["sql"].split()[0] for q in queries] == ["INSERT"]
    assert "hooks_hookrun" in queries[0]["sql"]
    action_update(action=action, actor=TEST_ACTOR, code=claim_action("a", "v2"))
    action_deploy(action=action, actor=TEST_ACTOR)
    assert claims_of(token(acme, clients["acme"]))["https://example.com/a"] == "v2"


def test_api_cache_lasts_across_requests_per_action(tenants):
    acme, other, clients = tenants
    counter = """exports.onExecuteCredentialsExchange = async (event, api) => {
  const seen = api.cache.get('n');
  const n = seen ? Number(seen.value) + 1 : 1;
  api.cache.set('n', String(n));
  api.accessToken.setCustomClaim('https://example.com/%s', n);
};
"""
    bind(acme, deployed(acme, "a", counter % "a"), deployed(acme, "b", counter % "b"))
    bind(other, deployed(other, "a", counter % "a"))
    claims_of(token(acme, clients["acme"]))
    claims = claims_of(token(acme, clients["acme"]))
    assert (claims["https://example.com/a"], claims["https://example.com/b"]) == (2, 2)
    assert claims_of(token(other, clients["other"]))["https://example.com/a"] == 1


def test_the_flow_is_the_same_in_either_isolation_mode(tenants, isolation):
    acme, _, clients = tenants
    acme.hook_timeout_ms = 1000
    acme.save()
    looping = (
        """exports.onExecuteCredentialsExchange = async (event, api) => { while (true) {} };"""
    )
    first, second = deployed(acme, "one", claim_action("one", "1")), deployed(acme, "two", DENY)
    bind(acme, first, second)
    assert token(acme, clients["acme"]).json()["error_description"] == "No tokens for svc"
    bind(acme, first, deployed(acme, "loop", looping), second)
    start = time.monotonic()
    assert token(acme, clients["acme"]).status_code == 500
    assert time.monotonic() - start < 2.5
    bind(acme, first)
    assert claims_of(token(acme, clients["acme"]))["https://example.com/one"] == "1"
