"""The test runner behind the dashboard's Run button and ``hooks run``: run
a given (possibly unsaved) script against a given payload in the same
sandbox as token requests, and report everything an author needs."""

import time
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from hooks import runtime
from hooks.choices import RunOutcome, RunSource, TriggerId
from hooks.execution import describe_error, outcome_of, reserved_domains_for, run_hook
from hooks.models import Hook
from hooks.points import POINTS, DroppedProperty, HookResultInvalid, filter_token_claims
from hooks.run_log import RunRecord, record_run
from hooks.selectors import hook_secrets, hook_storage, script_key
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
    value: Any = None  # what the hook passed to cb (or its async function returned)
    scope: list[str] | None = None  # the token's scope after filtering
    claims: dict[str, Any] = field(default_factory=dict)  # the custom claims kept
    dropped: list[DroppedProperty] = field(default_factory=list)
    error: TestRunError | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == RunOutcome.OK


def validate_payload(trigger_id: str, payload: Any) -> dict[str, Any]:
    """The payload must be an object; its keys are the point's argument names."""
    if not isinstance(payload, dict):
        raise ValidationError("The payload must be a JSON object.")
    unknown = set(payload) - set(POINTS[trigger_id].arg_names)
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
) -> TestRunReport:
    """Run ``script`` with ``payload`` as a token request would, with the saved
    hook's secrets and storage (storage writes are not kept). Records the run
    in the hook's log when ``hook`` is given."""
    payload = validate_payload(trigger_id, payload)
    started_at = timezone.now()
    start = time.perf_counter()
    try:
        result = run_hook(
            tenant=tenant,
            trigger_id=trigger_id,
            script=script,
            version=script_key(script),
            payload=payload,
            secrets=hook_secrets(hook=hook) if hook else {},
            storage=hook_storage(hook_id=hook.pk) if hook else None,
        )
        report = TestRunReport(
            outcome=RunOutcome.OK,
            duration_ms=result.duration_ms,
            console=result.console,
            value=result.value,
        )
        try:
            filtered = filter_token_claims(
                result.value, reserved_domains=reserved_domains_for(tenant)
            )
        except HookResultInvalid as error:
            report.outcome = RunOutcome.ERROR
            report.error = TestRunError("InvalidResult", str(error), None, None)
        else:
            report.scope, report.claims, report.dropped = (
                filtered.scope,
                filtered.claims,
                filtered.dropped,
            )
    except runtime.HookError as error:
        report = TestRunReport(
            outcome=outcome_of(error),
            duration_ms=error.duration_ms or (time.perf_counter() - start) * 1000,
            console=error.console,
            error=TestRunError(error.name, error.message, error.line, error.column),
        )
    if hook is not None:
        record_run(
            RunRecord(
                tenant_id=tenant.pk,
                hook_id=hook.pk,
                hook_version=None,
                source=RunSource.TEST,
                started_at=started_at,
                duration_ms=report.duration_ms,
                outcome=report.outcome,
                console=report.console,
                error=describe_error(**report.error.__dict__) if report.error else "",
            ),
            now=True,
        )
    return report
