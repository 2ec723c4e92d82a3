"""Writes for Actions: create and update the draft (built on every save),
delete, deploy, roll back, and replace a trigger's ordered bindings. Each
leaves an audit row (secret names, never values) in its own transaction.

A build resolves the draft's npm dependencies (``hooks.dependencies``:
exact versions, transitive ones included, integrity-checked, unpacked once
into the store) when they changed, then compiles the draft in the hook
sandbox with them and runs its module body (``hooks.execution.check_script``):
``built`` when it exports ``onExecuteCredentialsExchange``, ``failed`` with
the reason otherwise (a package that cannot be had names the package and
why). The build runs inside the request, before any row is locked, bounded by
``TESSERA_NPM_RESOLVE_TIMEOUT_SECONDS`` and the tenant's hook limits; so a
write answers ``built`` or ``failed``, never ``pending`` (Auth0 builds in the
background; clients that poll for ``built``, the Deploy CLI among them, find
it at once). The lock is pinned on the draft and copied into each deployed
version: a rebuild resolves again only when the dependencies change.

A deploy or rollback of a bound Action and a new binding order change what
token requests run: before any lock, they are dry-run on the tenant's recorded
requests and clients (``hooks.dry_run``), the summary goes into the audit
entry, and with ``confirm_failing=False`` a regression refuses the change
(:class:`hooks.dry_run.GoLiveRefused`). The default, ``True``, never refuses:
the Management API's behaviour, as at Auth0.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from hooks.choices import ActionRuntime, ActionStatus, TriggerId
from hooks.dependencies import DependencyRefused, Lock, packages_for, resolve_lock
from hooks.dry_run import (
    DryRun,
    action_candidate,
    audit_summary,
    bindings_candidate,
    check_go_live,
)
from hooks.execution import check_script
from hooks.models import (
    CREDENTIALS_EXCHANGE_VERSION,
    MAX_ACTIONS_PER_TENANT,
    MAX_BINDINGS_PER_TRIGGER,
    MAX_DEPENDENCIES_PER_ACTION,
    MAX_SECRET_NAME_CHARS,
    MAX_SECRET_VALUE_CHARS,
    MAX_SECRETS_PER_ACTION,
    MAX_VERSIONS_PER_ACTION,
    Action,
    ActionSecret,
    ActionVersion,
    TriggerBinding,
)
from tenant.audit import Actor, State, Target, audit_record
from tenant.config_cache import invalidate
from tenant.crypto import decrypt, encrypt
from tenant.models import Tenant
from tenant.services import Conflict
from tenant.text import is_text


class ActionNotBuilt(ValidationError):
    """A deploy of a draft that is not built (Auth0's text: the Deploy CLI
    retries while it sees ``must be in the 'built' state``)."""


class ActionStillBound(ValidationError):
    """Deleting an Action a trigger still runs, without ``force``."""


class ActionNameTaken(ValidationError):
    """Another Action of the tenant has this name."""


class DraftChanged(ValidationError):
    """An update based on a revision of the draft that is no longer its own."""


class BindingRefused(ValidationError):
    """A binding list that cannot be saved (unknown action, too many...)."""


class FlowChanged(BindingRefused):
    """The trigger's bindings are not the ones the caller based its list on."""


@dataclass(frozen=True)
class SecretSpec:
    """A secret in a write: ``value`` None keeps the stored value."""

    name: str
    value: str | None


@dataclass(frozen=True)
class BindingSpec:
    action: Action
    display_name: str


@dataclass(frozen=True)
class Build:
    status: str
    errors: list[dict[str, str]]
    lock: Lock = field(default_factory=list)  # what the dependencies resolved to


def action_state(action: Action) -> dict[str, Any]:
    """What the audit trail records of an Action: secret names, never values."""
    return {
        "name": action.name,
        "trigger_id": action.trigger_id,
        "runtime": action.runtime,
        "code": action.code,
        "dependencies": action.dependencies,
        "packages": [f"{p['name']}@{p['version']}" for p in action.dependency_lock],
        "status": action.status,
        "secrets": sorted(action.secrets.values_list("name", flat=True)),
    }


def _audit(action: Action, actor: Actor, verb: str, before: State, after: State) -> None:
    target = Target(action.tenant, "action", action.public_id, action.name)
    audit_record(target=target, actor=actor, action=verb, before=before, after=after)


def _check_code_size(code: str) -> None:
    limit = settings.TESSERA_HOOK_MAX_SCRIPT_BYTES
    if len(code.encode(errors="surrogatepass")) > limit:
        raise ValidationError(f"The code is larger than {limit} bytes.", code="code_too_large")


def action_build(
    *,
    tenant: Tenant,
    code: str,
    dependencies: Sequence[dict[str, str]] = (),
    lock: Lock | None = None,
) -> Build:
    """Resolve ``dependencies`` (unless ``lock`` is theirs already), then
    compile ``code`` and run its module body within the tenant's limits,
    ``require`` finding those packages. Reads the network: call it outside
    any transaction."""
    if lock is None or (dependencies and not lock):
        wanted: dict[str, str] = {}
        for item in dependencies:
            if item["name"] in wanted:
                message = f"Dependencies: {item['name']} is listed twice."
                return Build(ActionStatus.FAILED, [{"id": "invalid_dependency", "msg": message}])
            wanted[item["name"]] = item["version"]
        try:
            lock = resolve_lock(wanted)
        except DependencyRefused as error:
            message = " ".join(error.messages)
            return Build(ActionStatus.FAILED, [{"id": error.code or "build_error", "msg": message}])
    try:
        kind = check_script(tenant=tenant, script=code, packages=packages_for(lock))
    except ValidationError as error:
        message = " ".join(error.messages)
        return Build(ActionStatus.FAILED, [{"id": "build_error", "msg": message}], lock)
    if kind != "action":
        message = "The code must export onExecuteCredentialsExchange (an Action), not a Hook."
        return Build(ActionStatus.FAILED, [{"id": "build_error", "msg": message}], lock)
    return Build(ActionStatus.BUILT, [], lock)


# npm's longest package name; the longest version range and registry URL kept.
DEPENDENCY_LIMITS = {"name": 214, "version": 100, "registry_url": 500}


def _clean_dependencies(dependencies: Iterable[Any]) -> list[dict[str, str]]:
    """``[{name, version, registry_url?}]``, each a line of text within
    ``DEPENDENCY_LIMITS`` (every door writes through here, an import too)."""
    cleaned = []
    for item in dependencies:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValidationError("A dependency is {name, version}.", code="invalid")
        entry = {"name": item["name"], "version": item.get("version") or "latest"}
        if item.get("registry_url"):
            entry["registry_url"] = item["registry_url"]
        for key, value in entry.items():
            if not isinstance(value, str) or not is_text(value, one_line=True):
                raise ValidationError(
                    f"A dependency's {key} must be one line of text.", code="invalid"
                )
            if len(value) > DEPENDENCY_LIMITS[key]:
                raise ValidationError(
                    f"A dependency's {key} is longer than {DEPENDENCY_LIMITS[key]} characters.",
                    code="invalid",
                )
        cleaned.append(entry)
    if len(cleaned) > MAX_DEPENDENCIES_PER_ACTION:
        raise ValidationError(
            f"An action has at most {MAX_DEPENDENCIES_PER_ACTION} dependencies.",
            code="too_many_dependencies",
        )
    return cleaned


def _check_secrets(secrets: Sequence[SecretSpec]) -> None:
    names = [s.name for s in secrets]
    if len(set(names)) != len(names):
        raise ValidationError("Secret names must be unique.", code="duplicate_secret")
    if len(names) > MAX_SECRETS_PER_ACTION:
        raise ValidationError(
            f"An action has at most {MAX_SECRETS_PER_ACTION} secrets.", code="too_many_secrets"
        )
    for secret in secrets:
        if len(secret.name) > MAX_SECRET_NAME_CHARS:
            raise ValidationError(
                f"A secret name has at most {MAX_SECRET_NAME_CHARS} characters.",
                code="invalid_secret",
            )
        value = secret.value
        if value is not None and (
            not isinstance(value, str) or len(value) > MAX_SECRET_VALUE_CHARS
        ):
            raise ValidationError(
                f"Secret {secret.name} must be a string of at most "
                f"{MAX_SECRET_VALUE_CHARS} characters.",
                code="invalid_secret",
            )


def _replace_secrets(action: Action, secrets: Sequence[SecretSpec]) -> None:
    """The draft's secrets become ``secrets``; a spec without a value keeps
    the stored one (a new name needs a value)."""
    existing = set(action.secrets.values_list("name", flat=True))
    missing = [s.name for s in secrets if s.value is None and s.name not in existing]
    if missing:
        raise ValidationError(f"Secret {missing[0]} needs a value.", code="invalid_secret")
    action.secrets.exclude(name__in=[s.name for s in secrets]).delete()
    for secret in secrets:
        if secret.value is None:
            continue
        row = ActionSecret(action=action, name=secret.name, value_encrypted=encrypt(secret.value))
        row.full_clean(exclude=["action"], validate_constraints=False)
        ActionSecret.objects.update_or_create(
            action=action, name=secret.name, defaults={"value_encrypted": row.value_encrypted}
        )


def _name_free(tenant: Tenant, name: str, exclude: int | None = None) -> None:
    taken = Action.objects.filter(tenant=tenant, name=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ActionNameTaken(f"An action with name '{name}' already exists.", code="conflict")


def action_create(
    *,
    tenant: Tenant,
    name: str,
    code: str,
    actor: Actor,
    trigger_id: str = TriggerId.CREDENTIALS_EXCHANGE,
    trigger_version: str = CREDENTIALS_EXCHANGE_VERSION,
    runtime: str = ActionRuntime.NODE22,
    dependencies: Iterable[Any] = (),
    secrets: Sequence[SecretSpec] = (),
) -> Action:
    """Create an Action and build its draft (``built`` or ``failed``)."""
    _check_code_size(code)
    _check_secrets(secrets)
    cleaned = _clean_dependencies(dependencies)
    build = action_build(tenant=tenant, code=code, dependencies=cleaned)
    return _create(
        tenant=tenant,
        name=name,
        code=code,
        actor=actor,
        trigger_id=trigger_id,
        trigger_version=trigger_version,
        runtime=runtime,
        dependencies=cleaned,
        secrets=secrets,
        build=build,
    )


@transaction.atomic
def _create(
    *,
    tenant: Tenant,
    name: str,
    code: str,
    actor: Actor,
    trigger_id: str,
    trigger_version: str,
    runtime: str,
    dependencies: list[dict[str, str]],
    secrets: Sequence[SecretSpec],
    build: Build,
) -> Action:
    # One create at a time per tenant, so that two cannot both take the last place.
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    if Action.objects.filter(tenant=tenant).count() >= MAX_ACTIONS_PER_TENANT:
        raise ValidationError(
            f"A tenant has at most {MAX_ACTIONS_PER_TENANT} actions.", code="too_many_actions"
        )
    _name_free(tenant, name)
    action = Action(
        tenant=tenant,
        name=name,
        trigger_id=trigger_id,
        trigger_version=trigger_version,
        code=code,
        runtime=runtime,
        dependencies=dependencies,
        dependency_lock=build.lock,
        status=build.status,
        build_errors=build.errors,
        built_at=timezone.now() if build.status == ActionStatus.BUILT else None,
    )
    action.full_clean()
    action.save()
    if secrets:
        _replace_secrets(action, secrets)
    _audit(action, actor, "create", None, action_state(action))
    return action


def action_update(
    *,
    action: Action,
    actor: Actor,
    name: str | None = None,
    code: str | None = None,
    runtime: str | None = None,
    dependencies: Iterable[Any] | None = None,
    secrets: Sequence[SecretSpec] | None = None,
    base_revision: int | None = None,
) -> Action:
    """Change the draft (what a binding runs changes only on deploy); a new
    ``code`` or new dependencies are built again (new dependencies resolved
    anew). ``secrets`` replaces the draft's list. ``base_revision`` (the
    revision the caller edited) refuses, with :class:`DraftChanged`, a change
    to a draft someone changed since."""
    if code is not None:
        _check_code_size(code)
    if secrets is not None:
        _check_secrets(secrets)
    cleaned = _clean_dependencies(dependencies) if dependencies is not None else None
    new_dependencies = cleaned is not None and cleaned != action.dependencies
    build = None
    if code is not None or new_dependencies:
        build = action_build(
            tenant=action.tenant,
            code=code if code is not None else action.code,
            dependencies=cleaned if cleaned is not None else action.dependencies,
            lock=None if new_dependencies else action.dependency_lock,
        )
    return _update(
        action=action,
        actor=actor,
        name=name,
        code=code,
        runtime=runtime,
        dependencies=cleaned,
        secrets=secrets,
        build=build,
        base_revision=base_revision,
    )


@transaction.atomic
def _update(
    *,
    action: Action,
    actor: Actor,
    name: str | None,
    code: str | None,
    runtime: str | None,
    dependencies: list[dict[str, str]] | None,
    secrets: Sequence[SecretSpec] | None,
    build: Build | None,
    base_revision: int | None = None,
) -> Action:
    # The row lock orders this update and any deploy of the same Action: a
    # deploy sees the whole draft before or after, never half of it.
    locked = Action.objects.select_for_update().get(pk=action.pk)
    if base_revision is not None and locked.revision != base_revision:
        raise DraftChanged(
            f"Action '{locked.name}' was changed since revision {base_revision} "
            f"(it is at revision {locked.revision}).",
            code="draft_changed",
        )
    before = action_state(locked)
    changed = False
    if name is not None and name != locked.name:
        _name_free(locked.tenant, name, exclude=locked.pk)
        locked.name = name
        changed = True
        invalidate()  # the flow's run log names the Action
    if runtime is not None and runtime != locked.runtime:
        locked.runtime, changed = runtime, True
    rebuilt = False
    if dependencies is not None and dependencies != locked.dependencies:
        locked.dependencies, changed, rebuilt = dependencies, True, True
    if code is not None and code != locked.code:
        locked.code, changed, rebuilt = code, True, True
    if rebuilt and build is not None:
        locked.status = build.status
        locked.build_errors = build.errors
        locked.built_at = timezone.now() if build.status == ActionStatus.BUILT else None
        locked.dependency_lock = build.lock
    # A tool re-sending the same Action (the Deploy CLI on every import)
    # changes nothing, not even a timestamp.
    if changed:
        locked.full_clean()
        locked.revision = F("revision") + 1
        locked.save()
    if secrets is not None:
        _replace_secrets(locked, secrets)
    locked.refresh_from_db()
    after = action_state(locked)
    rewritten = sorted(secret.name for secret in secrets or () if secret.value is not None)
    if rewritten:
        after["secrets_written"] = rewritten  # names only: a value change shows too
    if after != before:  # a tool re-sending the same Action leaves no trail
        _audit(locked, actor, "update", before, after)
    return locked


def action_bound_triggers(*, action: Action) -> list[str]:
    return sorted(set(action.bindings.values_list("trigger_id", flat=True)))


@transaction.atomic
def action_delete(*, action: Action, actor: Actor, force: bool = False) -> None:
    """Delete an Action with its versions and secrets. A bound Action is
    refused unless ``force``, which unbinds it first (audited per trigger)."""
    locked = Action.objects.select_for_update().get(pk=action.pk)
    triggers = action_bound_triggers(action=locked)
    if triggers and not force:
        raise ActionStillBound(
            f"Action '{locked.name}' is bound to the {', '.join(triggers)} trigger; "
            "unbind it first or delete it with force=true.",
            code="action_bound",
        )
    for trigger_id in triggers:
        remaining = [
            BindingSpec(binding.action, binding.display_name)
            for binding in _bindings(locked.tenant, trigger_id)
            if binding.action_id != locked.pk
        ]
        _replace_bindings(locked.tenant, trigger_id, remaining, actor)
    _audit(locked, actor, "delete", action_state(locked), None)
    locked.delete()
    invalidate()


def deployed_version(*, action: Action) -> ActionVersion | None:
    return action.versions.filter(deployed=True).first()


def all_changes_deployed(*, action: Action, deployed: ActionVersion | None) -> bool:
    """Whether the deployed version is the draft as it stands (secrets aside)."""
    return (
        deployed is not None
        and deployed.code == action.code
        and deployed.runtime == action.runtime
        and deployed.dependencies == action.dependencies
    )


def _is_draft(action: Action, version: ActionVersion) -> bool:
    """Whether ``version`` is the draft as it stands, secrets' values included."""
    if not all_changes_deployed(action=action, deployed=version):
        return False
    secrets = dict(action.secrets.values_list("name", "value_encrypted"))
    if set(secrets) != set(version.secrets_encrypted):
        return False
    return all(
        decrypt(value) == decrypt(version.secrets_encrypted[name])
        for name, value in secrets.items()
    )


def _new_version(
    action: Action, *, code: str, runtime: str, dependencies: Any, lock: Lock
) -> ActionVersion:
    """A new deployed version (the previous one stops being deployed)."""
    number = (action.versions.aggregate(last=Max("number"))["last"] or 0) + 1
    action.versions.filter(deployed=True).update(deployed=False)
    secrets = dict(action.secrets.values_list("name", "value_encrypted"))
    version = ActionVersion(
        action=action,
        number=number,
        code=code,
        runtime=runtime,
        dependencies=dependencies,
        dependency_lock=lock,
        secrets_encrypted=secrets,
        deployed=True,
    )
    version.full_clean(exclude=["action"], validate_constraints=False)
    version.save()
    invalidate()  # the update() above bypasses the model signals
    return version


def _prune_versions(action: Action) -> list[int]:
    """Delete the versions past Auth0's limit, oldest first (the deployed one,
    the newest, always stays); returns their numbers."""
    stale = list(
        action.versions.order_by("-number").values_list("pk", "number")[MAX_VERSIONS_PER_ACTION:]
    )
    if stale:
        ActionVersion.objects.filter(pk__in=[pk for pk, _ in stale]).delete()
    return sorted(number for _, number in stale)


def _version_audit(
    version: ActionVersion, pruned: list[int], dry_run: dict[str, Any]
) -> dict[str, Any]:
    after: dict[str, Any] = {
        "deployed_version": version.number,
        "code": version.code,
        "dry_run": dry_run,
    }
    if pruned:
        after["deleted_versions"] = pruned
    return after


def _changed_since_check() -> Conflict:
    return Conflict(
        "The action changed while its deploy was being checked; check it again.",
        code="action_changed",
    )


def _check_in_place(
    action: Action, version: ActionVersion | None, confirm_failing: bool
) -> DryRun | None:
    """Dry-run the flow with ``action`` running its draft (or ``version``)
    in place; None when no trigger runs it."""
    candidate = action_candidate(action=action, version=version)
    if candidate is None:
        return None
    return check_go_live(
        name=action.name,
        tenant=action.tenant,
        trigger_id=action.trigger_id,
        candidate=candidate,
        confirm_failing=confirm_failing,
    )


def action_deploy(*, action: Action, actor: Actor, confirm_failing: bool = True) -> ActionVersion:
    """Make the draft (code, runtime, dependencies, secrets) a new numbered,
    deployed version: what the bindings run from now on. An Action keeps
    Auth0's ``MAX_VERSIONS_PER_ACTION``: the oldest past it are deleted.

    If a trigger runs the Action, the draft is first dry-run in its place on
    the tenant's recorded requests and clients, outside any lock; the
    summary goes into the audit entry. ``confirm_failing=False`` refuses a
    regression (:class:`hooks.dry_run.GoLiveRefused`, nothing deployed);
    the default never refuses (the Management API, as at Auth0).
    """
    current = Action.objects.get(pk=action.pk)
    report: DryRun | None = None
    previous = deployed_version(action=current)
    if current.status == ActionStatus.BUILT and not (
        previous is not None and _is_draft(current, previous)
    ):
        report = _check_in_place(current, None, confirm_failing)
    return _deploy(
        action=current,
        actor=actor,
        checked_revision=current.revision if report is not None and not confirm_failing else None,
        dry_run=audit_summary(report, confirmed=confirm_failing),
    )


@transaction.atomic
def _deploy(
    *, action: Action, actor: Actor, checked_revision: int | None, dry_run: dict[str, Any]
) -> ActionVersion:
    locked = Action.objects.select_for_update().get(pk=action.pk)
    if checked_revision is not None and locked.revision != checked_revision:
        raise _changed_since_check()
    if locked.status != ActionStatus.BUILT:
        raise ActionNotBuilt(
            f"Action '{locked.name}' must be in the 'built' state before it can be "
            f"deployed (it is '{locked.status}').",
            code="action_not_built",
        )
    previous = deployed_version(action=locked)
    if previous is not None and _is_draft(locked, previous):
        return previous  # nothing to deploy: a re-run import makes no new version
    version = _new_version(
        locked,
        code=locked.code,
        runtime=locked.runtime,
        dependencies=locked.dependencies,
        lock=locked.dependency_lock,
    )
    _audit(
        locked,
        actor,
        "deploy",
        {"deployed_version": previous.number if previous else None},
        _version_audit(version, _prune_versions(locked), dry_run),
    )
    return version


def action_rollback(
    *, action: Action, version: ActionVersion, actor: Actor, confirm_failing: bool = True
) -> ActionVersion:
    """Deploy an earlier version again, as a new version with its code,
    runtime and dependencies (and the draft's current secrets: a secret
    rotated since must not come back). The draft is left as it is.

    Checked like :func:`action_deploy` (the dry run, ``confirm_failing``).
    """
    report = (
        _check_in_place(action, version, confirm_failing)
        if version.action_id == action.pk
        else None
    )
    return _rollback(
        action=action,
        version=version,
        actor=actor,
        dry_run=audit_summary(report, confirmed=confirm_failing),
    )


@transaction.atomic
def _rollback(
    *, action: Action, version: ActionVersion, actor: Actor, dry_run: dict[str, Any]
) -> ActionVersion:
    locked = Action.objects.select_for_update().get(pk=action.pk)
    if version.action_id != locked.pk:
        raise ActionVersion.DoesNotExist("That version is not one of this action's.")
    previous = deployed_version(action=locked)
    new = _new_version(
        locked,
        code=version.code,
        runtime=version.runtime,
        dependencies=version.dependencies,
        lock=version.dependency_lock,
    )
    _audit(
        locked,
        actor,
        f"rollback v{version.number}",
        {"deployed_version": previous.number if previous else None},
        _version_audit(new, _prune_versions(locked), dry_run),
    )
    return new


def _bindings(tenant: Tenant, trigger_id: str) -> list[TriggerBinding]:
    return list(
        TriggerBinding.objects.filter(tenant=tenant, trigger_id=trigger_id)
        .select_related("action")
        .order_by("position")
    )


def _binding_state(bindings: Iterable[BindingSpec | TriggerBinding]) -> list[dict[str, str]]:
    return [{"action": b.action.name, "display_name": b.display_name} for b in bindings]


def _replace_bindings(
    tenant: Tenant,
    trigger_id: str,
    specs: Sequence[BindingSpec],
    actor: Actor,
    dry_run: dict[str, Any] | None = None,
) -> list[TriggerBinding]:
    before = _bindings(tenant, trigger_id)
    if _binding_state(before) == _binding_state(specs):
        return before  # the same flow again: nothing to write
    kept = {b.action_id: b for b in before}
    TriggerBinding.objects.filter(tenant=tenant, trigger_id=trigger_id).delete()
    saved = []
    for position, spec in enumerate(specs):
        old = kept.get(spec.action.pk)
        binding = TriggerBinding(
            tenant=tenant,
            trigger_id=trigger_id,
            action=spec.action,
            position=position,
            display_name=spec.display_name,
        )
        if old is not None:  # the same binding, moved: keep its id and age
            binding.public_id, binding.created_at = old.public_id, old.created_at
        binding.full_clean(exclude=["tenant", "action"], validate_constraints=False)
        binding.save()
        if old is not None:
            TriggerBinding.objects.filter(pk=binding.pk).update(created_at=old.created_at)
        saved.append(binding)
    audit_record(
        target=Target(tenant, "trigger", trigger_id, trigger_id),
        actor=actor,
        action="bindings.replace",
        before={"bindings": _binding_state(before)},
        after={"bindings": _binding_state(specs), **({"dry_run": dry_run} if dry_run else {})},
    )
    invalidate()
    return saved


def bindings_replace(
    *,
    tenant: Tenant,
    trigger_id: str,
    bindings: Sequence[BindingSpec],
    actor: Actor,
    based_on: Sequence[str] | None = None,
    confirm_failing: bool = True,
) -> list[TriggerBinding]:
    """Make ``bindings`` the trigger's whole, ordered flow.

    Each Action must be the tenant's, for this trigger, deployed, and listed
    once; at most ``MAX_BINDINGS_PER_TRIGGER``. Raises :class:`BindingRefused`
    and writes nothing otherwise. ``based_on`` (the public ids of the Actions
    the caller saw bound, in order) refuses, with :class:`FlowChanged`, a
    list made from a flow that someone changed since.

    A new flow is first dry-run on the tenant's recorded requests and
    clients, outside any lock; the summary goes into the audit entry.
    ``confirm_failing=False`` refuses a regression
    (:class:`hooks.dry_run.GoLiveRefused`, nothing changed); the default
    never refuses (the Management API, as at Auth0).
    """
    _check_bindings(tenant, trigger_id, bindings)
    _check_based_on(tenant, trigger_id, based_on)  # before the dry run, and again under the lock
    report: DryRun | None = None
    if _binding_state(_bindings(tenant, trigger_id)) != _binding_state(bindings):
        report = check_go_live(
            name=f"The new {trigger_id} flow",
            tenant=tenant,
            trigger_id=trigger_id,
            candidate=bindings_candidate(
                tenant=tenant, trigger_id=trigger_id, actions=[spec.action for spec in bindings]
            ),
            confirm_failing=confirm_failing,
        )
    return _bindings_replace(
        tenant=tenant,
        trigger_id=trigger_id,
        bindings=bindings,
        actor=actor,
        based_on=based_on,
        dry_run=audit_summary(report, confirmed=confirm_failing) if report else None,
    )


@transaction.atomic
def _bindings_replace(
    *,
    tenant: Tenant,
    trigger_id: str,
    bindings: Sequence[BindingSpec],
    actor: Actor,
    based_on: Sequence[str] | None,
    dry_run: dict[str, Any] | None,
) -> list[TriggerBinding]:
    # One flow edit at a time per tenant (the positions are renumbered).
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
    _check_bindings(tenant, trigger_id, bindings)  # again, under the lock
    _check_based_on(tenant, trigger_id, based_on)
    return _replace_bindings(tenant, trigger_id, bindings, actor, dry_run)


def _check_based_on(tenant: Tenant, trigger_id: str, based_on: Sequence[str] | None) -> None:
    if based_on is None:
        return
    current = [binding.action.public_id for binding in _bindings(tenant, trigger_id)]
    if list(based_on) != current:
        raise FlowChanged(
            "The flow was changed since it was read; nothing was changed.", code="flow_changed"
        )


def _check_bindings(tenant: Tenant, trigger_id: str, bindings: Sequence[BindingSpec]) -> None:
    if trigger_id not in TriggerId.values:
        raise BindingRefused(f"Unknown trigger: {trigger_id}.", code="invalid_trigger")
    if len(bindings) > MAX_BINDINGS_PER_TRIGGER:
        raise BindingRefused(
            f"A trigger has at most {MAX_BINDINGS_PER_TRIGGER} bound actions.",
            code="too_many_bindings",
        )
    seen: set[int] = set()
    for spec in bindings:
        action = spec.action
        if action.tenant_id != tenant.pk:
            raise BindingRefused("The action does not exist.", code="inexistent_action")
        if action.trigger_id != trigger_id:
            raise BindingRefused(
                f"Action '{action.name}' does not support the {trigger_id} trigger.",
                code="invalid_trigger",
            )
        if action.pk in seen:
            raise BindingRefused(
                f"Action '{action.name}' is bound twice.", code="duplicate_binding"
            )
        seen.add(action.pk)
        if not action.versions.filter(deployed=True).exists():
            raise BindingRefused(
                f"Action '{action.name}' must be deployed before it can be bound.",
                code="action_not_deployed",
            )
