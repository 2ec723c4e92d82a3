"""``/api/v2/actions/*`` under attack, beyond issue #23's list already in
test_actions_api.py and test_hostile_input.py: another tenant's version
ids under one's own Action, a deploy racing an update, bodies past every
limit (10,000 dependencies, a 1 MB secret, a 5 MB body), secret values
never echoed, and wrong types in the binding refs. Auth0's error body on
each; two tenants side by side."""

import threading
from typing import Any

import pytest

from hooks.models import Action, ActionVersion, TriggerBinding
from tenant.models import AuditEntry
from tests.management.test_actions_api import TRIGGER, TRIGGERS, Api, auth0_error, code_setting

pytestmark = pytest.mark.django_db(transaction=True)

SECRET_VALUE = "attack-api-secret-7d2e"


def test_another_tenants_version_is_not_reachable_through_ones_own_action(acme, globex):
    theirs = Api(globex).create("theirs", code_setting("globex"))
    deployed = Api(globex)("POST", f"actions/actions/{theirs['id']}/deploy").json()
    api = Api(acme)
    mine = api.create("mine", code_setting("acme"))
    before = ActionVersion.objects.count()
    auth0_error(api("GET", f"actions/actions/{mine['id']}/versions/{deployed['id']}"), 404)
    auth0_error(api("POST", f"actions/actions/{mine['id']}/versions/{deployed['id']}/deploy"), 404)
    auth0_error(api("POST", f"actions/actions/{theirs['id']}/test", {"payload": {}}), 404)
    auth0_error(api("PATCH", f"actions/actions/{theirs['id']}", {"code": "// x"}), 404)
    auth0_error(api("DELETE", f"actions/actions/{theirs['id']}"), 404)
    assert ActionVersion.objects.count() == before
    assert Action.objects.get(public_id=theirs["id"]).code == code_setting("globex")


def test_a_deploy_racing_an_update_deploys_one_whole_draft(acme):
    api = Api(acme)
    action = api.create("race", code_setting("v0"))
    answers: list[tuple[str, Any]] = []

    def update(n: int) -> None:
        response = api("PATCH", f"actions/actions/{action['id']}", {"code": code_setting(f"v{n}")})
        answers.append(("update", response.status_code))

    def deploy() -> None:
        response = api("POST", f"actions/actions/{action['id']}/deploy")
        answers.append(("deploy", response.status_code))

    for n in range(1, 6):
        threads = [threading.Thread(target=update, args=(n,)), threading.Thread(target=deploy)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert {status for _, status in answers} <= {200, 409}, answers
    codes = {code_setting(f"v{n}") for n in range(6)}
    for version in ActionVersion.objects.filter(action__public_id=action["id"]):
        assert version.code in codes
    final = api("GET", f"actions/actions/{action['id']}").json()
    deployed = final.get("deployed_version") or {}
    assert final["all_changes_deployed"] == (deployed.get("code") == final["code"])


def test_bodies_past_every_limit_are_auth0_errors_and_write_nothing(acme, globex):
    api = Api(acme)
    base = {"name": "big", "code": code_setting("x"), "supported_triggers": TRIGGERS}
    deps = [{"name": f"d{i}", "version": "1.0.0"} for i in range(10_000)]
    auth0_error(api("POST", "actions/actions", {**base, "dependencies": deps}), 400)
    secret = [{"name": "BIG", "value": "v" * 1_000_000}]
    error = auth0_error(api("POST", "actions/actions", {**base, "secrets": secret}), 400)
    assert "vvvvvvvvvv" not in error["message"]
    names = [{"name": f"S{i}", "value": "v"} for i in range(10_000)]
    auth0_error(api("POST", "actions/actions", {**base, "secrets": names}), 400)
    huge = api("POST", "actions/actions", {**base, "code": "// " + "x" * 5_000_000})
    assert huge.status_code in (400, 413), huge.text
    assert huge.json()["statusCode"] == huge.status_code
    assert not Action.objects.exists()


def test_a_secret_value_is_never_in_an_answer_or_an_audit_row(acme):
    api = Api(acme)
    secrets = [{"name": "KEY", "value": SECRET_VALUE}]
    created = api.create("s", code_setting("x"), secrets=secrets)
    answers = [
        created,
        api("GET", f"actions/actions/{created['id']}").json(),
        api("PATCH", f"actions/actions/{created['id']}", {"secrets": secrets}).json(),
        api("POST", f"actions/actions/{created['id']}/deploy").json(),
        api("GET", f"actions/actions/{created['id']}/versions").json(),
        api("GET", "actions/actions").json(),
    ]
    for answer in answers:
        assert SECRET_VALUE not in str(answer)
    assert SECRET_VALUE not in str(list(AuditEntry.objects.values()))


@pytest.mark.parametrize(
    ("bindings", "status"),
    [
        ([{"ref": "a"}], 400),
        ([{"ref": {"type": "action_id", "value": ["x"]}}], 400),
        ([{"ref": {"type": "action_name", "value": "a"}, "display_name": {"x": 1}}], 400),
        ([{"ref": {"type": "action_name", "value": "a"}, "display_name": "d" * 10_000}], 400),
        ([{"ref": {"type": "action_name", "value": "a"}, "display_name": "a\nb\x00"}], 400),
        ([None], 400),
        ("x" * 1000, 400),
        # A number is read as its text (as every string field of the API
        # reads it), then not found; an unknown binding id is not found.
        ([{"ref": {"type": "action_id", "value": 5}}], 404),
        ([{"ref": {"type": "binding_id", "value": "a"}}], 404),
    ],
)
def test_wrong_binding_refs_are_auth0_errors_and_write_nothing(acme, globex, bindings, status):
    api = Api(acme)
    action = api.create("a", code_setting("x"))
    api("POST", f"actions/actions/{action['id']}/deploy")
    theirs = Api(globex).create("a", code_setting("g"))
    Api(globex)("POST", f"actions/actions/{theirs['id']}/deploy")
    response = api("PATCH", f"actions/triggers/{TRIGGER}/bindings", {"bindings": bindings})
    auth0_error(response, status)
    assert len(response.text) < 2000
    assert not TriggerBinding.objects.exists()
