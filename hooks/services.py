"""Writes for hooks: create, save (versioned, conflict-checked), enable and
disable, secrets, restore, delete."""

from collections.abc import Mapping

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hooks.choices import TriggerId
from hooks.execution import check_script
from hooks.models import MAX_SECRETS_PER_HOOK, Hook, HookSecret, HookVersion
from tenant.config_cache import invalidate
from tenant.crypto import encrypt
from tenant.models import Tenant


class HookConflict(ValidationError):
    """The hook was saved by someone else since the edit began."""


def _lock_tenant(tenant: Tenant) -> None:
    # Serialises enable/disable within a tenant, so that two concurrent
    # enables cannot both pass the "disable the others" step.
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()


@transaction.atomic
def hook_create(
    *,
    tenant: Tenant,
    name: str,
    script: str,
    trigger_id: str = TriggerId.CREDENTIALS_EXCHANGE,
    enabled: bool | None = False,
    secrets: Mapping[str, str] | None = None,
    user: User | None = None,
) -> Hook:
    """Create a hook after checking its syntax.

    ``enabled=None`` enables it when it is the tenant's first hook for the
    point (the dashboard's rule); ``True`` enables it and disables the other.
    """
    check_script(tenant=tenant, script=script)
    hook = Hook(tenant=tenant, name=name, trigger_id=trigger_id, script=script)
    hook.full_clean()
    if enabled is None:
        _lock_tenant(tenant)
        enabled = not Hook.objects.filter(tenant=tenant, trigger_id=trigger_id).exists()
    hook.save()
    HookVersion.objects.create(hook=hook, number=hook.version, script=script, created_by=user)
    if secrets:
        hook_secrets_set(hook=hook, secrets=secrets)
    if enabled:
        hook_enable(hook=hook)
    return hook


@transaction.atomic
def hook_save_script(
    *, hook: Hook, script: str, base_version: int, user: User | None = None
) -> Hook:
    """Save a new version of the script that was edited from ``base_version``.

    Raises :class:`HookConflict` if the hook was saved since then, and a
    ``ValidationError`` (with line and column) for a syntax error.
    """
    check_script(tenant=hook.tenant, script=script)
    updated = Hook.objects.filter(pk=hook.pk, version=base_version).update(
        script=script, version=F("version") + 1, updated_at=timezone.now()
    )
    if not updated:
        raise HookConflict(
            "This hook was changed by someone else since you opened it. Your text is kept "
            "in the editor: copy it, reload the page, and apply your change again.",
            code="conflict",
        )
    invalidate()
    hook.refresh_from_db()
    HookVersion.objects.create(hook=hook, number=hook.version, script=script, created_by=user)
    return hook


@transaction.atomic
def hook_restore_version(
    *, hook: Hook, number: int, base_version: int, user: User | None = None
) -> Hook:
    """Make an earlier version's script current again, as a new version."""
    version = hook.versions.get(number=number)
    return hook_save_script(hook=hook, script=version.script, base_version=base_version, user=user)


@transaction.atomic
def hook_enable(*, hook: Hook) -> Hook | None:
    """Enable ``hook``; returns the hook it disabled, if any."""
    _lock_tenant(hook.tenant)
    previous = (
        Hook.objects.filter(tenant=hook.tenant, trigger_id=hook.trigger_id, enabled=True)
        .exclude(pk=hook.pk)
        .first()
    )
    if previous is not None:
        Hook.objects.filter(pk=previous.pk).update(enabled=False, updated_at=timezone.now())
    Hook.objects.filter(pk=hook.pk).update(enabled=True, updated_at=timezone.now())
    hook.enabled = True
    invalidate()
    return previous


@transaction.atomic
def hook_disable(*, hook: Hook) -> None:
    """Disable ``hook``; tokens are then issued without running any hook."""
    _lock_tenant(hook.tenant)
    Hook.objects.filter(pk=hook.pk).update(enabled=False, updated_at=timezone.now())
    hook.enabled = False
    invalidate()


@transaction.atomic
def hook_delete(*, hook: Hook) -> None:
    """Delete a hook with its versions, secrets, storage and runs."""
    hook.delete()


@transaction.atomic
def hook_secrets_set(*, hook: Hook, secrets: Mapping[str, str]) -> None:
    """Add or replace secrets; at most 20 per hook."""
    existing = set(hook.secrets.values_list("name", flat=True))
    if len(existing | set(secrets)) > MAX_SECRETS_PER_HOOK:
        raise ValidationError(
            f"A hook has at most {MAX_SECRETS_PER_HOOK} secrets.", code="too_many_secrets"
        )
    for name, value in secrets.items():
        if not isinstance(value, str) or len(value) > 10_000:
            raise ValidationError(f"Secret {name} must be a string of at most 10000 characters.")
        secret = HookSecret(hook=hook, name=name, value_encrypted=encrypt(value))
        secret.full_clean(exclude=["hook"], validate_constraints=False)
        HookSecret.objects.update_or_create(
            hook=hook, name=name, defaults={"value_encrypted": secret.value_encrypted}
        )


@transaction.atomic
def hook_secret_delete(*, hook: Hook, name: str) -> None:
    """Remove one secret; raises ``HookSecret.DoesNotExist`` if there is none."""
    hook.secrets.get(name=name).delete()
