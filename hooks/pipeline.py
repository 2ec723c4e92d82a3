"""The credentials-exchange hook in the token pipeline: run the tenant's
enabled hook on the request's plain payload and keep its storage writes.
Mapping the outcome to OAuth errors is the token endpoint's job."""

from collections.abc import Mapping
from typing import Any

from hooks.choices import HookKind, RunSource, TriggerId
from hooks.execution import Execution, execute
from hooks.selectors import action_cache, enabled_hook_for
from hooks.services import action_cache_apply, hook_storage_save
from tenant.models import Tenant


def credentials_exchange(*, tenant: Tenant, payload: Mapping[str, Any]) -> Execution | None:
    """Run the tenant's enabled credentials-exchange hook; None without one."""
    hook = enabled_hook_for(tenant=tenant, trigger_id=TriggerId.CREDENTIALS_EXCHANGE)
    if hook is None:
        return None
    return execute(
        tenant=tenant,
        trigger_id=TriggerId.CREDENTIALS_EXCHANGE,
        source=RunSource.TOKEN,
        script=hook.script,
        payload=payload,
        secrets=hook.secrets,
        storage=hook.storage,
        hook_id=hook.id,
        hook_version=hook.version,
        key=hook.script_key,
        keep_storage=lambda write: hook_storage_save(hook_id=hook.id, write=write),
        # Only an Action has api.cache: a Hook's request reads nothing more.
        cache=action_cache(hook_id=hook.id) if hook.kind == HookKind.ACTION else None,
        keep_cache=lambda writes: action_cache_apply(hook_id=hook.id, writes=writes),
    )
