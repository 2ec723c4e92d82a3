"""Action deploys, rollbacks and binding changes take the hooks' go-live
check: dry-run on the tenant's recorded requests and clients, refused with
``confirm_failing=False`` only for a regression, never refused by default
(the Management API's behaviour), the summary always in the audit entry.
Two tenants side by side."""

import json

import jwt
import pytest
from django.test import Client as HttpClient

from hooks.action_services import (
    BindingSpec,
    action_create,
    action_deploy,
    action_rollback,
    action_update,
    bindings_replace,
)
from hooks.dry_run import GoLiveRefused
from hooks.models import ActionVersion
from tenant.models import AuditEntry
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant
from tests.hooks.go_live import BREAKS_BILLING, TRIGGER, tag_code

pytestmark = pytest.mark.django_db

TAGS = tag_code(1)


class Flowing:
    """A tenant whose two clients have called through a bound Action."""

    def __init__(self, slug: str) -> None:
        self.tenant = make_tenant(slug)
        self.audience = f"https://api.{slug}.test/"
        api = make_api(self.tenant, self.audience, scopes=["read:data"])
        self.clients = {
            name: make_client(self.tenant, {api: ["read:data"]}, name=name)
            for name in ("orders", "billing")
        }
        self.action = action_create(tenant=self.tenant, name="tag", code=TAGS, actor=TEST_ACTOR)
        action_deploy(action=self.action, actor=TEST_ACTOR)
        bindings_replace(
            tenant=self.tenant,
            trigger_id=TRIGGER,
            bindings=[BindingSpec(self.action, "tag")],
            actor=TEST_ACTOR,
        )
        for name in self.clients:
            self.claims(name)

    def claims(self, name: str) -> dict:
        client, secret = self.clients[name]
        response = HttpClient().post(
            f"/{self.tenant.slug}/oauth/token",
            json.dumps(
                {
                    "grant_type": "client_credentials",
                    "client_id": client.client_id,
                    "client_secret": secret,
                    "audience": self.audience,
                }
            ),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


@pytest.fixture
def flowing() -> Flowing:
    Flowing("other")  # its traffic must never judge the first tenant's change
    return Flowing("acme")


def test_deploying_a_draft_that_breaks_a_calling_client_is_refused_unconfirmed(flowing):
    action = action_update(action=flowing.action, code=BREAKS_BILLING, actor=TEST_ACTOR)
    with pytest.raises(GoLiveRefused) as caught:
        action_deploy(action=action, actor=TEST_ACTOR, confirm_failing=False)
    billing = flowing.clients["billing"][0].client_id
    assert f"billing ({billing})" in caught.value.messages[0]
    assert "1 recorded request would fail" in caught.value.messages[0]
    assert ActionVersion.objects.filter(action=action).count() == 1
    assert flowing.claims("billing")["https://example.com/a"] == 1
    version = action_deploy(action=action, actor=TEST_ACTOR, confirm_failing=True)
    assert version.number == 2
    entry = AuditEntry.objects.filter(tenant=flowing.tenant, action="deploy").latest("id")
    assert (entry.after or {})["dry_run"]["regressions"] == 1
    assert (entry.after or {})["dry_run"]["confirmed"] is True


def test_the_default_deploy_never_refuses_and_records_the_dry_run(flowing):
    action = action_update(action=flowing.action, code=BREAKS_BILLING, actor=TEST_ACTOR)
    assert action_deploy(action=action, actor=TEST_ACTOR).number == 2
    assert flowing.claims("orders")["https://example.com/a"] == 2


def test_deploying_an_unbound_action_runs_nothing(flowing):
    other = action_create(
        tenant=flowing.tenant, name="spare", code=BREAKS_BILLING, actor=TEST_ACTOR
    )
    assert action_deploy(action=other, actor=TEST_ACTOR, confirm_failing=False).number == 1
    entry = AuditEntry.objects.filter(tenant=flowing.tenant, action="deploy").latest("id")
    assert "skipped" in (entry.after or {})["dry_run"]


def test_a_harmless_deploy_goes_live_unconfirmed(flowing):
    action = action_update(action=flowing.action, code=TAGS + "// v2\n", actor=TEST_ACTOR)
    assert action_deploy(action=action, actor=TEST_ACTOR, confirm_failing=False).number == 2


def test_rolling_back_to_a_breaking_version_is_refused_unconfirmed(flowing):
    action = action_update(action=flowing.action, code=BREAKS_BILLING, actor=TEST_ACTOR)
    action_deploy(action=action, actor=TEST_ACTOR)
    action = action_update(action=action, code=TAGS + "// v3\n", actor=TEST_ACTOR)
    action_deploy(action=action, actor=TEST_ACTOR, confirm_failing=False)
    breaking = action.versions.get(number=2)
    with pytest.raises(GoLiveRefused, match="billing"):
        action_rollback(action=action, version=breaking, actor=TEST_ACTOR, confirm_failing=False)
    assert action_rollback(action=action, version=breaking, actor=TEST_ACTOR).number == 4


def test_binding_a_breaking_action_is_refused_unconfirmed(flowing):
    breaking = action_create(
        tenant=flowing.tenant, name="strict", code=BREAKS_BILLING, actor=TEST_ACTOR
    )
    action_deploy(action=breaking, actor=TEST_ACTOR)
    specs = [BindingSpec(flowing.action, "tag"), BindingSpec(breaking, "strict")]
    with pytest.raises(GoLiveRefused, match="billing"):
        bindings_replace(
            tenant=flowing.tenant,
            trigger_id=TRIGGER,
            bindings=specs,
            actor=TEST_ACTOR,
            confirm_failing=False,
        )
    assert "https://example.com/a" in flowing.claims("billing")
    bindings_replace(
        tenant=flowing.tenant,
        trigger_id=TRIGGER,
        bindings=specs,
        actor=TEST_ACTOR,
        confirm_failing=True,
    )
    entry = AuditEntry.objects.filter(tenant=flowing.tenant, action="bindings.replace").latest("id")
    assert (entry.after or {})["dry_run"]["clients_failing"] == [
        f"billing ({flowing.clients['billing'][0].client_id})"
    ]
