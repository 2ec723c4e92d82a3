"""The credentials-exchange flow in the token pipeline: the tenant's enabled
hook (if any), then each bound Action's deployed version in binding order,
all through ``hooks.execution.execute``. Mapping the outcome to OAuth errors
is the token endpoint's job."""

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hooks.choices import HookKind, RunOutcome, RunSource, TriggerId
from hooks.execution import Execution, describe_error, execute, limits_for
from hooks.points import FilteredClaims
from hooks.recorded_inputs import worth_recording
from hooks.run_log import RunRecord, record_input, record_run
from hooks.selectors import (
    EMPTY_STORAGE,
    RunnableAction,
    RunnableHook,
    action_cache,
    bound_actions_for,
    enabled_hook_for,
    hook_storage,
)
from hooks.services import action_cache_apply, hook_storage_save
from tenant import activity
from tenant.models import Tenant


def credentials_exchange(*, tenant: Tenant, payload: Mapping[str, Any]) -> Execution | None:
    """Run the tenant's credentials-exchange flow; None when it has neither
    an enabled hook nor a bound Action.

    The flow has one deadline, the tenant's hook timeout (at most 20 s):
    each Action gets what the steps before it left of it. Its duration and
    whether it failed are counted for the landing page (``tenant.activity``).
    """
    hook = enabled_hook_for(tenant=tenant, trigger_id=TriggerId.CREDENTIALS_EXCHANGE)
    actions = bound_actions_for(tenant=tenant, trigger_id=TriggerId.CREDENTIALS_EXCHANGE)
    if hook is None and not actions:
        return None
    recorded = worth_recording(
        tenant_id=tenant.pk, trigger_id=TriggerId.CREDENTIALS_EXCHANGE, payload=payload
    )
    if recorded is not None:  # new to this process, or changed: else nothing to do
        record_input(recorded)
    started = time.perf_counter()
    execution = _run_flow(tenant=tenant, payload=payload, hook=hook, actions=actions)
    activity.count_hook_run(
        tenant_id=tenant.pk,
        duration_ms=(time.perf_counter() - started) * 1000,
        failed=not execution.ok,
    )
    return execution


def _run_flow(
    *,
    tenant: Tenant,
    payload: Mapping[str, Any],
    hook: RunnableHook | None,
    actions: Sequence[RunnableAction],
) -> Execution:
    deadline = time.monotonic() + limits_for(tenant).timeout_ms / 1000
    before = FilteredClaims(scope=list(payload.get("scope") or []))
    if hook is not None:
        execution = execute(
            tenant=tenant,
            trigger_id=TriggerId.CREDENTIALS_EXCHANGE,
            source=RunSource.TOKEN,
            script=hook.script,
            payload=payload,
            secrets=hook.secrets,
            # Read when the run gets the tenant's slot, so that queued runs
            # each see the write of the one before.
            storage=(lambda: hook_storage(hook_id=hook.id)) if hook.uses_storage else EMPTY_STORAGE,
            hook_id=hook.id,
            hook_version=hook.version,
            key=hook.script_key,
            keep_storage=lambda write: hook_storage_save(hook_id=hook.id, write=write),
            # Only an Action has api.cache: a Hook's request reads nothing more.
            cache=action_cache(hook_id=hook.id) if hook.kind == HookKind.ACTION else None,
            keep_cache=lambda writes: action_cache_apply(hook_id=hook.id, writes=writes),
            packages=hook.packages,
        )
        if not actions or not execution.ok:
            return execution
        before = execution.claims
    return run_actions(
        tenant=tenant,
        trigger_id=TriggerId.CREDENTIALS_EXCHANGE,
        source=RunSource.TOKEN,
        payload=payload,
        actions=actions,
        before=before,
        deadline=deadline,
    )


def _cache_keeper(cache_id: str) -> Callable[[dict[str, Any]], None]:
    """Saves an Action's ``api.cache`` changes (shared by its versions)."""
    return lambda writes: action_cache_apply(hook_id=cache_id, writes=writes)


def new_execution_id() -> str:
    return f"ex_{secrets.token_hex(12)}"


def _instant(perf: float, origin: tuple[datetime, float]) -> str:
    started_at, start = origin
    return (
        datetime.fromtimestamp(started_at.timestamp() + perf - start, UTC)
        .isoformat()
        .replace("+00:00", "Z")
    )


def run_actions(
    *,
    tenant: Tenant,
    trigger_id: str,
    source: RunSource,
    payload: Mapping[str, Any],
    actions: Sequence[RunnableAction],
    before: FilteredClaims,
    deadline: float,
) -> Execution:
    """Run ``actions`` in order, each seeing in ``event.accessToken`` what
    ``before`` and the earlier ones left; a later claim of the same name wins;
    the first failure (``api.access.deny`` included) stops the flow and is
    the answer. Records one execution with a result per Action run."""
    scope = list(before.scope)
    claims = dict(before.claims)
    dropped = list(before.dropped)
    consoles: list[str] = []
    results: list[dict[str, Any]] = []
    origin = (datetime.now(UTC), time.perf_counter())
    failed: Execution | None = None
    for action in actions:
        step_start = time.perf_counter()
        execution = execute(
            tenant=tenant,
            trigger_id=trigger_id,
            source=source,
            script=action.code,
            payload={**payload, "accessToken": {"scope": scope, "customClaims": claims}},
            secrets=action.secrets,
            storage=None,
            key=action.context_key,
            cache=action_cache(hook_id=action.cache_id) if action.uses_cache else None,
            keep_cache=_cache_keeper(action.cache_id),
            deadline=deadline,
            packages=action.packages,
        )
        error = execution.error
        error_text = (
            describe_error(error.name, error.message, error.line, error.column)
            if error is not None
            else execution.invalid_result
        )
        results.append(
            {
                "action_name": action.name,
                "action_id": action.action_id,
                "version_id": action.version_id,
                "version_number": action.version_number,
                "outcome": execution.outcome,
                "duration_ms": round(execution.duration_ms, 3),
                "started_at": _instant(step_start, origin),
                "ended_at": _instant(time.perf_counter(), origin),
                "error": {"id": error.name if error else "invalid_result", "msg": error_text}
                if error_text
                else None,
                "logs": execution.console,
            }
        )
        if execution.console:
            consoles.append(execution.console)
        if not execution.ok:
            failed = execution
            break
        claims.update(execution.claims.claims)
        dropped.extend(execution.claims.dropped)
    duration_ms = (time.perf_counter() - origin[1]) * 1000
    outcome = failed.outcome if failed is not None else RunOutcome.OK
    record_run(
        RunRecord(
            tenant_id=tenant.pk,
            hook_id=None,
            hook_version=None,
            source=source,
            started_at=origin[0],
            duration_ms=duration_ms,
            outcome=outcome,
            console="".join(consoles),
            error=results[-1]["error"]["msg"] if failed is not None and results else "",
            execution_id=new_execution_id(),
            results=results,
        ),
        now=source == RunSource.TEST,
    )
    if failed is not None:
        return failed
    return Execution(
        outcome=RunOutcome.OK,
        duration_ms=duration_ms,
        console="".join(consoles),
        kind=HookKind.ACTION,
        value={"scope": scope, "claims": claims},
        claims=FilteredClaims(scope=scope, claims=claims, dropped=dropped),
    )
