"""Reads for hooks and Actions."""

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.cache import caches
from django.db.models import Exists, OuterRef, QuerySet, Subquery

from hooks import runtime
from hooks.choices import TriggerId
from hooks.dependencies import runnable_packages
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
    # Its resolved dependencies (the hook's pinned lock), or None.
    packages: runtime.Packages | None = None


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
            script_key=runtime.script_key(hook.script),
            secrets=hook_secrets(hook=hook),
            uses_storage="storage" in hook.script,
            packages=runnable_packages(hook.dependency_lock),
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
    # The version's resolved dependencies (pinned at deploy), or None.
    packages: runtime.Packages | None = None


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
                    context_key=f"action-version:{version.pk}:{runtime.script_key(version.code)}",
                    cache_id=f"action:{public_id}",
                    uses_cache="cache" in version.code,
                    secrets={
                        secret: decrypt(value)
                        for secret, value in version.secrets_encrypted.items()
                    },
                    packages=runnable_packages(version.dependency_lock),
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


def action_named(*, tenant: Tenant, ref: str) -> Action:
    """The tenant's Action named ``ref``, or else whose id is ``ref`` (the
    commands take either); raises ``Action.DoesNotExist``."""
    action = action_find(tenant=tenant, name=ref) or action_find(tenant=tenant, public_id=ref)
    if action is None:
        raise Action.DoesNotExist(ref)
    return action


def action_draft_secrets(*, action: Action) -> dict[str, str]:
    """The draft's secrets, decrypted, for a test run of the draft."""
    return {s.name: decrypt(s.value_encrypted) for s in action.secrets.all()}


def action_secret_names(*, action: Action) -> list[str]:
    """The names of the draft's secrets, sorted (never their values)."""
    return list(action.secrets.order_by("name").values_list("name", flat=True))


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


def with_deploy_state(actions: QuerySet[Action]) -> QuerySet[Action]:
    """``actions`` with ``deployed_number`` (None when never deployed),
    ``in_sync`` (the deployed version is the draft: Auth0's
    ``all_changes_deployed``, secrets aside) and ``is_bound``."""
    deployed = ActionVersion.objects.filter(action=OuterRef("pk"), deployed=True)
    return actions.annotate(
        deployed_number=Subquery(deployed.values("number")[:1]),
        in_sync=Exists(
            deployed.filter(
                code=OuterRef("code"),
                runtime=OuterRef("runtime"),
                dependencies=OuterRef("dependencies"),
            )
        ),
        is_bound=Exists(TriggerBinding.objects.filter(action=OuterRef("pk"))),
    )


@dataclass(frozen=True)
class Flow:
    """What a trigger runs for a tenant, in order: the enabled hook (if
    any), then the bound Actions (each running its deployed version)."""

    trigger_id: str
    hook: Hook | None
    bindings: Sequence[TriggerBinding]

    @property
    def action_ids(self) -> list[str]:
        return [binding.action.public_id for binding in self.bindings]


def trigger_flow(*, tenant: Tenant, trigger_id: str = TriggerId.CREDENTIALS_EXCHANGE) -> Flow:
    """The tenant's flow for a trigger, for the dashboard (not memoised)."""
    bindings = list(
        trigger_bindings(tenant=tenant, trigger_id=trigger_id).annotate(
            deployed_number=Subquery(
                ActionVersion.objects.filter(action=OuterRef("action"), deployed=True).values(
                    "number"
                )[:1]
            )
        )
    )
    hook = Hook.objects.filter(tenant=tenant, trigger_id=trigger_id, enabled=True).first()
    return Flow(trigger_id=trigger_id, hook=hook, bindings=bindings)


def bindable_actions(*, tenant: Tenant, trigger_id: str) -> QuerySet[Action]:
    """The tenant's Actions for the trigger that are deployed and not bound
    to it yet, by name: what the Flow page offers to bind."""
    return (
        action_list(tenant=tenant, trigger_id=trigger_id, deployed=True)
        .exclude(bindings__trigger_id=trigger_id)
        .order_by("name")
    )
