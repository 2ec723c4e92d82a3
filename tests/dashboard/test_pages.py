"""The dashboard's pages and actions, through Django's test client."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from clients.models import Client, ClientGrant
from hooks.models import Hook
from hooks.services import hook_create, hook_save_script
from tenant.services import tenant_add_member
from tests.dashboard.conftest import (
    ENABLED_SECOND,
    SEED_SCRIPT,
    TenantWorld,
    make_admin,
    record_token_error,
)
from tests.factories import TEST_ACTOR, make_api, make_tenant

pytestmark = pytest.mark.django_db


def login(user: User) -> HttpClient:
    http = HttpClient()
    http.force_login(user)
    return http


def messages_of(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in response.context["messages"]]


def test_hs256_api_shows_its_signing_secret_once(world_a: TenantWorld):
    http = login(world_a.admin)
    response = http.post(
        reverse("admin:apis_api_add"),
        {
            "tenant": world_a.tenant.pk,
            "name": "Symmetric",
            "identifier": "https://hs.alpha.test/",
            "signing_alg": "HS256",
            "token_lifetime": 3600,
            "scopes-TOTAL_FORMS": 1,
            "scopes-INITIAL_FORMS": 0,
            "scopes-0-value": "read:hs",
            "scopes-0-description": "Read",
        },
    )
    assert response.status_code == 302
    shown = login(world_a.admin).get(response["Location"])
    assert shown.status_code == 200
    assert "secret-gone" in shown.content.decode()  # another session never sees it
    shown = http.get(response["Location"])
    assert len(shown.context["secret"]) >= 43
    assert "no-store" in shown["Cache-Control"]
    assert shown.context["secret"] not in http.get(response["Location"]).content.decode()
    api = shown.context["api"]
    assert [s.value for s in api.scopes.all()] == ["read:hs"]
    assert api.signing_secret_encrypted


def test_rotate_secret_shows_the_new_secret_once(world_a: TenantWorld):
    before = Client.objects.get(pk=world_a.client.pk).client_secret
    url = reverse("admin:clients_client_rotate_secret", args=[world_a.client.pk])
    http = login(world_a.admin)
    assert "Rotate secret" in http.get(url).content.decode()
    response = http.post(url)
    assert response.status_code == 302
    assert Client.objects.get(pk=world_a.client.pk).client_secret != before
    shown = http.get(response["Location"])
    assert "no-store" in shown["Cache-Control"]
    assert shown.context["secret"] in shown.content.decode()
    assert shown.context["created"] is False


def test_grant_refuses_scopes_of_another_api(world_a: TenantWorld):
    other = make_api(world_a.tenant, "https://other.alpha.test/", scopes=["other:scope"])
    foreign_scope = other.scopes.get()
    response = login(world_a.admin).post(
        reverse("admin:clients_clientgrant_change", args=[world_a.grant.pk]),
        {"scopes": [foreign_scope.pk]},
    )
    assert response.status_code == 200
    assert foreign_scope not in response.context["adminform"].form.fields["scopes"].queryset
    assert list(world_a.grant.scopes.values_list("value", flat=True)) == ["read:data"]


def test_grant_change_sets_scopes(world_a: TenantWorld):
    write = world_a.api.scopes.get(value="write:data")
    response = login(world_a.admin).post(
        reverse("admin:clients_clientgrant_change", args=[world_a.grant.pk]),
        {"scopes": [write.pk]},
    )
    assert response.status_code == 302
    assert list(world_a.grant.scopes.values_list("value", flat=True)) == ["write:data"]


def test_grant_add_uses_the_chosen_apis_scopes(world_a: TenantWorld):
    other = make_api(
        world_a.tenant, "https://other.alpha.test/", scopes=["other:scope", "other:write"]
    )
    response = login(world_a.admin).post(
        reverse("admin:clients_clientgrant_add"),
        {
            "client": world_a.client.pk,
            "api": other.pk,
            "scopes": [other.scopes.get(value="other:write").pk],
        },
    )
    assert response.status_code == 302
    grant = ClientGrant.objects.get(client=world_a.client, api=other)
    assert list(grant.scopes.values_list("value", flat=True)) == ["other:write"]


def test_secret_can_be_replaced_and_deleted(world_a: TenantWorld):
    http = login(world_a.admin)
    set_url = reverse("admin:hooks_hook_secret_set", args=[world_a.hook.pk])
    first = http.post(set_url, {"name": "TOKEN", "value": "one"}, follow=True)
    assert "Added secret TOKEN." in messages_of(first)
    second = http.post(set_url, {"name": "TOKEN", "value": "two"}, follow=True)
    assert "Replaced secret TOKEN." in messages_of(second)
    assert world_a.hook.secrets.count() == 1
    delete_url = reverse("admin:hooks_hook_secret_delete", args=[world_a.hook.pk, "TOKEN"])
    deleted = http.post(delete_url, follow=True)
    assert "Deleted secret TOKEN." in messages_of(deleted)
    assert not world_a.hook.secrets.exists()


def test_invalid_secret_name_is_refused(world_a: TenantWorld):
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_secret_set", args=[world_a.hook.pk]),
        {"name": "has space", "value": "x"},
        follow=True,
    )
    assert any(m.startswith("Secret name:") for m in messages_of(response))
    assert not world_a.hook.secrets.exists()


def test_version_diff_and_restore(world_a: TenantWorld):
    hook_save_script(
        hook=world_a.hook, script="// version two\n" + SEED_SCRIPT, base_version=1, actor=TEST_ACTOR
    )
    http = login(world_a.admin)
    diff = http.get(reverse("admin:hooks_hook_version_diff", args=[world_a.hook.pk, 1]))
    assert diff.status_code == 200
    assert "version&nbsp;two" in diff.content.decode()  # HtmlDiff escapes spaces
    restored = http.post(
        reverse("admin:hooks_hook_version_restore", args=[world_a.hook.pk, 1]),
        {"base_version": 2},
        follow=True,
    )
    assert "Restored version 1 as version 3." in messages_of(restored)
    world_a.hook.refresh_from_db()
    assert (world_a.hook.version, world_a.hook.script) == (3, SEED_SCRIPT)


def test_change_form_with_stale_version_keeps_the_users_text(world_a: TenantWorld):
    hook_save_script(
        hook=world_a.hook, script="// theirs\n" + SEED_SCRIPT, base_version=1, actor=TEST_ACTOR
    )
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_change", args=[world_a.hook.pk]),
        {"script": "// mine\n" + SEED_SCRIPT, "base_version": 1},
    )
    assert response.status_code == 200
    assert "changed by someone else" in response.content.decode()
    assert "// mine" in response.content.decode()
    world_a.hook.refresh_from_db()
    assert world_a.hook.script.startswith("// theirs")


def test_change_form_refuses_a_syntax_error_with_its_position(world_a: TenantWorld):
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_change", args=[world_a.hook.pk]),
        {"script": "module.exports = function( {\n", "base_version": 1},
    )
    assert response.status_code == 200
    assert "line 1" in response.content.decode().lower() or "line" in str(
        response.context["adminform"].form.errors
    )
    world_a.hook.refresh_from_db()
    assert world_a.hook.version == 1


def test_first_hook_added_in_dashboard_is_enabled_later_ones_not(world_a: TenantWorld):
    tenant = make_tenant("fresh")
    tenant_add_member(tenant=tenant, user=world_a.admin, actor=TEST_ACTOR)
    http = login(world_a.admin)
    for name in ("first", "second"):
        response = http.post(
            reverse("admin:hooks_hook_add"),
            {
                "tenant": tenant.pk,
                "name": name,
                "trigger_id": "credentials-exchange",
                "script": SEED_SCRIPT,
            },
        )
        assert response.status_code == 302
    enabled = dict(Hook.objects.filter(tenant=tenant).values_list("name", "enabled"))
    assert enabled == {"first": True, "second": False}


def test_enable_action_refuses_two_hooks_of_one_point(world_a: TenantWorld):
    second = hook_create(tenant=world_a.tenant, name="second", script=SEED_SCRIPT, actor=TEST_ACTOR)
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_changelist"),
        {"action": "enable_hooks", "_selected_action": [world_a.hook.pk, second.pk]},
        follow=True,
    )
    assert any("only one hook per extensibility point" in m.lower() for m in messages_of(response))


def test_enable_action_says_which_hook_it_disabled(world_a: TenantWorld):
    second = hook_create(tenant=world_a.tenant, name="second", script=SEED_SCRIPT, actor=TEST_ACTOR)
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_changelist"),
        {"action": "enable_hooks", "_selected_action": [second.pk]},
        follow=True,
    )
    assert ENABLED_SECOND in messages_of(response)


def test_hook_list_groups_by_point_and_marks_the_enabled_one(world_a: TenantWorld):
    hook_create(tenant=world_a.tenant, name="second", script=SEED_SCRIPT, actor=TEST_ACTOR)
    page = login(world_a.admin).get(reverse("admin:hooks_hook_changelist")).content.decode()
    assert "Client Credentials Exchange" in page
    assert "● enabled" in page


def test_switcher_lists_the_users_tenants(world_a: TenantWorld, world_b: TenantWorld):
    both = make_admin("both", world_a.tenant, world_b.tenant)
    http = login(both)
    page = http.get(reverse("admin:tenant_landing", args=["bravo"])).content.decode()
    assert 'id="tessera-tenant-switcher"' in page
    assert reverse("admin:tenant_landing", args=["alpha"]) in page
    selected = f'<option value="{reverse("admin:tenant_landing", args=["bravo"])}" selected>'
    assert selected in page


def test_single_tenant_user_has_no_switcher(world_a: TenantWorld, world_b: TenantWorld):
    page = login(world_a.admin).get(reverse("admin:index")).content.decode()
    assert 'id="tessera-tenant-switcher"' not in page
    assert "Bravo" not in page


def test_landing_lists_token_errors_but_not_test_runs(world_a: TenantWorld):
    http = login(world_a.admin)
    http.post(
        reverse("admin:hooks_hook_run", args=[world_a.hook.pk]),
        {
            "script": "module.exports = function(c, s, a, x, cb) { throw new Error('kaput'); };",
            "payload": "{}",
        },
    )
    record_token_error(world_a, "Error: from a real token request")
    page = http.get(reverse("admin:tenant_landing", args=["alpha"])).content.decode()
    assert "from a real token request" in page
    assert "kaput" not in page  # a test run is not an incident


@pytest.mark.parametrize(
    ("minutes", "reads"),
    [(0, "just now"), (3.1, "3 minutes ago"), (-3.1, "in 3 minutes"), (60 * 26, "1 day ago")],
)
def test_times_read_relative_with_the_exact_time_on_hover(minutes, reads):
    value = timezone.now() - timedelta(minutes=minutes)
    html = Template("{% load tessera %}{{ value|when }}").render(Context({"value": value}))
    exact = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    assert f'datetime="{value.isoformat()}"' in html
    assert f'title="{exact}' in html
    assert html.endswith(f">{reads}</time>"), html
