"""Reads for hooks and Actions."""

from dataclasses import dataclass

from django.core.cache import caches
from django.db.models import Exists, OuterRef, QuerySet

from hooks import runtime
from hooks.execution import script_key
from hooks.models import (
    Action,
    ActionVersion,
    Hook,
    HookRun,
    HookStorage,
    TenantEgress,
    TriggerBinding,
)
from tenant.config_cache import memoized
from tenant.crypto import decrypt
from tenant.models import Tenant

STORAGE_CACHE_SECONDS = 3600
# What a hook that never wrote its storage reads: no row, etag 0.
EMPTY_STORAGE = runtime.StorageSnapshot(data=None, etag="0")


@dataclass(frozen=True)
class RunnableHook:
    """What running a saved hook needs, detached from the ORM."""

    id: int
    name: str
    version: int
    kind: str
    script: str
    script_key: str
    secrets: dict[str, str]
    # Whether the script names webtask storage at all: only then does a run
    # read it, inside the tenant's run slot (hooks.pipeline).
    uses_storage: bool


def hook_get(*, tenant: Tenant, name: str) -> Hook:
    """The tenant's hook called ``name``; raises ``Hook.DoesNotExist``."""
    return Hook.objects.get(tenant=tenant, name=name)


def hook_list(
    *, tenant: Tenant, enabled: bool | None = None, trigger_id: str | None = None
) -> QuerySet[Hook]:
    """The tenant's hooks, by extensibility point and name, optionally only
    the enabled (or disabled) ones, or one point's."""
    hooks = Hook.objects.filter(tenant=tenant)
    if enabled is not None:
        hooks = hooks.filter(enabled=enabled)
    if trigger_id:
        hooks = hooks.filter(trigger_id=trigger_id)
    return hooks.order_by("trigger_id", "name")


def hook_find(*, tenant: Tenant, public_id: str) -> Hook | None:
    """The tenant's hook by its public id; None for another tenant's too."""
    return Hook.objects.filter(tenant=tenant, public_id=public_id).first()


def hook_secret_names(*, hook: Hook) -> list[str]:
    """The names of the hook's secrets, sorted (never their values)."""
    return list(hook.secrets.order_by("name").values_list("name", flat=True))


def hook_secrets(*, hook: Hook) -> dict[str, str]:
    return {s.name: decrypt(s.value_encrypted) for s in hook.secrets.all()}


def storage_cache_key(hook_id: int) -> str:
    return f"tessera:hook-storage:{hook_id}"


def action_cache_key(hook_id: int | str) -> str:
    return f"tessera:action-cache:{hook_id}"


def action_cache(*, hook_id: int | str) -> dict[str, dict[str, object]]:
    """An Action's ``api.cache`` entries, shared by every server (expired
    ones are dropped by the runtime)."""
    return dict(caches["shared"].get(action_cache_key(hook_id)) or {})


def hook_storage(*, hook_id: int) -> runtime.StorageSnapshot:
    """The hook's storage, from the shared cache when it is there. A stale copy
    costs no data: writes are checked against the database's etag."""
    cached = caches["shared"].get(storage_cache_key(hook_id))
    if cached is None:
        row = HookStorage.objects.filter(hook_id=hook_id).values_list("data", "etag").first()
        cached = row if row else (None, 0)
        caches["shared"].set(storage_cache_key(hook_id), cached, STORAGE_CACHE_SECONDS)
    data, etag = cached
    return runtime.StorageSnapshot(data=data, etag=str(etag))


def enabled_hook_for(*, tenant: Tenant, trigger_id: str) -> RunnableHook | None:
    """The tenant's enabled hook for the point, ready to run, or None,
    memoised for token requests. Its storage is data, not configuration:
    the pipeline reads it when the run gets its turn."""

    def load() -> RunnableHook | None:
        hook = Hook.objects.filter(tenant=tenant, trigger_id=trigger_id, enabled=True).first()
        if hook is None:
            return None
        return RunnableHook(
            id=hook.pk,
            name=hook.name,
            version=hook.version,
            kind=hook.kind,
            script=hook.script,
            script_key=script_key(hook.script),
            secrets=hook_secrets(hook=hook),
            uses_storage="storage" in hook.script,
        )

    return memoized(("enabled-hook", tenant.pk, trigger_id), load)


def tenant_egress_list(*, tenant: Tenant) -> list[str]:
    """The hosts the tenant lets its hooks call, as stored (empty: no list of
    its own)."""
    hosts = TenantEgress.objects.filter(tenant=tenant).values_list("hosts", flat=True).first()
    return list(hosts or [])


def tenant_egress_hosts(*, tenant: Tenant) -> tuple[str, ...]:
    """``tenant_egress_list``, memoised for token requests."""
    return memoized(("egress-hosts", tenant.pk), lambda: tuple(tenant_egress_list(tenant=tenant)))


def hook_runs(*, tenant: Tenant, hook: Hook | None = None) -> QuerySet[HookRun]:
    """The tenant's runs, newest first, optionally of one hook."""
    runs = HookRun.objects.filter(tenant=tenant).select_related("hook")
    return runs.filter(hook=hook) if hook is not None else runs


@dataclass(frozen=True)
class RunnableAction:
    """A bound Action's deployed version, ready to run, detached from the ORM."""

    action_id: str
    name: str
    version_id: str
    version_number: int
    code: str
    # Its warm context: one per deployed version, never shared with a Hook.
    context_key: str
    # Its api.cache, shared by all its versions (as at Auth0) and keyed by its
    # public id (a database id can come back after a restore), read only by
    # code that names it: Auth0 lets an entry vanish early, so code that
    # reaches it another way may find it empty, and a request saves a
    # shared-cache round trip per Action that has no use for it.
    cache_id: str
    uses_cache: bool
    secrets: dict[str, str]


def bound_actions_for(*, tenant: Tenant, trigger_id: str) -> tuple[RunnableAction, ...]:
    """The deployed versions of the Actions bound to the tenant's trigger, in
    binding order; memoised for token requests like ``enabled_hook_for``."""

    def load() -> tuple[RunnableAction, ...]:
        bindings = list(
            TriggerBinding.objects.filter(tenant=tenant, trigger_id=trigger_id)
            .order_by("position")
            .values_list("action_id", "action__public_id", "action__name")
        )
        if not bindings:
            return ()
        versions = {
            version.action_id: version
            for version in ActionVersion.objects.filter(
                action_id__in=[action_id for action_id, _, _ in bindings], deployed=True
            )
        }
        runnable = []
        for action_id, public_id, name in bindings:
            version = versions.get(action_id)
            if version is None:  # bindings need a deployed version; kept safe all the same
                continue
            runnable.append(
                RunnableAction(
                    action_id=public_id,
                    name=name,
                    version_id=version.public_id,
                    version_number=version.number,
                    code=version.code,
                    context_key=f"action-version:{version.pk}:{script_key(version.code)}",
                    cache_id=f"action:{public_id}",
                    uses_cache="cache" in version.code,
                    secrets={
                        secret: decrypt(value)
                        for secret, value in version.secrets_encrypted.items()
                    },
                )
            )
        return tuple(runnable)

    return memoized(("bound-actions", tenant.pk, trigger_id), load)


def action_execution(*, tenant: Tenant, execution_id: str) -> HookRun | None:
    """The tenant's flow execution by id; None for another tenant's too."""
    if not execution_id:
        return None
    return HookRun.objects.filter(tenant=tenant, execution_id=execution_id).first()


def action_find(
    *, tenant: Tenant, public_id: str | None = None, name: str | None = None
) -> Action | None:
    """The tenant's Action by id or by name; None for another tenant's too."""
    actions = Action.objects.filter(tenant=tenant)
    if public_id is not None:
        return actions.filter(public_id=public_id).first()
    return actions.filter(name=name).first()


def action_version_find(*, action: Action, public_id: str) -> ActionVersion | None:
    return action.versions.filter(public_id=public_id).first()


def action_list(
    *,
    tenant: Tenant,
    trigger_id: str | None = None,
    name: str | None = None,
    deployed: bool | None = None,
) -> QuerySet[Action]:
    """The tenant's Actions, oldest first, optionally one trigger's, one
    name's, or only those with (or without) a deployed version."""
    actions = Action.objects.filter(tenant=tenant).order_by("created_at", "id")
    if trigger_id:
        actions = actions.filter(trigger_id=trigger_id)
    if name:
        actions = actions.filter(name=name)
    if deployed is not None:
        live = Exists(ActionVersion.objects.filter(action=OuterRef("pk"), deployed=True))
        actions = actions.filter(live if deployed else ~live)
    return actions


def trigger_bindings(*, tenant: Tenant, trigger_id: str) -> QuerySet[TriggerBinding]:
    """A trigger's bound Actions, in the order the flow runs them."""
    return (
        TriggerBinding.objects.filter(tenant=tenant, trigger_id=trigger_id)
        .select_related("action")
        .order_by("position")
    )


def trigger_binding_find(
    *, tenant: Tenant, trigger_id: str, public_id: str
) -> TriggerBinding | None:
    return (
        trigger_bindings(tenant=tenant, trigger_id=trigger_id).filter(public_id=public_id).first()
    )
