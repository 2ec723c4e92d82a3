"""The one door from Django to the hook runtime.

``execute`` runs a hook, filters its result through the extensibility point
and records the run; the token pipeline, the test runner and ``hooks run``
all go through it. ``check_script`` is the validation every write path
shares. Limits come from tenant settings; the runtime (in-process or worker
processes, ``TESSERA_HOOK_ISOLATION``) and its governor are one per process.
"""

import atexit
import dataclasses
import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from hooks import runtime
from hooks.choices import RunOutcome, RunSource
from hooks.points import POINTS, FilteredClaims, HookResultInvalid, filter_token_claims
from hooks.run_log import RunRecord, record_run
from hooks.runtime.npm import Packages
from hooks.selectors import tenant_egress_hosts
from tenant.models import Tenant


class HookRuntime(Protocol):
    isolation: str

    def run(
        self,
        *,
        context_key: Any,
        script: str,
        arg_names: Any,
        payload: Mapping[str, Any],
        secrets: Mapping[str, str],
        storage: runtime.StorageSnapshot | None,
        limits: runtime.Limits,
        cache: Mapping[str, Any] | None = None,
        egress: runtime.EgressPolicy | None = None,
        packages: Packages | None = None,
    ) -> runtime.RunResult: ...

    def check(
        self, *, script: str, limits: runtime.Limits, packages: Packages | None = None
    ) -> str: ...

    def close(self) -> None: ...


_lock = threading.Lock()
_process: tuple[HookRuntime, runtime.Governor] | None = None
# Held by each token request for its whole length (tenant.site.wsgi); the
# governor lets it go while a run waits.
compute_gate = runtime.ComputeGate()


def _forget_runtime_after_fork() -> None:
    """A forked child makes its own runtime: its parent's workers and
    counters are not its own."""
    global _lock, _process, compute_gate
    _lock = threading.Lock()  # a fork may have copied it held
    _process = None
    compute_gate = runtime.ComputeGate()


os.register_at_fork(after_in_child=_forget_runtime_after_fork)


def hook_runtime() -> tuple[HookRuntime, runtime.Governor]:
    """This process's runtime and governor, made on first use."""
    global _process
    current = _process
    if current is None:
        with _lock:
            current = _process
            if current is None:
                current = _make_runtime()
                _process = current
                atexit.register(close_hook_runtime)
    return current


def close_hook_runtime() -> None:
    """Stop this process's runtime (its workers, if any); the next run makes
    a new one from the settings of that moment."""
    global _process
    with _lock:
        current, _process = _process, None
    if current is not None:  # a forked child's is None: its parent's is not its own
        current[0].close()


def _give_back_connection() -> None:
    """Before a run waits (for its tenant's slot, its upstream, its next
    timer): its thread's database connection goes back to the process's
    pool (PostgreSQL), or the run would hold one of the pool's few
    connections all that time, and the process's other requests would wait
    for it. Not inside a transaction; the next query takes one again."""
    if (
        connection.connection is not None
        and not connection.in_atomic_block
        and connection.settings_dict["OPTIONS"].get("pool")
    ):
        connection.close()


def _make_runtime() -> tuple[HookRuntime, runtime.Governor]:
    engine: HookRuntime
    per_tenant = settings.TESSERA_HOOK_TENANT_CONCURRENCY
    waiting = settings.TESSERA_HOOK_TENANT_WAITING
    process = settings.TESSERA_HOOK_ISOLATION == "process"
    if process:
        # One tenant never holds every worker; a worker waits on its run's
        # fetches itself, so there a wait holds the run's slot.
        per_tenant = min(per_tenant, max(1, settings.TESSERA_HOOK_WORKERS - 1))
        waiting = 0
    governor = runtime.Governor(
        max_concurrent_per_tenant=per_tenant,
        max_waiting_per_tenant=waiting,
        queue_s=settings.TESSERA_HOOK_TENANT_QUEUE_MS / 1000,
        max_queued_per_tenant=settings.TESSERA_HOOK_TENANT_QUEUED,
        max_concurrent_tests=settings.TESSERA_HOOK_TEST_RUNS_PER_PROCESS,
        breaker_failures=settings.TESSERA_HOOK_BREAKER_FAILURES,
        breaker_cooldown_s=settings.TESSERA_HOOK_BREAKER_COOLDOWN_SECONDS,
        gate=compute_gate,
        before_wait=_give_back_connection,
    )
    if process:
        engine = runtime.HookPool(size=settings.TESSERA_HOOK_WORKERS)
    else:
        engine = runtime.InProcessRuntime(
            max_contexts=settings.TESSERA_HOOK_WARM_CONTEXTS,
            idle=governor.waiting,
            pause=governor.pausing,
            wait_sockets=governor.wait_sockets,
        )
    return engine, governor


def limits_for(tenant: Tenant) -> runtime.Limits:
    return _limits(
        tenant.hook_timeout_ms,
        tenant.hook_cpu_ms,
        tenant.hook_memory_mb,
        settings.TESSERA_HOOK_MAX_SCRIPT_BYTES,
    )


@functools.lru_cache(maxsize=1024)
def _limits(timeout_ms: int, cpu_ms: int, memory_mb: int, max_script_bytes: int) -> runtime.Limits:
    return runtime.Limits(
        timeout_ms=timeout_ms,
        cpu_ms=min(cpu_ms, timeout_ms),
        memory_mb=memory_mb,
        max_script_bytes=max_script_bytes,
    )


def egress_for(tenant: Tenant) -> runtime.EgressPolicy | None:
    """Where ``tenant``'s hooks may send requests: the operator's policy,
    narrowed to the tenant's own list of hosts if it has one; None when
    hooks have no network."""
    if not settings.TESSERA_HOOK_NETWORK:
        return None
    policy = _egress(
        settings.TESSERA_EGRESS_ALLOW,
        settings.TESSERA_EGRESS_DENY,
        settings.TESSERA_EGRESS_PROXY,
        settings.TESSERA_EGRESS_CA_FILE,
        settings.TESSERA_HOOK_MAX_FETCHES,
        settings.TESSERA_HOOK_MAX_RESPONSE_BYTES,
        settings.TESSERA_HOOK_TENANT_WAITING,
        tenant_egress_hosts(tenant=tenant),
    )
    # Its kept connections are its own. A copy (3 µs), so that tenants with
    # the same list share the parsed policy however many there are.
    return dataclasses.replace(policy, owner=str(tenant.pk))


@functools.lru_cache(maxsize=1024)
def _egress(
    allow: str,
    deny: str,
    proxy: str | None,
    ca_file: str | None,
    requests: int,
    size: int,
    waiting: int,
    tenant_hosts: tuple[str, ...],
) -> runtime.EgressPolicy:
    try:
        listed = runtime.parse_tenant_hosts(tenant_hosts) if tenant_hosts else None
    except ValueError:  # stored before a rule tightened: nothing it names is sure
        listed = ()
    return dataclasses.replace(
        runtime.EgressPolicy.from_text(
            allow=allow,
            deny=deny,
            proxy=proxy,
            ca_file=ca_file,
            max_requests=requests,
            max_response_bytes=size,
            kept_connections=max(1, waiting),
        ),
        tenant_hosts=listed,
    )


def fetch_lines(fetches: list[dict[str, Any]] | None) -> str:
    """The run's requests as console lines, for every place that shows a run."""
    lines = []
    for fetch in fetches or []:
        if "status" in fetch:
            took = f"{fetch.get('duration_ms', 0):.0f} ms"
            outcome = f"→ {fetch['status']} in {took}, {fetch.get('bytes', 0)} bytes"
        else:
            outcome = f"✗ {fetch.get('error', 'failed')}"
            if fetch.get("refused"):
                outcome += f" (and {fetch['refused'] - 1} more like it)"
        lines.append(f"[fetch] {fetch.get('method', 'GET')} {fetch.get('url', '')} {outcome}\n")
    return "".join(lines)


def reserved_domains_for(tenant: Tenant) -> tuple[str, ...]:
    """Hosts a namespaced claim may not use: the deployment's own domains,
    the tenant's, and Auth0's (configurable)."""
    return _reserved_domains(
        tuple(settings.TESSERA_RESERVED_CLAIM_DOMAINS), settings.PUBLIC_URL, tenant.domain or ""
    )


@functools.lru_cache(maxsize=1024)
def _reserved_domains(configured: tuple[str, ...], public_url: str, domain: str) -> tuple[str, ...]:
    public_host = urlsplit(public_url).hostname
    return (*configured, *([public_host] if public_host else []), *([domain] if domain else []))


def check_script(*, tenant: Tenant, script: str, packages: Packages | None = None) -> str:
    """What ``script`` exports (``"hook"`` or ``"action"``), or ``ValidationError``.

    The script must compile and its module body must run within the tenant's
    limits (``require`` finding ``packages``, its resolved dependencies) and
    export what the point calls. A syntax error carries its ``line`` and
    ``column`` in ``params``.
    """
    engine, _ = hook_runtime()
    try:
        return engine.check(script=script, limits=limits_for(tenant), packages=packages)
    except runtime.HookSyntaxError as error:
        raise ValidationError(
            "Syntax error at line %(line)s, column %(column)s: %(message)s",
            code="syntax_error",
            params={"line": error.line, "column": error.column, "message": error.message},
        ) from None
    except runtime.HookError as error:
        where = f" (line {error.line}, column {error.column})" if error.line is not None else ""
        raise ValidationError(
            "The script cannot be used: %(message)s",
            code="invalid_script",
            params={
                "message": f"{error.name}: {error.message}{where}",
                "line": error.line,
                "column": error.column,
            },
        ) from None


def _within(limits: runtime.Limits, deadline: float) -> runtime.Limits:
    left_ms = int((deadline - time.monotonic()) * 1000)
    if left_ms >= limits.timeout_ms:
        return limits
    left_ms = max(left_ms, 1)  # spent: the run is stopped at its first check
    return dataclasses.replace(limits, timeout_ms=left_ms, cpu_ms=min(limits.cpu_ms, left_ms))


@dataclass
class Execution:
    """What running a hook came to: its result filtered into claims, or why not."""

    outcome: str
    duration_ms: float
    console: str
    kind: str = "hook"  # what ran: a Hook or an Auth0 Action
    value: Any = None  # what the hook passed to cb (or its async function returned)
    claims: FilteredClaims = field(default_factory=lambda: FilteredClaims(scope=[]))
    error: runtime.HookError | None = None  # the run failed (or was refused)
    invalid_result: str = ""  # the run finished, but its result is not a claims object
    fetches: list[dict[str, Any]] = field(default_factory=list)  # its requests, as logged

    @property
    def ok(self) -> bool:
        return self.outcome == RunOutcome.OK


def outcome_of(error: runtime.HookError) -> RunOutcome:
    if isinstance(error, runtime.HookRefused):
        return RunOutcome.REFUSED
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


def execute(
    *,
    tenant: Tenant,
    trigger_id: str,
    source: RunSource,
    script: str,
    payload: Mapping[str, Any],
    secrets: Mapping[str, str],
    storage: runtime.StorageSnapshot | Callable[[], runtime.StorageSnapshot] | None,
    hook_id: int | None = None,
    hook_version: int | None = None,
    key: str | None = None,
    keep_storage: Callable[[runtime.StorageWrite], bool] | None = None,
    cache: Mapping[str, Any] | None = None,
    keep_cache: Callable[[dict[str, Any]], None] | None = None,
    deadline: float | None = None,
    packages: Packages | None = None,
) -> Execution:
    """Run a hook, filter its result through the point, and record the run.

    Test runs never share a warm context with token runs, and no two tenants
    or hook versions ever do. ``keep_storage`` persists a storage write (and
    says whether it won), ``keep_cache`` an Action's ``api.cache`` changes;
    without them, writes are discarded (test runs). ``storage`` may be a
    function, called once the run has its slot. ``deadline`` (a
    ``time.monotonic()`` instant) is a flow's one deadline: the run gets what
    is left of it, if that is less than the tenant's timeout. ``packages``
    are the hook's or Action version's resolved dependencies (its pinned
    lock): what ``require`` loads besides the built-ins.
    """
    engine, governor = hook_runtime()
    limits = limits_for(tenant)
    if deadline is not None:
        limits = _within(limits, deadline)
    tenant_id = tenant.pk
    context_key = (
        tenant_id,
        hook_id or 0,
        key or runtime.script_key(script),
        str(source),
        packages.key if packages is not None else "",
    )
    started_at = datetime.now(UTC)
    start = time.perf_counter()
    lost_storage = False

    def in_slot() -> runtime.RunResult:
        # Storage is read and written while the run holds the tenant's slot,
        # so that queued runs of the hook each see the one before's write.
        nonlocal lost_storage
        result = engine.run(
            context_key=context_key,
            script=script,
            arg_names=POINTS[trigger_id].arg_names,
            payload=payload,
            secrets=secrets,
            storage=storage() if callable(storage) else storage,
            limits=limits,
            cache=cache,
            egress=egress_for(tenant),
            packages=packages,
        )
        write = result.storage_write
        if write is not None and keep_storage is not None:
            lost_storage = not keep_storage(write)
        return result

    try:
        result = governor.run(
            tenant=tenant_id, hook=context_key, test=source == RunSource.TEST, call=in_slot
        )
    except runtime.HookError as error:
        execution = Execution(
            outcome=outcome_of(error),
            duration_ms=error.duration_ms or (time.perf_counter() - start) * 1000,
            console=error.console + fetch_lines(error.fetches),
            error=error,
            fetches=error.fetches or [],
        )
        error_text = describe_error(error.name, error.message, error.line, error.column)
    else:
        console, error_text = result.console + fetch_lines(result.fetches), ""
        if result.cache_writes and keep_cache is not None:
            keep_cache(result.cache_writes)
        if lost_storage:
            console += "\n[tessera] storage.set lost a conflict: another run wrote first\n"
        try:
            claims = filter_token_claims(
                result.value, reserved_domains=reserved_domains_for(tenant), kind=result.kind
            )
        except HookResultInvalid as invalid:
            claims, error_text = FilteredClaims(scope=[]), str(invalid)
        execution = Execution(
            outcome=RunOutcome.ERROR if error_text else RunOutcome.OK,
            duration_ms=result.duration_ms,
            console=console,
            kind=result.kind,
            value=result.value,
            claims=claims,
            invalid_result=error_text,
            fetches=result.fetches or [],
        )
    if hook_id is None:
        return execution  # a script that is not a saved hook has no run log
    record_run(
        RunRecord(
            tenant_id=tenant_id,
            hook_id=hook_id,
            hook_version=hook_version,
            source=source,
            started_at=started_at,
            duration_ms=execution.duration_ms,
            outcome=execution.outcome,
            console=execution.console,
            error=error_text,
        ),
        now=source == RunSource.TEST,
    )
    return execution
