"""Deploys racing updates of one Action, and flow edits racing each other,
in threads with their own database connections (SQLite here, PostgreSQL
with ``DATABASE_URL``): versions are numbered without gaps or duplicates,
one is deployed, and each deploy took a whole draft."""

import itertools

import pytest

from hooks.action_services import (
    BindingSpec,
    action_create,
    action_deploy,
    action_update,
    bindings_replace,
)
from hooks.models import Action, ActionVersion, TriggerBinding
from tests.factories import TEST_ACTOR, make_tenant
from tests.test_concurrency import N, all_at_once, unexpected

pytestmark = pytest.mark.django_db(transaction=True)


def code(i: int) -> str:
    return (
        "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
        f"  api.accessToken.setCustomClaim('https://example.com/n', {i});\n"
        "};\n"
    )


def test_deploys_racing_updates_deploy_whole_drafts_in_order():
    tenant = make_tenant("acme")
    other = make_tenant("globex")
    neighbour = action_create(tenant=other, name="a", code=code(-1), actor=TEST_ACTOR)
    action = action_create(tenant=tenant, name="a", code=code(0), actor=TEST_ACTOR)

    def work(i: int):
        if i % 2:
            return action_deploy(action=action, actor=TEST_ACTOR)
        return action_update(action=action, actor=TEST_ACTOR, code=code(i + 1), runtime="node18")

    results = all_at_once(work)
    assert unexpected(results) == []
    versions = list(ActionVersion.objects.filter(action=action).order_by("number"))
    # A deploy of an unchanged draft makes no version: at most one per deploy.
    assert 1 <= len(versions) <= N // 2
    assert [v.number for v in versions] == list(range(1, len(versions) + 1))
    assert [v.number for v in versions if v.deployed] == [len(versions)]
    assert all((a.code, a.runtime) != (b.code, b.runtime) for a, b in itertools.pairwise(versions))
    drafts = {code(0)} | {code(i + 1) for i in range(0, N, 2)}
    for version in versions:
        assert version.code in drafts
        # A draft is deployed whole: the runtime came with the code of that update.
        assert version.runtime == ("node22" if version.code == code(0) else "node18")
    action.refresh_from_db()
    assert action.revision == N // 2 + 1 and action.status == "built"
    assert not neighbour.versions.exists()


def test_flow_edits_at_once_leave_one_whole_flow():
    tenant = make_tenant("acme")
    actions = [
        action_create(tenant=tenant, name=f"a{i}", code=code(i), actor=TEST_ACTOR) for i in range(4)
    ]
    for action in actions:
        action_deploy(action=action, actor=TEST_ACTOR)

    def work(i: int):
        chosen = actions[i % 4 :] + actions[: i % 4]
        return bindings_replace(
            tenant=tenant,
            trigger_id="credentials-exchange",
            bindings=[BindingSpec(a, a.name) for a in chosen],
            actor=TEST_ACTOR,
        )

    assert unexpected(all_at_once(work)) == []
    bound = list(
        TriggerBinding.objects.order_by("position").values_list("action__name", "position")
    )
    assert len(bound) == 4 and [p for _, p in bound] == [0, 1, 2, 3]
    assert Action.objects.count() == 4
