"""A trial run (a "test run" in the dashboard), behind the Run button,
``hooks run`` and the go-live check: run a given (possibly unsaved) script
against a given payload through the same door as token requests, and report
everything an author needs."""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from hooks.choices import RunOutcome, RunSource, TriggerId
from hooks.dependencies import Lock, packages_for
from hooks.execution import Execution, execute
from hooks.models import Action, Hook
from hooks.points import POINTS, DroppedProperty
from hooks.selectors import action_cache, action_draft_secrets, hook_secrets, hook_storage
from tenant.models import Tenant


@dataclass
class TestRunError:
    name: str
    message: str
    line: int | None
    column: int | None


@dataclass
class TestRunReport:
    outcome: str
    duration_ms: float
    console: str
    kind: str = "hook"  # what ran: a Hook or an Auth0 Action
    value: Any = None  # a Hook's cb value (or async return); an Action's {scope, claims}
    scope: list[str] | None = None  # the token's scope after filtering
    claims: dict[str, Any] = field(default_factory=dict)  # the custom claims kept
    dropped: list[DroppedProperty] = field(default_factory=list)
    error: TestRunError | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == RunOutcome.OK


def validate_payload(trigger_id: str, payload: Any) -> dict[str, Any]:
    """The payload must be an object; its keys are the point's argument names
    (a Hook) or ``event`` (an Action)."""
    if not isinstance(payload, dict):
        raise ValidationError("The payload must be a JSON object.")
    unknown = set(payload) - POINTS[trigger_id].payload_keys()
    if unknown:
        raise ValidationError(f"Unknown payload keys: {', '.join(sorted(unknown))}.")
    return payload


def hook_test_run(
    *,
    tenant: Tenant,
    script: str,
    payload: Any,
    trigger_id: str = TriggerId.CREDENTIALS_EXCHANGE,
    hook: Hook | None = None,
    dependency_lock: Lock | None = None,
) -> TestRunReport:
    """Run ``script`` with ``payload`` as a token request would, with the saved
    hook's secrets, storage, Action cache and dependencies (writes to them are
    not kept; ``dependency_lock`` replaces the hook's lock). Records the run
    in the hook's log, as a test run, when ``hook`` is given."""
    if dependency_lock is None and hook is not None:
        dependency_lock = hook.dependency_lock
    execution = execute(
        tenant=tenant,
        trigger_id=trigger_id,
        source=RunSource.TEST,
        script=script,
        payload=validate_payload(trigger_id, payload),
        secrets=hook_secrets(hook=hook) if hook else {},
        storage=hook_storage(hook_id=hook.pk) if hook else None,
        cache=action_cache(hook_id=hook.pk) if hook else None,
        hook_id=hook.pk if hook else None,
        packages=packages_for(dependency_lock),
    )
    return _report(execution)


def action_test_run(
    *, action: Action, payload: Any = None, code: str | None = None
) -> TestRunReport:
    """Run an Action's draft (``code``, the editor's unsaved text, or its
    saved code; its draft secrets and dependencies, not the deployed
    version) as a token request would, on ``payload`` (``{"event": {...}}``,
    merged over the trigger's sample event) or the sample event. Its
    ``api.cache`` is read, never written; not recorded in a run log (a
    flow's log belongs to the trigger)."""
    sample = POINTS[action.trigger_id].action_sample_payload["event"]
    given = validate_payload(action.trigger_id, payload if payload is not None else {})
    event = given.get("event", {})
    if not isinstance(event, dict):
        raise ValidationError("The payload's event must be a JSON object.")
    execution = execute(
        tenant=action.tenant,
        trigger_id=action.trigger_id,
        source=RunSource.TEST,
        script=action.code if code is None else code,
        payload={**given, "event": {**sample, **event}},
        secrets=action_draft_secrets(action=action),
        storage=None,
        cache=action_cache(hook_id=f"action:{action.public_id}"),
        packages=packages_for(action.dependency_lock),
    )
    return _report(execution)


def _report(execution: Execution) -> TestRunReport:
    report = TestRunReport(
        outcome=execution.outcome,
        duration_ms=execution.duration_ms,
        console=execution.console,
        kind=execution.kind,
        value=execution.value,
    )
    if execution.error is not None:
        error = execution.error
        report.error = TestRunError(error.name, error.message, error.line, error.column)
    elif execution.invalid_result:
        report.error = TestRunError("InvalidResult", execution.invalid_result, None, None)
    else:
        report.scope = execution.claims.scope
        report.claims = execution.claims.claims
        report.dropped = execution.claims.dropped
    return report
