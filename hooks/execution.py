"""The one door from Django to the sandboxed runtime: limits from tenant
settings, syntax checks as validation errors, and runs on the process's pool.
The token pipeline and the test runner both run hooks through here."""

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from hooks import runtime
from hooks.choices import RunOutcome
from hooks.points import POINTS
from tenant.models import Tenant


def limits_for(tenant: Tenant) -> runtime.Limits:
    return runtime.Limits(
        timeout_ms=tenant.hook_timeout_ms,
        memory_mb=tenant.hook_memory_mb,
        max_script_bytes=settings.TESSERA_HOOK_MAX_SCRIPT_BYTES,
    )


def reserved_domains_for(tenant: Tenant) -> list[str]:
    """Hosts a namespaced claim may not use: the deployment's own domains,
    the tenant's, and Auth0's (configurable)."""
    domains = list(settings.TESSERA_RESERVED_CLAIM_DOMAINS)
    public_host = urlsplit(settings.PUBLIC_URL).hostname
    if public_host:
        domains.append(public_host)
    if tenant.domain:
        domains.append(tenant.domain)
    return domains


def check_script(*, tenant: Tenant, script: str) -> None:
    """Raise ``ValidationError`` unless ``script`` is within limits and compiles."""
    limits = limits_for(tenant)
    if len(script.encode()) > limits.max_script_bytes:
        raise ValidationError(
            f"The script exceeds {limits.max_script_bytes} bytes.", code="too_large"
        )
    try:
        runtime.default_pool().check_syntax(script, limits)
    except runtime.HookSyntaxError as error:
        raise ValidationError(
            f"Syntax error at line {error.line}, column {error.column}: {error.message}",
            code="syntax_error",
        ) from None
    except runtime.HookError as error:
        raise ValidationError(f"The script could not be checked: {error.message}") from None


def run_hook(
    *,
    tenant: Tenant,
    trigger_id: str,
    script: str,
    version: str,
    payload: Mapping[str, Any],
    secrets: Mapping[str, str],
    storage: runtime.StorageSnapshot | None,
) -> runtime.RunResult:
    """Run ``script`` in the sandbox; raises ``runtime.HookError`` subclasses."""
    return runtime.default_pool().run(
        script=script,
        version=version,
        arg_names=POINTS[trigger_id].arg_names,
        payload=payload,
        secrets=secrets,
        storage=storage,
        limits=limits_for(tenant),
    )


def outcome_of(error: runtime.HookError) -> RunOutcome:
    if isinstance(error, runtime.HookTimeout):
        return RunOutcome.TIMEOUT
    if isinstance(error, runtime.HookMemoryLimit):
        return RunOutcome.MEMORY
    if isinstance(error, runtime.HookCrashed):
        return RunOutcome.CRASHED
    return RunOutcome.ERROR


def describe_error(name: str, message: str, line: int | None, column: int | None) -> str:
    """``Name: message (line L, column C)`` for run logs."""
    text = f"{name}: {message}" if name else message
    if line is not None:
        text += f" (line {line}, column {column})"
    return text
