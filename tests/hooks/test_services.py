"""Hook services and the rules the database enforces."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from hooks.models import Hook, HookSecret, HookVersion
from hooks.services import (
    HookConflict,
    hook_create,
    hook_enable,
    hook_restore_version,
    hook_save_script,
    hook_secrets_set,
)
from tenant.crypto import decrypt
from tests.factories import TEST_ACTOR, make_tenant

SCRIPT = "module.exports = function(client, scope, audience, context, cb) { cb(null, {}); };"

pytestmark = pytest.mark.django_db


def test_first_dashboard_hook_for_point_is_enabled_later_ones_not():
    tenant = make_tenant()
    first = hook_create(tenant=tenant, name="first", script=SCRIPT, enabled=None, actor=TEST_ACTOR)
    second = hook_create(
        tenant=tenant, name="second", script=SCRIPT, enabled=None, actor=TEST_ACTOR
    )
    assert Hook.objects.get(pk=first.pk).enabled
    assert not Hook.objects.get(pk=second.pk).enabled


def test_hooks_are_created_disabled_by_default():
    hook = hook_create(tenant=make_tenant(), name="h", script=SCRIPT, actor=TEST_ACTOR)
    assert not Hook.objects.get(pk=hook.pk).enabled


def test_enabling_one_disables_the_other_and_names_it():
    tenant = make_tenant()
    first = hook_create(tenant=tenant, name="first", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    second = hook_create(tenant=tenant, name="second", script=SCRIPT, actor=TEST_ACTOR)
    assert hook_enable(hook=second, actor=TEST_ACTOR) == first
    assert list(Hook.objects.filter(enabled=True)) == [second]


def test_enabled_hooks_of_different_tenants_are_independent():
    one = hook_create(tenant=make_tenant(), name="h", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    two = hook_create(tenant=make_tenant(), name="h", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    assert Hook.objects.filter(pk__in=[one.pk, two.pk], enabled=True).count() == 2


def test_database_refuses_two_enabled_hooks_for_one_point():
    tenant = make_tenant()
    hook_create(tenant=tenant, name="a", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    with pytest.raises(IntegrityError), transaction.atomic():
        Hook.objects.create(
            tenant=tenant, name="b", script=SCRIPT, enabled=True, trigger_id="credentials-exchange"
        )


def test_syntax_error_is_refused_with_line_and_column():
    with pytest.raises(ValidationError, match=r"line 2, column \d+"):
        hook_create(
            tenant=make_tenant(), name="h", script="var a = 1;\nvar = ;\n", actor=TEST_ACTOR
        )
    assert not Hook.objects.exists()


def test_duplicate_name_is_refused():
    tenant = make_tenant()
    hook_create(tenant=tenant, name="h", script=SCRIPT, actor=TEST_ACTOR)
    with pytest.raises(ValidationError, match="already exists"):
        hook_create(tenant=tenant, name="h", script=SCRIPT, actor=TEST_ACTOR)


def test_every_save_is_a_version():
    hook = hook_create(tenant=make_tenant(), name="h", script=SCRIPT, actor=TEST_ACTOR)
    hook_save_script(hook=hook, script=SCRIPT + "\n// two", base_version=1, actor=TEST_ACTOR)
    assert list(HookVersion.objects.filter(hook=hook).values_list("number", flat=True)) == [2, 1]
    assert Hook.objects.get(pk=hook.pk).version == 2


def test_stale_save_is_refused_and_nothing_overwritten():
    hook = hook_create(tenant=make_tenant(), name="h", script=SCRIPT, actor=TEST_ACTOR)
    hook_save_script(hook=hook, script=SCRIPT + "// mine", base_version=1, actor=TEST_ACTOR)
    with pytest.raises(HookConflict):
        hook_save_script(hook=hook, script=SCRIPT + "// theirs", base_version=1, actor=TEST_ACTOR)
    assert Hook.objects.get(pk=hook.pk).script.endswith("// mine")


def test_restore_makes_old_script_current_as_new_version():
    hook = hook_create(tenant=make_tenant(), name="h", script=SCRIPT, actor=TEST_ACTOR)
    hook_save_script(hook=hook, script=SCRIPT + "// two", base_version=1, actor=TEST_ACTOR)
    hook_restore_version(hook=hook, number=1, base_version=2, actor=TEST_ACTOR)
    hook.refresh_from_db()
    assert (hook.script, hook.version) == (SCRIPT, 3)


def test_secrets_are_encrypted_at_rest():
    hook = hook_create(
        tenant=make_tenant(),
        name="h",
        script=SCRIPT,
        secrets={"API_KEY": "s3cr3t"},
        actor=TEST_ACTOR,
    )
    stored = HookSecret.objects.get(hook=hook).value_encrypted
    assert "s3cr3t" not in stored
    assert decrypt(stored) == "s3cr3t"


def test_at_most_twenty_secrets():
    hook = hook_create(
        tenant=make_tenant(),
        name="h",
        script=SCRIPT,
        secrets={f"S{i}": "v" for i in range(20)},
        actor=TEST_ACTOR,
    )
    hook_secrets_set(hook=hook, secrets={"S0": "replaced"}, actor=TEST_ACTOR)  # replacing is fine
    with pytest.raises(ValidationError, match="at most 20"):
        hook_secrets_set(hook=hook, secrets={"S20": "v"}, actor=TEST_ACTOR)
    assert hook.secrets.count() == 20


@pytest.mark.django_db(transaction=True)
def test_concurrent_enables_leave_exactly_one_enabled():
    tenant = make_tenant()
    hooks = [
        hook_create(tenant=tenant, name=f"h{i}", script=SCRIPT, actor=TEST_ACTOR) for i in range(4)
    ]
    barrier = threading.Barrier(len(hooks))
    failures = []

    def enable(hook):
        try:
            barrier.wait()
            hook_enable(hook=hook, actor=TEST_ACTOR)
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=enable, args=(hook,)) for hook in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert Hook.objects.filter(tenant=tenant, enabled=True).count() == 1
