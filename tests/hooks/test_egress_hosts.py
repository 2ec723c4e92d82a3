"""A tenant's own list of the hosts its hooks may call: it narrows the
operator's policy for that tenant only, never widens it, and every door
(service, dashboard, CLI; the Management API in
tests/management/test_tenant_settings.py) refuses an entry that is not a
host with the reason."""

import json
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from hooks.models import TenantEgress
from hooks.runtime.egress import EgressPolicy, EgressRefused, parse_tenant_hosts
from hooks.selectors import tenant_egress_hosts
from hooks.services import tenant_egress_set
from tenant.config_cache import request_scope
from tenant.models import AuditEntry
from tests.factories import TEST_ACTOR
from tests.hooks.network import LOOPBACK, World, action

pytestmark = pytest.mark.django_db

PROBE = (
    "try {{ const r = await fetch('{url}/tier'); "
    "api.accessToken.setCustomClaim('https://x.test/tier', (await r.json()).tier); }}\n"
    "catch (e) {{ api.accessToken.setCustomClaim('https://x.test/error', e.name + ': ' + e.message); }}"
)


def test_a_tenants_list_narrows_its_own_hooks_and_not_its_neighbours(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    listed = World("listed", action(PROBE.format(url=upstream)))
    open_ = World("open", action(PROBE.format(url=upstream)))
    tenant_egress_set(
        tenant=listed.tenant, hosts=["api.partner.example", "*.hooks.example"], actor=TEST_ACTOR
    )

    refused, reached = listed.claims(), open_.claims()

    assert refused["https://x.test/error"] == (
        "TypeError: fetch failed: 127.0.0.1 is not in this tenant's list of allowed hosts"
    )
    assert reached["https://x.test/tier"] == "gold"
    console = listed.last_run().console
    assert f"[fetch] GET {upstream}/tier ✗ 127.0.0.1 is not in this tenant's list" in console
    assert "[fetch] GET" in open_.last_run().console and "✗" not in open_.last_run().console

    tenant_egress_set(
        tenant=listed.tenant, hosts=["api.partner.example", "127.0.0.1"], actor=TEST_ACTOR
    )
    assert listed.claims()["https://x.test/tier"] == "gold"


def test_a_tenant_listing_loopback_still_needs_the_operator(isolation, settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = ""
    world = World("loopy", action(PROBE.format(url=upstream)))
    tenant_egress_set(tenant=world.tenant, hosts=["127.0.0.1:*", "localhost"], actor=TEST_ACTOR)

    error = world.claims()["https://x.test/error"]

    assert error.startswith("TypeError: fetch failed: 127.0.0.1 resolves to 127.0.0.1")
    assert "not a public address" in error


def test_the_list_is_read_through_the_configuration_memo(settings, upstream):
    settings.TESSERA_EGRESS_ALLOW = LOOPBACK
    world = World("memo", action(PROBE.format(url=upstream)))
    tenant_egress_set(tenant=world.tenant, hosts=["127.0.0.1"], actor=TEST_ACTOR)
    with request_scope():  # as a token request reads it
        assert tenant_egress_hosts(tenant=world.tenant) == ("127.0.0.1",)
        with CaptureQueriesContext(connection) as queries:
            assert tenant_egress_hosts(tenant=world.tenant) == ("127.0.0.1",)
    assert queries.captured_queries == []

    tenant_egress_set(tenant=world.tenant, hosts=["api.partner.example"], actor=TEST_ACTOR)
    assert tenant_egress_hosts(tenant=world.tenant) == ("api.partner.example",)
    assert "not in this tenant's list" in world.claims()["https://x.test/error"]


HOSTILE_ENTRIES = {
    "": "an empty host",
    "*": "every host",
    "http://api.example.com": "a host, not a URL",
    "api.example.com/path": "a host, not a URL",
    "user@api.example.com": "a host, not a URL",
    "api.example.com, evil.example": "spaces",
    "api.example.com,evil.example": "a host, not a URL",
    "exämple.com": "xn-- form",
    "api\x00.example.com": "control characters",
    "a*.example.com": "only a leading '*.'",
    "-bad.example.com": "not a valid host name",
    "bad..example.com": "not a valid host name",
    "api.example.com:99999": "bad port",
    "10.0.0.0/33": "not a host, *.domain or network",
    "x" * 300: "longer than a host name",
}


@pytest.mark.parametrize("entry", sorted(HOSTILE_ENTRIES))
def test_an_entry_that_is_not_a_host_is_refused_with_the_reason(entry):
    world_tenant = World("strict", action("")).tenant

    with pytest.raises(ValidationError) as refused:
        tenant_egress_set(tenant=world_tenant, hosts=["api.ok.example", entry], actor=TEST_ACTOR)

    assert HOSTILE_ENTRIES[entry] in refused.value.messages[0]
    assert refused.value.messages[0].startswith("Not an allowed host: ")
    assert not TenantEgress.objects.filter(tenant=world_tenant).exists()
    assert not AuditEntry.objects.filter(action="update-egress-hosts").exists()


def test_the_database_refuses_what_the_service_would(db):
    world_tenant = World("direct", action("")).tenant
    row = TenantEgress(tenant=world_tenant, hosts=["http://evil.example/"])

    with pytest.raises(ValidationError, match="a host, not a URL"):
        row.full_clean()


def test_entries_are_stored_as_urls_read_them_and_the_change_is_audited():
    world = World("canon", action(""))

    stored = tenant_egress_set(
        tenant=world.tenant,
        hosts=["API.Partner.Example", "0x7f000001", "2130706433:8080", "api.partner.example"],
        actor=TEST_ACTOR,
    )

    assert stored == ["api.partner.example", "127.0.0.1", "127.0.0.1:8080"]
    entry = AuditEntry.objects.get(tenant=world.tenant, action="update-egress-hosts")
    assert entry.before == {"egress_hosts": []}
    assert entry.after == {"egress_hosts": stored}
    tenant_egress_set(tenant=world.tenant, hosts=[], actor=TEST_ACTOR)
    assert tenant_egress_hosts(tenant=world.tenant) == ()


def test_a_network_entry_is_checked_on_the_address_connected_to():
    def resolving_to(address):
        return EgressPolicy(
            allow=operator.allow, tenant_hosts=operator.tenant_hosts,
            resolver=lambda host, port: [address],
        )  # fmt: skip

    operator = EgressPolicy.from_text(allow="10.0.0.0/8:*", tenant_hosts=["10.1.0.0/16"])
    inside, outside = resolving_to("10.1.2.3"), resolving_to("10.9.0.1")

    inside.check_url("http://api.internal/")
    assert inside.connect_address("api.internal", 80) == "10.1.2.3"
    with pytest.raises(EgressRefused, match=r"\(10\.9\.0\.1\) is not in this tenant's list"):
        outside.connect_address("api.internal", 80)
    assert parse_tenant_hosts(["10.1.0.0/16"]) == operator.tenant_hosts


# ---- the dashboard and the CLI -------------------------------------------------


def login_superuser() -> HttpClient:
    http = HttpClient()
    http.force_login(User.objects.create_superuser("root", password="pw"))
    return http


def settings_form(tenant, egress_hosts: str) -> dict[str, str]:
    return {
        "name": tenant.name,
        "domain": tenant.domain or "",
        "hook_timeout_ms": str(tenant.hook_timeout_ms),
        "hook_cpu_ms": str(tenant.hook_cpu_ms),
        "hook_memory_mb": str(tenant.hook_memory_mb),
        "egress_hosts": egress_hosts,
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }


def test_the_dashboards_tenant_settings_edit_the_list():
    world, neighbour = World("dash", action("")), World("dash-other", action(""))
    http = login_superuser()
    url = reverse("admin:tenant_tenant_change", args=[world.tenant.pk])

    saved = http.post(url, settings_form(world.tenant, "api.partner.example\n\n*.hooks.example\n"))
    page = http.get(url)
    refused = http.post(url, settings_form(world.tenant, "api.partner.example\nhttp://evil/"))

    assert saved.status_code == 302, saved.content[:2000]
    assert tenant_egress_hosts(tenant=world.tenant) == ("api.partner.example", "*.hooks.example")
    assert tenant_egress_hosts(tenant=neighbour.tenant) == ()
    assert "api.partner.example\n*.hooks.example" in page.content.decode()
    assert refused.status_code == 200
    assert "Not an allowed host: &#x27;http://evil/&#x27;: a host, not a URL" in (
        refused.content.decode()
    )
    assert tenant_egress_hosts(tenant=world.tenant) == ("api.partner.example", "*.hooks.example")
    entry = AuditEntry.objects.get(tenant=world.tenant, action="update-egress-hosts")
    assert (entry.actor_name, entry.source) == ("root", "dashboard")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_cli_shows_and_sets_the_list():
    world, neighbour = World("cli", action("")), World("cli-other", action(""))

    before = run("tenant", "settings", "-p", "cli")
    changed = run(
        "tenant", "settings", "-p", "cli", "--egress-hosts", "api.partner.example,*.x.example"
    )
    shown = json.loads(run("tenant", "settings", "-p", "cli", "--json"))
    with pytest.raises(CommandError, match=r"Not an allowed host: '\*': every host"):
        run("tenant", "settings", "-p", "cli", "--egress-hosts", "*")
    cleared = run("tenant", "settings", "-p", "cli", "--egress-hosts", "")

    assert "Hooks may call: any host the operator's policy allows" in before
    assert "Hooks may call: api.partner.example, *.x.example" in changed
    assert shown == {
        "slug": "cli",
        "name": world.tenant.name,
        "egress_hosts": ["api.partner.example", "*.x.example"],
    }
    assert "any host the operator's policy allows" in cleared
    assert tenant_egress_hosts(tenant=neighbour.tenant) == ()
    sources = AuditEntry.objects.filter(tenant=world.tenant, action="update-egress-hosts")
    assert [entry.source for entry in sources] == ["cli", "cli"]


def test_the_cli_names_an_unknown_tenant():
    with pytest.raises(CommandError, match="Unknown tenant: nobody"):
        run("tenant", "settings", "-p", "nobody", "--egress-hosts", "a.example")
