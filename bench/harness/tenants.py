"""``--tenants N``: N tenants, each with its own enabled hook, requested round-robin.

Reports errors, the latency of the first (cold) request to each tenant's
hook, steady tokens/s over all tenants, and the peak RSS of each server
process against a stated bound.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from harness.loadgen import LoadResult, run_load
from harness.processes import ProcessInfo
from harness.report import MIB, format_table, ms_cell
from harness.targets import Target
from harness.tessera import (
    HOOK_FILE,
    ServerConfig,
    TenantSpec,
    TesseraDeployment,
    provisioned_tessera,
    running_tessera,
    tessera_expectation,
    tessera_token_request,
)
from harness.tokens import TokenRequest, verify_sample

SAMPLE_TOKENS = 4
WORKER_WARMUP = 500  # requests to the bench tenant before the cold pass
# The product's default for TESSERA_HOOK_WARM_CONTEXTS (tenant/site/settings.py).
DEFAULT_WARM_CONTEXTS = 256
# What one warm hook context may hold in a server process: the issue measured
# "a few hundred kB" per QuickJS context; this allows 1 MiB.
CONTEXT_ALLOWANCE_BYTES = 1 * MIB
# Growth any server process may show besides the contexts (Django's caches of
# N tenants' configuration, signing keys, allocator slack).
BASE_ALLOWANCE_BYTES = 64 * MIB


def seed_script(marker: str) -> str:
    """The seed hook with a tenant's own constant in it, so every script differs."""
    script = HOOK_FILE.read_text()
    head, brace, rest = script.partition("{\n")
    return f"{head}{brace}  var benchTenant = '{marker}';\n{rest}"


def tenant_slug(index: int) -> str:
    return f"t{index:05d}"


def control_count(count: int) -> int:
    """Tenants without a hook, to tell a tenant's cold cost from its hook's."""
    return min(count, max(10, count // 10))


def _warm_contexts(settings: Mapping[str, str]) -> int:
    value = settings.get("TESSERA_HOOK_WARM_CONTEXTS") or os.environ.get(
        "TESSERA_HOOK_WARM_CONTEXTS"
    )
    return int(value) if value else DEFAULT_WARM_CONTEXTS


def _requests(deployment: TesseraDeployment, first: int, stop: int) -> list[TokenRequest]:
    return [
        tessera_token_request(deployment.env, tenant.client, slug=tenant.slug)
        for tenant in deployment.tenants[first:stop]
    ]


def _verify_tenants(deployment: TesseraDeployment, indexes: list[int]) -> None:
    """Verify a few tokens of some tenants in full (their own issuer and keys)."""
    for index in indexes:
        tenant = deployment.tenants[index]
        verify_sample(
            tessera_token_request(deployment.env, tenant.client, slug=tenant.slug),
            tessera_expectation(deployment.env, with_hook=True, slug=tenant.slug),
            count=SAMPLE_TOKENS,
        )


def run_tenants(
    *,
    count: int,
    database: str,
    config: ServerConfig,
    settings: Mapping[str, str],
    requests: int,
    concurrency: int,
    max_seconds: float,
    workdir: Path,
) -> list[str]:
    """Provision ``count`` tenants, one cold pass over all, then a steady run; the report."""
    controls = control_count(count)
    specs = [TenantSpec(tenant_slug(i), seed_script(tenant_slug(i))) for i in range(count)]
    specs += [TenantSpec(f"n{i:05d}", None) for i in range(controls)]
    print(f"tenants: provisioning {count} + {controls} tenants on {database} ...", flush=True)
    started = time.monotonic()
    with provisioned_tessera(
        database, with_hook=True, workdir=workdir, settings=settings, tenants=specs
    ) as deployment:
        provisioning_seconds = time.monotonic() - started
        print(f"tenants: provisioned in {provisioning_seconds:.0f} s", flush=True)
        with running_tessera(deployment, config, workdir) as tessera:
            # Warm every worker up on the bench tenant (not one of the N), so
            # that the cold pass measures what is first about each tenant, not
            # the worker's own first requests.
            run_load(
                tessera, connections=concurrency, requests=WORKER_WARMUP,
                max_seconds=max_seconds,
            )  # fmt: skip
            start_tree = {info.pid: info for info in tessera.server.tree()}
            cycle = _requests(deployment, 0, count)
            # One request per tenant, one at a time: each is its tenant's first,
            # and its latency is not queueing behind the others. The same for
            # the tenants without a hook first.
            control = run_load(
                tessera, connections=1, requests=controls, max_seconds=max_seconds,
                cycle=_requests(deployment, count, count + controls),
            )  # fmt: skip
            cold = run_load(
                tessera, connections=1, requests=count, max_seconds=max_seconds, cycle=cycle
            )
            print(f"  cold pass: {cold.errors} errors, first-request p50 {cold.cold_p50_ms} ms")
            steady = run_load(
                tessera,
                connections=concurrency,
                requests=max(requests, count),
                max_seconds=max_seconds,
                cycle=cycle,
            )
            print(f"  steady: {steady.tokens_per_second:.0f} tokens/s, {steady.errors} errors")
            _verify_tenants(deployment, sorted({0, count // 2, count - 1}))
            roles = _roles(tessera, start_tree)
    contexts = _warm_contexts(settings)
    return [
        (
            f"{count} tenants on {database}, each with its own API, client, grant and enabled "
            f"seed hook (a per-tenant constant in each script), and {controls} more without a "
            f"hook; {config.describe()}, hooks "
            f"{settings.get('TESSERA_HOOK_ISOLATION', 'inprocess')}, {concurrency} connections "
            f"walking the tenants round-robin. Provisioning took {provisioning_seconds:.0f} s."
        ),
        _load_table(cold, steady),
        _cold_note(cold, control, config, count, contexts),
        _rss_table(start_tree, [cold, steady], roles, count=count, contexts=contexts),
    ]


def _roles(target: Target, start_tree: dict[int, ProcessInfo]) -> dict[int, str]:
    return {
        pid: "server main" if pid == target.server.pid else "worker"
        for pid in {*start_tree, *(info.pid for info in target.server.tree())}
    }


def _load_table(cold: LoadResult, steady: LoadResult) -> str:
    rows = []
    runs = (("cold pass (1 per tenant, c=1)", cold), ("steady, round-robin", steady))
    for name, result in runs:
        rows.append(
            [
                name, str(result.responses), str(result.errors),
                f"{result.tokens_per_second:.0f}", ms_cell(result.p50_ms), ms_cell(result.p99_ms),
            ]
        )  # fmt: skip
    header = ["run", "requests", "errors", "tokens/s", "p50 ms", "p99 ms"]
    errors = cold.errors + steady.errors
    verdict = "✓ 0 errors" if errors == 0 else f"✗ {errors} errors (target: 0)"
    return format_table(header, rows, text_columns=1) + f"\n\n{verdict}"


def _cold_note(
    cold: LoadResult, control: LoadResult, config: ServerConfig, count: int, contexts: int
) -> str:
    note = (
        f"Cold: the first request to each tenant's hook: p50 {ms_cell(cold.cold_p50_ms)} ms, "
        f"p99 {ms_cell(cold.cold_p99_ms)} ms ({cold.cold_count} tenants, one connection, one "
        "request at a time), after the workers were warmed up on another tenant. It "
        "includes everything first about that tenant in the server process that took it "
        "(configuration, signing key, the hook's context). The first request to each of "
        f"{control.cold_count} tenants without a hook, measured the same way: p50 "
        f"{ms_cell(control.cold_p50_ms)} ms, p99 {ms_cell(control.cold_p99_ms)} ms "
        f"({control.errors} errors); the difference is the hook's share."
    )
    if config.workers > 1:
        note += (
            f" With {config.workers} workers, each other worker meets each tenant cold again "
            "during the steady run."
        )
    if count > contexts:
        note += (
            f" {count} tenants round-robin exceed TESSERA_HOOK_WARM_CONTEXTS={contexts}: "
            "the least recently used context is always the next one needed, so the steady run "
            "creates a context for every request (set the variable above the tenant count to "
            "measure warm contexts)."
        )
    return note


def _rss_table(
    start_tree: dict[int, ProcessInfo],
    results: list[LoadResult],
    roles: dict[int, str],
    *,
    count: int,
    contexts: int,
) -> str:
    """Peak RSS per process against the bound: start + base + contexts x allowance."""
    bound_growth = BASE_ALLOWANCE_BYTES + min(count, contexts) * CONTEXT_ALLOWANCE_BYTES
    peaks: dict[int, int] = {}
    for result in results:
        for pid, rss in result.peak_rss_by_pid.items():
            peaks[pid] = max(peaks.get(pid, 0), rss)
    rows = []
    for pid in sorted(peaks):
        start = start_tree[pid].rss_bytes if pid in start_tree else None
        bound = (start or 0) + bound_growth
        met = "✓" if peaks[pid] <= bound else "✗"
        rows.append(
            [
                roles.get(pid, "worker"), str(pid),
                "-" if start is None else f"{start / MIB:.0f}",
                f"{peaks[pid] / MIB:.0f}", f"{bound / MIB:.0f}", met,
            ]
        )  # fmt: skip
    header = ["process", "pid", "RSS at start MiB", "peak RSS MiB", "bound MiB", "met"]
    return (
        format_table(header, rows, text_columns=2)
        + f"\n\nBound per process: its RSS at start + {BASE_ALLOWANCE_BYTES // MIB} MiB + "
        f"min(tenants, warm contexts = {contexts}) x {CONTEXT_ALLOWANCE_BYTES // MIB} MiB "
        "(a worker's threads share them; a QuickJS context is a few hundred kB); from 0 for a "
        "process that appeared after the start (a hook worker, or a restarted worker)."
    )
