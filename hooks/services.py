"""Writes for hooks: create, save (versioned, conflict-checked), enable and
disable, secrets, restore, delete.

A hook's npm dependencies are resolved (``hooks.dependencies.resolve_lock``:
the registry, the store) when they change, before any transaction, and the
script is checked against the packages they resolved to. The lock is pinned
on the hook and on each version saved: saving a script never re-resolves.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hooks import runtime
from hooks.choices import TriggerId
from hooks.dependencies import Lock, packages_for, resolve_lock
from hooks.dry_run import DryRun, GoLiveRefused, audit_summary, check_go_live, hook_candidate
from hooks.execution import check_script
from hooks.models import (
    MAX_SECRETS_PER_HOOK,
    Hook,
    HookSecret,
    HookStorage,
    HookVersion,
    TenantEgress,
)
from hooks.selectors import STORAGE_CACHE_SECONDS, action_cache_key, storage_cache_key
from tenant.audit import Actor, State, Target, audit_record
from tenant.config_cache import invalidate
from tenant.crypto import encrypt
from tenant.models import AuditEntry, Tenant
from tenant.services import Conflict, tenant_update


class HookConflict(Conflict):
    """The hook was saved by someone else since the edit began."""


def _check_name_free(*, tenant: Tenant, name: str, hook: Hook | None = None) -> None:
    taken = Hook.objects.filter(tenant=tenant, name=name)
    if hook is not None:
        taken = taken.exclude(pk=hook.pk)
    if taken.exists():  # a concurrent twin still meets the database's constraint
        raise Conflict(f"Hook with name {name} already exists.", code="hook_conflict")


def _author_id(actor: Actor) -> int | None:
    # A version made in the dashboard is signed by its user ("saved by").
    return int(actor.id) if actor.kind == AuditEntry.ActorKind.USER else None


def hook_state(hook: Hook) -> dict[str, Any]:
    """What the audit trail records of a hook: secret names, never values."""
    return {
        "name": hook.name,
        "trigger_id": hook.trigger_id,
        "enabled": hook.enabled,
        "version": hook.version,
        "script": hook.script,
        "dependencies": hook.dependencies,
        "packages": [f"{p['name']}@{p['version']}" for p in hook.dependency_lock],
        "secrets": sorted(hook.secrets.values_list("name", flat=True)),
    }


def _audit(hook: Hook, actor: Actor, action: str, before: State, after: State) -> None:
    target = Target(hook.tenant, "hook", hook.pk, hook.name)
    audit_record(target=target, actor=actor, action=action, before=before, after=after)


# Its name before going live was judged on the tenant's real inputs; the
# hook list's Enable action still catches it by this name.
HookSampleRunFailed = GoLiveRefused


def _conflict() -> HookConflict:
    return HookConflict(
        "This hook was changed by someone else since you opened it. Your text is kept "
        "in the editor: copy it, reload the page, and apply your change again.",
        code="conflict",
    )


def _check_go_live(
    *, hook: Hook, script: str, confirm_failing: bool, lock: Lock | None = None
) -> DryRun:
    """Dry-run the point's flow with ``hook`` running ``script`` (with the
    packages of ``lock``, the hook's own by default) against the tenant's
    recorded requests and clients (``hooks.dry_run``); raise
    :class:`GoLiveRefused` for a regression unless ``confirm_failing``.

    Runs before any transaction or lock is taken: a slow script must not hold
    the tenant's row while it runs.
    """
    return check_go_live(
        name=hook.name,
        tenant=hook.tenant,
        trigger_id=hook.trigger_id,
        candidate=hook_candidate(hook=hook, script=script, lock=lock),
        confirm_failing=confirm_failing,
    )


def _lock_tenant(tenant: Tenant) -> None:
    # Serialises enable/disable within a tenant, so that two concurrent
    # enables cannot both pass the "disable the others" step.
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()


def hook_create(
    *,
    tenant: Tenant,
    name: str,
    script: str,
    trigger_id: str = TriggerId.CREDENTIALS_EXCHANGE,
    enabled: bool | None = False,
    secrets: Mapping[str, str] | None = None,
    dependencies: Mapping[str, str] | None = None,
    actor: Actor,
) -> Hook:
    """Create a hook after resolving its dependencies and checking its script
    (``DependencyRefused``, ``ValidationError``).

    ``enabled=None`` enables it when it is the tenant's first hook for the
    point (the dashboard's rule); ``True`` enables it and disables the other.
    """
    wanted = dict(dependencies or {})
    lock = resolve_lock(wanted)  # the registry, before any transaction
    kind = check_script(tenant=tenant, script=script, packages=packages_for(lock))
    return _create(
        tenant=tenant,
        name=name,
        script=script,
        kind=kind,
        trigger_id=trigger_id,
        enabled=enabled,
        secrets=secrets,
        dependencies=wanted,
        lock=lock,
        actor=actor,
    )


@transaction.atomic
def _create(
    *,
    tenant: Tenant,
    name: str,
    script: str,
    kind: str,
    trigger_id: str,
    enabled: bool | None,
    secrets: Mapping[str, str] | None,
    dependencies: dict[str, str],
    lock: Lock,
    actor: Actor,
) -> Hook:
    _check_name_free(tenant=tenant, name=name)
    hook = Hook(
        tenant=tenant,
        name=name,
        trigger_id=trigger_id,
        script=script,
        kind=kind,
        dependencies=dependencies,
        dependency_lock=lock,
    )
    hook.full_clean()
    if enabled is None:
        _lock_tenant(tenant)
        enabled = not Hook.objects.filter(tenant=tenant, trigger_id=trigger_id).exists()
    hook.save()
    HookVersion.objects.create(
        hook=hook,
        number=hook.version,
        script=script,
        dependency_lock=lock,
        created_by_id=_author_id(actor),
    )
    _audit(hook, actor, "create", None, hook_state(hook))
    if secrets:
        hook_secrets_set(hook=hook, secrets=secrets, actor=actor)
    if enabled:
        # Creating is not going live with an edit: callers choose ``enabled``
        # explicitly (the CLI creates disabled, the dashboard enables a
        # point's first hook, whose starter script passes).
        _enable(hook=hook, actor=actor)
    return hook


def hook_save_script(
    *,
    hook: Hook,
    script: str,
    base_version: int,
    actor: Actor,
    action: str = "save",
    confirm_failing: bool = False,
) -> Hook:
    """Save a new version of the script that was edited from ``base_version``.

    Raises :class:`HookConflict` if the hook was saved since then, a
    ``ValidationError`` (with line and column) for a syntax error, and
    :class:`GoLiveRefused` if ``hook`` is enabled and the dry run finds a
    regression (unless ``confirm_failing``); the dry run's summary goes into
    the audit entry. The hook's pinned dependency lock stays as it is
    (dependencies declared before locks existed are resolved now).
    """
    lock = hook.dependency_lock
    if hook.dependencies and not lock:
        lock = resolve_lock(hook.dependencies)
    kind = check_script(tenant=hook.tenant, script=script, packages=packages_for(lock))
    current = Hook.objects.filter(pk=hook.pk).values_list("version", "enabled").first()
    if current is None or current[0] != base_version:
        raise _conflict()  # before running anything; checked again when writing
    checked = None
    if current[1]:
        report = _check_go_live(
            hook=hook, script=script, confirm_failing=confirm_failing, lock=lock
        )
        checked = audit_summary(report, confirmed=confirm_failing)
    return _save_script(
        hook=hook,
        script=script,
        kind=kind,
        base_version=base_version,
        actor=actor,
        action=action,
        lock=lock if lock != hook.dependency_lock else None,
        dry_run=checked,
    )


@transaction.atomic
def _save_script(
    *,
    hook: Hook,
    script: str,
    kind: str,
    base_version: int,
    actor: Actor,
    action: str,
    lock: Lock | None = None,
    dry_run: dict[str, Any] | None = None,
) -> Hook:
    """``lock``: a newly resolved lock for the hook (None keeps its own)."""
    before = hook_state(hook)
    changes: dict[str, Any] = {"dependency_lock": lock} if lock is not None else {}
    updated = Hook.objects.filter(pk=hook.pk, version=base_version).update(
        script=script, kind=kind, version=F("version") + 1, updated_at=timezone.now(), **changes
    )
    if not updated:
        raise _conflict()
    invalidate()
    hook.refresh_from_db()
    HookVersion.objects.create(
        hook=hook,
        number=hook.version,
        script=script,
        dependency_lock=hook.dependency_lock,
        created_by_id=_author_id(actor),
    )
    after = hook_state(hook)
    if dry_run is not None:
        after["dry_run"] = dry_run
    _audit(hook, actor, action, before, after)
    return hook


def hook_restore_version(
    *,
    hook: Hook,
    number: int,
    base_version: int,
    actor: Actor,
    confirm_failing: bool = False,
) -> Hook:
    """Make an earlier version's script current again, as a new version
    (checked like :func:`hook_save_script`)."""
    version = hook.versions.get(number=number)
    return hook_save_script(
        hook=hook,
        script=version.script,
        base_version=base_version,
        actor=actor,
        action=f"restore v{number}",
        confirm_failing=confirm_failing,
    )


def _new_lock(hook: Hook, dependencies: Mapping[str, str] | None) -> Lock | None:
    """The lock for ``dependencies`` if they differ from the hook's (None
    otherwise). Reads the network: call it outside any transaction."""
    if dependencies is None or (
        dict(dependencies) == hook.dependencies and (hook.dependency_lock or not hook.dependencies)
    ):
        return None
    return resolve_lock(dependencies)


def hook_update(
    *,
    hook: Hook,
    name: str | None = None,
    dependencies: Mapping[str, str] | None = None,
    actor: Actor,
    confirm_failing: bool = False,
) -> Hook:
    """Rename a hook or replace its dependencies (the script has its own,
    versioned save; enabling has its own service). New dependencies are
    resolved first (``DependencyRefused``), outside any transaction; on an
    enabled hook they are dry-run like a new script (:class:`GoLiveRefused`
    for a regression unless ``confirm_failing``)."""
    lock = _new_lock(hook, dependencies)
    if lock is not None:
        # A script that requires a package the new dependencies drop is refused,
        # and a live one must not regress with the new packages.
        check_script(tenant=hook.tenant, script=hook.script, packages=packages_for(lock))
        if hook.enabled:
            _check_go_live(
                hook=hook, script=hook.script, confirm_failing=confirm_failing, lock=lock
            )
    return _update(hook=hook, name=name, dependencies=dependencies, lock=lock, actor=actor)


@transaction.atomic
def _update(
    *,
    hook: Hook,
    name: str | None,
    dependencies: Mapping[str, str] | None,
    lock: Lock | None,
    actor: Actor,
) -> Hook:
    before = hook_state(hook)
    if name is not None:
        _check_name_free(tenant=hook.tenant, name=name, hook=hook)
        hook.name = name
    if dependencies is not None:
        hook.dependencies = dict(dependencies)
    if lock is not None:
        hook.dependency_lock = lock
    hook.full_clean()
    hook.save(update_fields=["name", "dependencies", "dependency_lock", "updated_at"])
    invalidate()
    after = hook_state(hook)
    if after != before:
        _audit(hook, actor, "update", before, after)
    return hook


def hook_change(
    *,
    hook: Hook,
    name: str | None = None,
    dependencies: Mapping[str, str] | None = None,
    script: str | None = None,
    enabled: bool | None = None,
    actor: Actor,
) -> Hook:
    """Change any of a hook's name, dependencies, script and state at once,
    all or nothing (the Management API's PATCH).

    If the hook ends up enabled with a script that was not live before (a new
    script, or it was disabled), the change is dry-run on the tenant's
    recorded requests and clients and its summary goes into the audit entry;
    it is never refused on runtime grounds (Auth0 accepts it: Terraform and
    the Deploy CLI send it), only for what cannot compile. The run happens
    before any transaction: nothing is locked while a slow script runs. The
    writes then check that nobody saved the script meanwhile
    (:class:`HookConflict`).
    """
    lock = _new_lock(hook, dependencies)  # the registry, before any transaction
    packages = packages_for(lock if lock is not None else hook.dependency_lock)
    kind = hook.kind
    if script is not None:
        kind = check_script(tenant=hook.tenant, script=script, packages=packages)
    elif lock is not None:
        check_script(tenant=hook.tenant, script=hook.script, packages=packages)
    if name is not None:
        _check_name_free(tenant=hook.tenant, name=name, hook=hook)
    current = Hook.objects.filter(pk=hook.pk).values_list("version", "enabled", "script").first()
    if current is None:
        raise _conflict()
    base_version, was_enabled, live_script = current
    new_script = script if script is not None and script != live_script else None
    checked = None
    if (enabled if enabled is not None else was_enabled) and (
        new_script or not was_enabled or lock is not None
    ):
        report = _check_go_live(
            hook=hook,
            script=new_script or live_script,
            confirm_failing=True,
            lock=lock if lock is not None else hook.dependency_lock,
        )
        checked = audit_summary(report, confirmed=True)
    with transaction.atomic():
        _lock_tenant(hook.tenant)  # first, as enable and disable lock: tenant, then hook
        if not Hook.objects.select_for_update().filter(pk=hook.pk, version=base_version).exists():
            raise _conflict()  # what was checked is no longer what would go live
        if name is not None or dependencies is not None:
            _update(hook=hook, name=name, dependencies=dependencies, lock=lock, actor=actor)
        if new_script is not None:
            _save_script(
                hook=hook,
                script=new_script,
                kind=kind,
                base_version=base_version,
                actor=actor,
                action="save",
                dry_run=checked,
            )
        if enabled is True:
            _enable(hook=hook, actor=actor, dry_run=None if new_script else checked)
        elif enabled is False:
            hook_disable(hook=hook, actor=actor)
    hook.refresh_from_db()
    return hook


def hook_enable(*, hook: Hook, actor: Actor, confirm_failing: bool = False) -> Hook | None:
    """Enable ``hook``; returns the hook it disabled, if any. Raises
    :class:`GoLiveRefused` if the dry run of its script finds a regression
    (unless ``confirm_failing``); the summary goes into the audit entry."""
    report = _check_go_live(hook=hook, script=hook.script, confirm_failing=confirm_failing)
    return _enable(hook=hook, actor=actor, dry_run=audit_summary(report, confirmed=confirm_failing))


@transaction.atomic
def _enable(*, hook: Hook, actor: Actor, dry_run: dict[str, Any] | None = None) -> Hook | None:
    _lock_tenant(hook.tenant)
    previous = (
        Hook.objects.filter(tenant=hook.tenant, trigger_id=hook.trigger_id, enabled=True)
        .exclude(pk=hook.pk)
        .first()
    )
    if previous is not None:
        Hook.objects.filter(pk=previous.pk).update(enabled=False, updated_at=timezone.now())
        _audit(previous, actor, "disable", {"enabled": True}, {"enabled": False})
    was_enabled = Hook.objects.filter(pk=hook.pk, enabled=True).exists()
    Hook.objects.filter(pk=hook.pk).update(enabled=True, updated_at=timezone.now())
    hook.enabled = True
    if not was_enabled:
        after: dict[str, Any] = {"enabled": True}
        if dry_run is not None:
            after["dry_run"] = dry_run
        _audit(hook, actor, "enable", {"enabled": False}, after)
    invalidate()
    return previous


@transaction.atomic
def hook_disable(*, hook: Hook, actor: Actor) -> None:
    """Disable ``hook``; tokens are then issued without running any hook."""
    _lock_tenant(hook.tenant)
    was_enabled = Hook.objects.filter(pk=hook.pk, enabled=True).exists()
    Hook.objects.filter(pk=hook.pk).update(enabled=False, updated_at=timezone.now())
    hook.enabled = False
    if was_enabled:
        _audit(hook, actor, "disable", {"enabled": True}, {"enabled": False})
    invalidate()


@transaction.atomic
def hook_delete(*, hook: Hook, actor: Actor) -> None:
    """Delete a hook with its versions, secrets, storage and runs."""
    _audit(hook, actor, "delete", hook_state(hook), None)
    hook.delete()


@transaction.atomic
def hook_secrets_set(
    *,
    hook: Hook,
    secrets: Mapping[str, str],
    must_exist: bool | None = None,
    actor: Actor,
) -> None:
    """Add or replace secrets; at most 20 per hook.

    ``must_exist=False`` only adds (:class:`Conflict` if a name is taken),
    ``True`` only replaces (``HookSecret.DoesNotExist`` whose message is the
    unknown names); ``None`` does either.
    """
    Hook.objects.select_for_update().filter(pk=hook.pk).first()
    existing = set(hook.secrets.values_list("name", flat=True))
    if must_exist is False and existing & set(secrets):
        taken = ", ".join(sorted(existing & set(secrets)))
        raise Conflict(f"Secret already exists: {taken}.", code="hook_secret_conflict")
    if must_exist and set(secrets) - existing:
        raise HookSecret.DoesNotExist(", ".join(sorted(set(secrets) - existing)))
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
    invalidate()
    _audit(
        hook,
        actor,
        "secrets.set",
        {"secrets": sorted(existing)},
        {"secrets": sorted(existing | set(secrets)), "changed": sorted(secrets)},
    )


@transaction.atomic
def hook_secrets_delete(*, hook: Hook, names: Iterable[str], actor: Actor) -> None:
    """Remove secrets by name; raises ``HookSecret.DoesNotExist`` whose message
    is the unknown names (and removes none) if one of them does not exist."""
    Hook.objects.select_for_update().filter(pk=hook.pk).first()
    wanted = set(names)
    existing = set(hook.secrets.values_list("name", flat=True))
    missing = wanted - existing
    if missing:
        raise HookSecret.DoesNotExist(", ".join(sorted(missing)))
    hook.secrets.filter(name__in=wanted).delete()
    invalidate()
    _audit(
        hook,
        actor,
        "secrets.delete",
        {"secrets": sorted(existing)},
        {"secrets": sorted(existing - wanted), "changed": sorted(wanted)},
    )


def hook_secret_delete(*, hook: Hook, name: str, actor: Actor) -> None:
    """Remove one secret; raises ``HookSecret.DoesNotExist`` if there is none."""
    hook_secrets_delete(hook=hook, names=[name], actor=actor)


@transaction.atomic
def tenant_egress_set(*, tenant: Tenant, hosts: Iterable[str], actor: Actor) -> list[str]:
    """Set the only hosts the tenant's hooks may call (empty: no list of its
    own, the operator's policy alone). Entries are stored as the runtime reads
    them (``API.Example.com`` as ``api.example.com``, ``0x7f000001`` as
    ``127.0.0.1``); one that is not a host pattern is a ``ValidationError``
    naming it. Returns the stored list."""
    try:
        patterns = runtime.parse_tenant_hosts(list(hosts))
    except ValueError as error:
        raise ValidationError(
            "Not an allowed host: %(reason)s.", code="invalid_host", params={"reason": error}
        ) from None
    listed = [pattern.text for pattern in patterns]
    egress = TenantEgress.objects.select_for_update().filter(tenant=tenant).first()
    before = list(egress.hosts) if egress is not None else []
    if listed == before:
        return listed
    egress = egress or TenantEgress(tenant=tenant)
    egress.hosts = listed
    egress.full_clean()
    egress.save()  # watched: the token path's memo moves with this commit
    target = Target(tenant, "tenant", tenant.slug, tenant.name)
    audit_record(
        target=target,
        actor=actor,
        action="update-egress-hosts",
        before={"egress_hosts": before},
        after={"egress_hosts": listed},
    )
    return listed


@transaction.atomic
def tenant_settings_update(
    *,
    tenant: Tenant,
    friendly_name: str | None = None,
    egress_hosts: Iterable[str] | None = None,
    actor: Actor,
) -> Tenant:
    """The tenant's settings as the Management API shows them: its name and
    its hooks' own list of hosts, both or neither changed."""
    # A row of its own: ``tenant`` may be the instance token requests share.
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if friendly_name is not None:
        tenant = tenant_update(tenant=tenant, name=friendly_name, actor=actor)
    if egress_hosts is not None:
        tenant_egress_set(tenant=tenant, hosts=egress_hosts, actor=actor)
    return tenant


def hook_storage_save(*, hook_id: int, write: runtime.StorageWrite) -> bool:
    """Persist a hook's ``storage.set`` unless someone else wrote since it read
    (webtask semantics: ``force`` skips the check). Returns whether it saved."""
    key = storage_cache_key(hook_id)
    with transaction.atomic():
        storage, created = HookStorage.objects.get_or_create(hook_id=hook_id)
        if created:
            # Token requests skip the storage read of a hook without a row
            # (hooks.selectors.enabled_hook_for): from now on, they must read.
            invalidate()
        rows = HookStorage.objects.filter(pk=storage.pk)
        if not write.force:
            rows = rows.filter(etag=int(write.base_etag or 0))
        if not rows.update(data=write.data, etag=F("etag") + 1, updated_at=timezone.now()):
            caches["shared"].delete(key)  # our copy was stale: the next run reads the database
            return False
        saved = HookStorage.objects.values_list("data", "etag").get(pk=storage.pk)
        caches["shared"].delete(key)  # until the commit publishes the new copy
        transaction.on_commit(lambda: caches["shared"].set(key, saved, STORAGE_CACHE_SECONDS))
    return True


def action_cache_apply(
    *, hook_id: int | str, writes: Mapping[str, dict[str, object] | None]
) -> None:
    """Apply an Action's ``api.cache`` changes to the hook's shared cache
    (every server sees them); expired entries are dropped on the way."""
    key = action_cache_key(hook_id)
    shared = caches["shared"]
    entries = dict(shared.get(key) or {})
    entries.update(writes)
    now_ms = timezone.now().timestamp() * 1000
    live = {
        name: entry
        for name, entry in entries.items()
        if entry is not None and float(str(entry["expires_at"])) > now_ms
    }
    if not live:
        shared.delete(key)
        return
    last = max(float(str(entry["expires_at"])) for entry in live.values())
    shared.set(key, live, timeout=max(1, int((last - now_ms) / 1000) + 1))
