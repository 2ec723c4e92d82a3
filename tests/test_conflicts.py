"""Uniqueness rules live in the services, as typed :class:`Conflict` errors:
what is taken in one tenant is free in another. Each surface says it its own
way (the Management API's 409 is in tests/management/test_conflicts.py)."""

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.urls import reverse

from clients.services import client_grant_create
from hooks.models import Hook
from hooks.services import hook_create, hook_secrets_set, hook_update
from tenant.services import Conflict, tenant_add_member
from tests.factories import SEED_HOOK, TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db


def hook(tenant, name: str) -> Hook:  # type: ignore[no-untyped-def]
    return hook_create(tenant=tenant, name=name, script=SEED_HOOK, actor=TEST_ACTOR)


def test_services_refuse_what_is_taken_in_the_same_tenant_only():
    alpha, beta = make_tenant("alpha"), make_tenant("beta")
    first = hook(alpha, "dup")
    hook(beta, "dup")
    with pytest.raises(Conflict) as error:
        hook(alpha, "dup")
    assert (error.value.messages, error.value.code) == (
        ["Hook with name dup already exists."],
        "hook_conflict",
    )
    with pytest.raises(Conflict):
        hook_update(hook=hook(alpha, "other"), name="dup", actor=TEST_ACTOR)
    hook_update(hook=first, name="dup", actor=TEST_ACTOR)  # its own name is not taken

    hook_secrets_set(hook=first, secrets={"K": "1"}, must_exist=False, actor=TEST_ACTOR)
    with pytest.raises(Conflict, match="Secret already exists: K"):
        hook_secrets_set(hook=first, secrets={"K": "2"}, must_exist=False, actor=TEST_ACTOR)

    make_api(alpha, "https://orders.test/")
    make_api(beta, "https://orders.test/")
    with pytest.raises(Conflict, match="same identifier"):
        make_api(alpha, "https://orders.test/")

    api = alpha.apis.get(identifier="https://orders.test/")
    client, _ = make_client(alpha, {api: ["read:data"]})
    with pytest.raises(Conflict, match="already exists"):
        client_grant_create(client=client, api=api, actor=TEST_ACTOR)


def test_the_cli_says_a_conflict_in_one_line(tmp_path: Path):
    alpha = make_tenant("alpha")
    make_tenant("beta")
    hook(alpha, "dup")
    script = tmp_path / "dup.js"
    script.write_text(SEED_HOOK)
    call_command("hooks", "create", "-n", "dup", "-p", "beta", str(script), stdout=StringIO())
    with pytest.raises(CommandError) as error:
        call_command("hooks", "create", "-n", "dup", "-p", "alpha", str(script), stdout=StringIO())
    assert str(error.value) == "Hook with name dup already exists."


def test_the_dashboard_says_a_taken_name_on_the_form():
    alpha, beta = make_tenant("alpha"), make_tenant("beta")
    hook(alpha, "dup")
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    for tenant in (alpha, beta):
        tenant_add_member(tenant=tenant, user=user, actor=TEST_ACTOR)
    http = HttpClient()
    http.force_login(user)

    def add(tenant) -> int:  # type: ignore[no-untyped-def]
        form = {"tenant": tenant.pk, "name": "dup", "trigger_id": "credentials-exchange"}
        response = http.post(reverse("admin:hooks_hook_add"), {**form, "script": SEED_HOOK})
        if response.status_code == 200:
            assert "A hook with this name already exists." in response.content.decode()
        return response.status_code

    assert add(alpha) == 200  # the form again, with the error on it
    assert add(beta) == 302
    assert sorted(Hook.objects.values_list("tenant__slug", flat=True)) == ["alpha", "beta"]
