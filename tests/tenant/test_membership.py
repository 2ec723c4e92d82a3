"""Membership and tenant deletion go through audited services: each change
leaves one row naming its actor, in the changed tenant only."""

import pytest
from django.contrib.auth.models import User

from tenant.audit import Actor
from tenant.models import AuditEntry, Tenant
from tenant.services import tenant_add_member, tenant_delete, tenant_remove_member
from tests.factories import make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

OPERATOR = Actor.cli()


def rows(**filters: object) -> list[tuple[str, str, str, str]]:
    entries = AuditEntry.objects.filter(source="cli", **filters).order_by("id")
    return [(e.action, e.object_type, e.object_repr, e.actor_kind) for e in entries]


def test_adding_and_removing_a_member_is_audited_once_each():
    alpha, beta = make_tenant("alpha"), make_tenant("beta")
    user = User.objects.create_user("ops", is_staff=True)
    tenant_add_member(tenant=alpha, user=user, actor=OPERATOR)
    tenant_add_member(tenant=alpha, user=user, actor=OPERATOR)  # already a member
    assert list(user.tenants.all()) == [alpha]
    tenant_remove_member(tenant=alpha, user=user, actor=OPERATOR)
    tenant_remove_member(tenant=beta, user=user, actor=OPERATOR)  # never was
    assert list(user.tenants.all()) == []
    assert rows(tenant=alpha) == [
        ("add-member", "membership", "ops", "cli"),
        ("remove-member", "membership", "ops", "cli"),
    ]
    assert rows(tenant=beta) == []


def test_deleting_a_tenant_is_audited_and_leaves_the_other_alone():
    alpha, beta = make_tenant("alpha"), make_tenant("beta")
    for tenant in (alpha, beta):
        make_client(tenant, {make_api(tenant): ["read:data"]})
    tenant_delete(tenant=alpha, actor=OPERATOR)
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["beta"]
    entry = AuditEntry.objects.get(object_type="tenant", action="delete")
    assert (entry.tenant_id, entry.object_id, entry.actor_kind) == (None, "alpha", "cli")
    assert entry.before is not None and entry.before["slug"] == "alpha"
    assert beta.apis.count() == 2 and beta.clients.count() == 1
