"""The audit trail: every write from the dashboard and the CLI leaves a row
with its actor, source and before → after, and never a secret value. (The
Management API's rows are tested in tests/management/.)"""

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse

from apis.models import Api
from hooks.models import Hook
from tenant.models import AuditEntry, Tenant
from tests.dashboard.conftest import SEED_SCRIPT, TenantWorld
from tests.factories import TEST_ACTOR

SECRET_VALUE = "very-secret-value-7f3a"
NEW_SCRIPT = SEED_SCRIPT.replace("gold", "platinum")


def login(world: TenantWorld) -> HttpClient:
    http = HttpClient()
    http.force_login(world.admin)
    return http


def hook_entries(hook: Hook) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(object_type="hook", object_id=str(hook.pk)).order_by("id")
    )


def no_secret_value_stored() -> bool:
    dumped = json.dumps([[e.before, e.after, e.object_repr] for e in AuditEntry.objects.all()])
    return SECRET_VALUE not in dumped


def fields(value: Any) -> dict[str, Any]:
    """An audit row's before/after, which the test expects to be there."""
    assert isinstance(value, dict)
    return value


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- dashboard ---------------------------------------------------------------


def test_dashboard_save_records_user_and_versions(world_a):
    http = login(world_a)
    response = http.post(
        reverse("admin:hooks_hook_save", args=[world_a.hook.pk]),
        {"script": NEW_SCRIPT, "base_version": 1},
    )
    assert response.status_code == 200
    entry = hook_entries(world_a.hook)[-1]
    assert entry.action == "save"
    assert (entry.actor_kind, entry.actor_name, entry.source) == (
        "user",
        "alpha-admin",
        "dashboard",
    )
    assert entry.actor_id == str(world_a.admin.pk)
    assert fields(entry.before)["version"] == 1 and fields(entry.after)["version"] == 2
    assert (
        "platinum" in fields(entry.after)["script"]
        and "platinum" not in fields(entry.before)["script"]
    )
    assert entry.tenant == world_a.tenant


def test_dashboard_secret_change_records_names_only(world_a):
    http = login(world_a)
    http.post(
        reverse("admin:hooks_hook_secret_set", args=[world_a.hook.pk]),
        {"name": "API_KEY", "value": SECRET_VALUE},
    )
    entry = hook_entries(world_a.hook)[-1]
    assert entry.action == "secrets.set"
    assert entry.before == {"secrets": []}
    assert entry.after == {"secrets": ["API_KEY"], "changed": ["API_KEY"]}
    assert entry.actor_name == "alpha-admin"
    assert no_secret_value_stored()

    http.post(reverse("admin:hooks_hook_secret_delete", args=[world_a.hook.pk, "API_KEY"]))
    entry = hook_entries(world_a.hook)[-1]
    assert (entry.action, entry.after) == (
        "secrets.delete",
        {"secrets": [], "changed": ["API_KEY"]},
    )


def test_dashboard_enable_records_the_hook_it_disabled(world_a):
    from hooks.services import hook_create

    second = hook_create(tenant=world_a.tenant, name="second", script=SEED_SCRIPT, actor=TEST_ACTOR)
    login(world_a).post(reverse("admin:hooks_hook_enable", args=[second.pk]))
    entry = hook_entries(second)[-1]
    assert entry.action == "enable"
    after = entry.after or {}
    assert after["enabled"] is True
    # What the dry run found: nothing changes for the world's one client.
    assert (after["dry_run"]["from_grants"], after["dry_run"]["regressions"]) == (1, 0)
    disabled = hook_entries(world_a.hook)[-1]
    assert (disabled.action, disabled.actor_name, disabled.source) == (
        "disable",
        "alpha-admin",
        "dashboard",
    )


def test_dashboard_restore_is_recorded_as_restore(world_a):
    http = login(world_a)
    http.post(
        reverse("admin:hooks_hook_save", args=[world_a.hook.pk]),
        {"script": NEW_SCRIPT, "base_version": 1},
    )
    http.post(
        reverse("admin:hooks_hook_version_restore", args=[world_a.hook.pk, 1]),
        {"base_version": 2},
    )
    entry = hook_entries(world_a.hook)[-1]
    assert entry.action == "restore v1"
    assert fields(entry.after)["version"] == 3 and "gold" in fields(entry.after)["script"]


def test_dashboard_client_edit_records_diff_without_secret(world_a):
    http = login(world_a)
    url = reverse("admin:clients_client_change", args=[world_a.client.pk])
    response = http.post(
        url,
        {
            "name": "renamed",
            "token_endpoint_auth_method": "client_secret_basic",
            "metadata": '{"tier": "gold"}',
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    entry = AuditEntry.objects.filter(object_type="client", action="update").get()
    assert (
        fields(entry.before)["name"] == "alpha service" and fields(entry.after)["name"] == "renamed"
    )
    assert fields(entry.after)["metadata"] == {"tier": "gold"}
    assert set(fields(entry.after)) == {
        "name",
        "client_id",
        "metadata",
        "token_endpoint_auth_method",
    }


def test_history_page_shows_saves_enables_and_secret_names(world_a, world_b):
    http = login(world_a)
    http.post(
        reverse("admin:hooks_hook_save", args=[world_a.hook.pk]),
        {"script": NEW_SCRIPT, "base_version": 1},
    )
    http.post(
        reverse("admin:hooks_hook_secret_set", args=[world_a.hook.pk]),
        {"name": "API_KEY", "value": SECRET_VALUE},
    )
    run("hooks", "disable", world_a.hook.name, "-p", "alpha")
    page = http.get(reverse("admin:hooks_hook_history", args=[world_a.hook.pk])).content.decode()
    for text in ("save", "→ version 2", "secrets: API_KEY", "disable", "Command line", "CLI"):
        assert text in page, text
    assert "alpha-admin" in page and "Dashboard" in page
    assert SECRET_VALUE not in page
    assert "Added." not in page
    # Another tenant's hook history is the same 404 as a missing one.
    other = http.get(reverse("admin:hooks_hook_history", args=[world_b.hook.pk]))
    assert other.status_code == 404


def test_landing_page_lists_own_tenant_changes_only(world_a, world_b):
    run("hooks", "disable", world_b.hook.name, "-p", "bravo")
    run("hooks", "disable", world_a.hook.name, "-p", "alpha")
    page = login(world_a).get(reverse("admin:tenant_landing", args=["alpha"])).content.decode()
    assert "Recent changes" in page
    assert "alpha-hook" in page.split('id="recent-changes"')[1]
    assert "bravo-hook" not in page


def audit_page(world: TenantWorld, slug: str, **query: str) -> Any:
    return login(world).get(reverse("admin:tenant_audit", args=[slug]), query)


def listed(response: Any) -> str:
    """The text of the audit page's entries table."""
    assert response.status_code == 200
    return response.content.decode().split('id="audit-entries"')[1].split("</table>")[0]


def test_audit_page_lists_own_tenant_only_and_others_are_404(world_a, world_b):
    run("hooks", "disable", world_b.hook.name, "-p", "bravo")
    run("hooks", "disable", world_a.hook.name, "-p", "alpha")
    entries = listed(audit_page(world_a, "alpha"))
    assert "alpha-hook" in entries and "enabled: true → false" in entries
    assert "bravo" not in entries.lower()
    assert audit_page(world_a, "bravo").status_code == 404
    assert audit_page(world_a, "nosuch").status_code == 404


def test_audit_page_filters_by_actor_object_type_action_and_time(world_a, world_b):
    run("hooks", "disable", world_a.hook.name, "-p", "alpha")
    cli = AuditEntry.objects.get(tenant=world_a.tenant, action="disable").actor_name
    by_action = listed(audit_page(world_a, "alpha", action="disable"))
    assert by_action.count("<tr>") == 2  # the header and the one disable
    by_type = listed(audit_page(world_a, "alpha", object_type="client"))
    assert "alpha service" in by_type and "alpha-hook" not in by_type
    by_actor = listed(audit_page(world_a, "alpha", actor=cli))
    assert "disable" in by_actor and "create" not in by_actor
    disabled_at = AuditEntry.objects.get(tenant=world_a.tenant, action="disable").created_at
    until = listed(audit_page(world_a, "alpha", until=disabled_at.isoformat()))
    assert "disable" not in until and "create" in until
    since = listed(audit_page(world_a, "alpha", since=disabled_at.isoformat()))
    assert "disable" in since and "create" not in since
    assert "No entries match." in listed(audit_page(world_a, "alpha", since="2999-01-01T00:00"))


def test_audit_page_refuses_a_filter_value_the_tenant_does_not_hold(world_a, world_b):
    run("hooks", "disable", world_b.hook.name, "-p", "bravo")
    response = audit_page(world_a, "alpha", object_type="no-such-type")
    assert "Select a valid choice" in response.content.decode()
    # The bravo admin's name is no choice on alpha's page.
    choices = audit_page(world_a, "alpha").context["form"].fields["actor"].choices
    assert "bravo-admin" not in [value for value, _ in choices]


def test_audit_page_is_paginated_and_keeps_its_filters(world_a, world_b):
    for number in range(60):
        AuditEntry.objects.create(
            tenant=world_a.tenant,
            actor_kind="cli",
            actor_name="ops",
            source="cli",
            action="update",
            object_type="client",
            object_id=str(number),
            object_repr=f"client-{number}",
        )
    first = audit_page(world_a, "alpha", actor="ops")
    assert listed(first).count("client-") == 50
    assert "Page 1 of 2" in first.content.decode()
    assert "?actor=ops&amp;page=2" in first.content.decode()
    second = listed(audit_page(world_a, "alpha", actor="ops", page="2"))
    assert second.count("client-") == 10


def test_home_page_recent_changes_are_the_audit_trail_of_own_tenants(world_a, world_b):
    run("hooks", "disable", world_b.hook.name, "-p", "bravo")
    run("hooks", "disable", world_a.hook.name, "-p", "alpha")
    page = login(world_a).get(reverse("admin:index")).content.decode()
    sidebar = page.split('id="recent-actions-module"')[1]
    assert "None available" not in page
    assert "disable hook alpha-hook" in sidebar
    assert "bravo" not in sidebar.lower()


# --- CLI ---------------------------------------------------------------------


def test_cli_writes_record_the_cli_actor(world_a, tmp_path: Path):
    script = tmp_path / "h.js"
    script.write_text(NEW_SCRIPT)
    run("hooks", "create", "-n", "from-cli", str(script), "-p", "alpha")
    run("hooks", "secrets", "set", "from-cli", f"TOKEN={SECRET_VALUE}", "-p", "alpha")
    run("hooks", "enable", "from-cli", "-p", "alpha")
    hook = Hook.objects.get(name="from-cli")
    actions = [(e.action, e.actor_kind, e.source) for e in hook_entries(hook)]
    assert actions == [
        ("create", "cli", "cli"),
        ("secrets.set", "cli", "cli"),
        ("enable", "cli", "cli"),
    ]
    assert no_secret_value_stored()


def test_cli_client_create_records_client_and_grant(world_a):
    out = run(
        "client",
        "create",
        "-p",
        "alpha",
        "--name",
        "batch",
        "--grant",
        "https://api.alpha.test/=read:data",
    )
    secret = out.split("client_secret:")[1].split()[0]
    rows = AuditEntry.objects.filter(tenant=world_a.tenant, source="cli").order_by("id")
    assert [(r.object_type, r.action) for r in rows] == [
        ("client", "create"),
        ("client_grant", "create"),
    ]
    assert fields(rows[1].after)["scope"] == ["read:data"]
    assert secret not in json.dumps([[r.before, r.after] for r in rows])


def test_tenant_audit_command_prints_own_tenant_as_json(world_a, world_b):
    run("hooks", "disable", world_b.hook.name, "-p", "bravo")
    run("hooks", "disable", world_a.hook.name, "-p", "alpha")
    lines = run("tenant", "audit", "-p", "alpha", "--json").splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries[-1]["action"] == "disable"
    assert entries[-1]["object"]["repr"] == "alpha-hook"
    assert entries[-1]["actor"]["kind"] == "cli" and entries[-1]["source"] == "cli"
    assert all(e["object"]["repr"] != "bravo-hook" for e in entries)
    text = run("tenant", "audit", "-p", "alpha")
    # The change reads before → after, not the bare field name ("(enabled)"
    # read as if the hook were still enabled).
    assert "disable hook alpha-hook  (enabled: true → false)" in text


@pytest.mark.django_db(transaction=True)
def test_tenant_audit_follow_prints_new_entries(tmp_path):
    import threading

    from tests.dashboard.conftest import make_world

    world = make_world("follow")
    out = StringIO()
    thread = threading.Thread(
        target=call_command,
        args=("tenant", "audit", "-p", "follow", "--follow", "--json"),
        kwargs={"stdout": out, "max_polls": 20, "poll_interval": 0.1},
    )
    thread.start()
    try:
        run("hooks", "disable", world.hook.name, "-p", "follow")
    finally:
        thread.join(timeout=10)
    actions = [json.loads(line)["action"] for line in out.getvalue().splitlines()]
    assert actions[-1] == "disable"


def test_dashboard_tenant_settings_change_is_audited(world_a, settings):
    superuser = User.objects.create_superuser("root", password="pw")
    http = HttpClient()
    http.force_login(superuser)
    response = http.post(
        reverse("admin:tenant_tenant_change", args=[world_a.tenant.pk]),
        {
            "name": "Alpha Corp",
            "domain": "auth.alpha.example",
            "hook_timeout_ms": "2000",
            "hook_cpu_ms": "1000",
            "hook_memory_mb": "64",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    entry = AuditEntry.objects.get(object_type="tenant", action="update")
    assert (entry.actor_name, entry.source) == ("root", "dashboard")
    assert fields(entry.before)["hook_timeout_ms"] == 5000
    assert fields(entry.after)["hook_timeout_ms"] == 2000
    # The Management API's audience follows the new issuer.
    api = Api.objects.get(tenant=world_a.tenant, is_system=True)
    assert api.identifier == "https://auth.alpha.example/api/v2/"


def test_cli_tenant_create_management_and_rotate_key_are_audited(db):
    out = run("tenant", "create", "zeta", "--management")
    secret = out.split("client_secret:")[1].split()[0]
    run("tenant", "rotate-key", "zeta")
    rows = AuditEntry.objects.filter(tenant__slug="zeta", source="cli").order_by("id")
    actions = [(r.object_type, r.action) for r in rows]
    assert ("tenant", "create") in actions and ("tenant", "rotate-key") in actions
    assert ("client", "create") in actions and ("client_grant", "create") in actions
    assert secret not in json.dumps([[r.before, r.after] for r in rows])
    grant = next(r for r in rows if r.object_type == "client_grant")
    # Every Management API scope: 4 verbs x hooks, clients, resource servers,
    # client grants and actions, and read/update tenant settings.
    assert len(fields(grant.after)["scope"]) == 22
    assert {"read:actions", "delete:actions", "update:tenant_settings"} <= set(
        fields(grant.after)["scope"]
    )


# --- membership, tenant deletion and inline grants ---------------------------


def superuser_http() -> HttpClient:
    http = HttpClient()
    http.force_login(User.objects.create_superuser("root", password="pw"))
    return http


def tenant_form(world: TenantWorld, memberships: list[dict[str, str]], initial: int) -> dict:
    data = {
        "name": world.tenant.name,
        "domain": "",
        "hook_timeout_ms": str(world.tenant.hook_timeout_ms),
        "hook_cpu_ms": str(world.tenant.hook_cpu_ms),
        "hook_memory_mb": str(world.tenant.hook_memory_mb),
        "memberships-TOTAL_FORMS": str(len(memberships)),
        "memberships-INITIAL_FORMS": str(initial),
    }
    for number, row in enumerate(memberships):
        data.update({f"memberships-{number}-{key}": value for key, value in row.items()})
    return data


def member_entries(world: TenantWorld) -> list[tuple[str, str, str, str]]:
    rows = AuditEntry.objects.filter(
        tenant=world.tenant, object_type="membership", source="dashboard"
    )
    return [(e.action, e.object_repr, e.actor_name, e.source) for e in rows.order_by("id")]


def test_dashboard_membership_add_and_remove_are_audited_with_the_user(world_a, world_b):
    http = superuser_http()
    url = reverse("admin:tenant_tenant_change", args=[world_a.tenant.pk])
    newcomer = User.objects.create_user("newcomer", is_staff=True)
    existing = world_a.tenant.memberships.get()
    rows = [
        {"id": str(existing.pk), "tenant": str(world_a.tenant.pk), "user": str(world_a.admin.pk)},
        {"tenant": str(world_a.tenant.pk), "user": str(newcomer.pk)},
    ]
    response = http.post(url, tenant_form(world_a, rows, initial=1))
    assert response.status_code == 302, response.content[:3000]
    assert world_a.tenant.memberships.filter(user=newcomer).exists()
    assert member_entries(world_a) == [("add-member", "newcomer", "root", "dashboard")]

    added = world_a.tenant.memberships.get(user=newcomer)
    rows = [
        {"id": str(existing.pk), "tenant": str(world_a.tenant.pk), "user": str(world_a.admin.pk)},
        {
            "id": str(added.pk),
            "tenant": str(world_a.tenant.pk),
            "user": str(newcomer.pk),
            "DELETE": "on",
        },
    ]
    response = http.post(url, tenant_form(world_a, rows, initial=2))
    assert response.status_code == 302, response.content[:3000]
    assert not world_a.tenant.memberships.filter(user=newcomer).exists()
    assert member_entries(world_a)[-1] == ("remove-member", "newcomer", "root", "dashboard")
    # The other tenant's members and trail are untouched.
    assert list(world_b.tenant.members.all()) == [world_b.admin]
    assert member_entries(world_b) == []


def tenant_deletions() -> list[tuple[object, str, str, str]]:
    rows = AuditEntry.objects.filter(object_type="tenant", action="delete").order_by("id")
    return [(e.tenant_id, e.object_id, e.actor_name, e.source) for e in rows]


def test_dashboard_tenant_delete_is_audited_and_the_trail_outlives_it(world_a, world_b):
    http = superuser_http()
    url = reverse("admin:tenant_tenant_delete", args=[world_a.tenant.pk])
    response = http.post(url, {"post": "yes"})
    assert response.status_code == 302, response.content[:3000]
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["bravo"]
    assert tenant_deletions() == [(None, "alpha", "root", "dashboard")]
    # Alpha's earlier rows stay too, detached; beta's keep their tenant.
    assert AuditEntry.objects.filter(tenant=None, object_type="hook").exists()
    assert AuditEntry.objects.filter(tenant=world_b.tenant).exists()


def test_dashboard_bulk_tenant_delete_is_audited(world_a, world_b):
    http = superuser_http()
    response = http.post(
        reverse("admin:tenant_tenant_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [str(world_a.tenant.pk), str(world_b.tenant.pk)],
            "post": "yes",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    assert not Tenant.objects.exists()
    assert sorted(tenant_deletions()) == [
        (None, "alpha", "root", "dashboard"),
        (None, "bravo", "root", "dashboard"),
    ]


def test_dashboard_inline_grant_edit_records_the_user(world_a, world_b):
    http = login(world_a)
    write = world_a.api.scopes.get(value="write:data")
    response = http.post(
        reverse("admin:clients_client_change", args=[world_a.client.pk]),
        {
            "name": world_a.client.name,
            "token_endpoint_auth_method": world_a.client.token_endpoint_auth_method,
            "metadata": "{}",
            "grants-TOTAL_FORMS": "1",
            "grants-INITIAL_FORMS": "1",
            "grants-0-id": str(world_a.grant.pk),
            "grants-0-client": str(world_a.client.pk),
            "grants-0-scopes": [str(write.pk)],
        },
    )
    assert response.status_code == 302, response.content[:3000]
    entry = AuditEntry.objects.get(object_type="client_grant", action="update")
    assert (entry.actor_kind, entry.actor_name, entry.source) == (
        "user",
        "alpha-admin",
        "dashboard",
    )
    assert entry.tenant == world_a.tenant
    assert fields(entry.after)["scope"] == ["write:data"]
    assert not AuditEntry.objects.filter(tenant=world_b.tenant, object_type="client_grant").exclude(
        actor_name="test"
    )
