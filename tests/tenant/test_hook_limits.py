"""README, "Limits and fairness": each tenant's hook limits, their defaults
and bounds (the database refuses a timeout over 20 s) and the CPU budget
never above the timeout."""

import pytest
from django.db import IntegrityError, transaction

from hooks.execution import limits_for
from tenant.models import Tenant
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


def test_defaults_are_5_s_500_ms_of_cpu_and_128_mib():
    limits = limits_for(make_tenant("acme"))
    assert (limits.timeout_ms, limits.cpu_ms, limits.memory_mb) == (5_000, 500, 128)


@pytest.mark.parametrize(
    "field", [("hook_timeout_ms", 20_001), ("hook_cpu_ms", 20_001), ("hook_memory_mb", 513)]
)
def test_the_database_refuses_limits_over_their_bounds(field):
    tenant, other = make_tenant("acme"), make_tenant("other")
    name, value = field
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(**{name: value})
    assert {getattr(t, name) for t in Tenant.objects.filter(pk__in=[tenant.pk, other.pk])} == {
        getattr(tenant, name)
    }


def test_the_cpu_budget_is_never_more_than_the_timeout():
    tenant = make_tenant("acme")
    tenant.hook_timeout_ms, tenant.hook_cpu_ms = 1_000, 5_000
    assert limits_for(tenant).cpu_ms == 1_000
