"""``--noisy-neighbour``: tenant A's hook loops forever; tenant B has the seed hook.

B is measured alone, then again while a second load generator drives A at
A's rate limit (``TESSERA_TOKEN_RATE_LIMIT``, set for the run). The target
(issue 10): B has 0 errors and its p99 beside A stays within 2x of alone.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from pathlib import Path

from harness.loadgen import LoadResult, run_load
from harness.report import format_table, ms_cell, status_counts
from harness.targets import Target
from harness.tenants import seed_script
from harness.tessera import (
    ServerConfig,
    TenantSpec,
    TesseraDeployment,
    provisioned_tessera,
    running_tessera,
    tessera_expectation,
    tessera_token_request,
)
from harness.tokens import verify_sample

NEIGHBOUR_RATE = 100  # A's rate limit and offered load, requests/s (the product's default)
B_CONNECTIONS = 10
A_CONNECTIONS = 20
SAMPLE_TOKENS = 8
P99_TARGET = 2.0
# B spreads its load over this many clients, each under the per-client rate
# limit on average even when queueing bunches requests up: B's latency is
# measured, not its own rate limit.
B_CLIENTS = 20
B_RATE_FRACTION = 0.5
LOOP_SCRIPT = (
    "module.exports = function(client, scope, audience, context, cb) {\n  while (true) {}\n};\n"
)
TENANT_A, TENANT_B = "noisy-a", "quiet-b"


def _target(deployment: TesseraDeployment, target: Target, index: int, *, hook: bool) -> Target:
    tenant = deployment.tenants[index]
    return Target(
        label=tenant.slug,
        server=target.server,
        token_request=tessera_token_request(deployment.env, tenant.client, slug=tenant.slug),
        expectation=tessera_expectation(deployment.env, with_hook=hook, slug=tenant.slug),
    )


def run_noisy_neighbour(
    *,
    database: str,
    config: ServerConfig,
    settings: Mapping[str, str],
    requests: int,
    rate: int,
    max_seconds: float,
    workdir: Path,
) -> list[str]:
    """B alone, then B beside A; the report."""
    settings = {**settings, "TESSERA_TOKEN_RATE_LIMIT": f"{rate}/s"}
    tenants = [
        TenantSpec(TENANT_A, LOOP_SCRIPT),
        TenantSpec(TENANT_B, seed_script(TENANT_B), clients=B_CLIENTS),
    ]
    print(f"noisy neighbour: {database}, {config.describe()}, A at {rate}/s", flush=True)
    with (
        provisioned_tessera(
            database, with_hook=True, workdir=workdir, settings=settings, tenants=tenants
        ) as deployment,
        running_tessera(deployment, config, workdir) as tessera,
    ):
        noisy = _target(deployment, tessera, 0, hook=True)
        quiet = _target(deployment, tessera, 1, hook=True)
        verify_sample(quiet.token_request, quiet.expectation, count=SAMPLE_TOKENS)
        b_rate = max(1, int(rate * B_CLIENTS * B_RATE_FRACTION))
        b_cycle = [
            tessera_token_request(deployment.env, client, slug=TENANT_B)
            for client in deployment.tenants[1].clients
        ]
        run_load(
            quiet, connections=B_CONNECTIONS, requests=min(requests, 500),
            max_seconds=max_seconds, rate=b_rate, cycle=b_cycle,
        )  # fmt: skip
        alone = run_load(
            quiet, connections=B_CONNECTIONS, requests=requests, max_seconds=max_seconds,
            rate=b_rate, cycle=b_cycle,
        )  # fmt: skip
        print(f"  B alone: p99 {alone.p99_ms} ms, {alone.errors} errors", flush=True)
        # A runs from B's start until B is done (then B creates the stop file).
        stop_file = workdir / "stop-noisy-a"
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(
                run_load,
                noisy,
                connections=A_CONNECTIONS,
                requests=None,
                duration_seconds=max_seconds,
                max_seconds=max_seconds,
                rate=rate,
                stop_file=stop_file,
            )
            try:
                beside = run_load(
                    quiet, connections=B_CONNECTIONS, requests=requests,
                    max_seconds=max_seconds, rate=b_rate, cycle=b_cycle,
                )  # fmt: skip
            finally:
                stop_file.touch()
            print(f"  B beside A: p99 {beside.p99_ms} ms, {beside.errors} errors", flush=True)
            a_result = future.result()
        verify_sample(quiet.token_request, quiet.expectation, count=SAMPLE_TOKENS)
    return [
        (
            f"Noisy neighbour on {database}, {config.describe()}, hooks "
            f"{settings.get('TESSERA_HOOK_ISOLATION', 'inprocess')}, "
            f"TESSERA_TOKEN_RATE_LIMIT={rate}/s. Tenant A's hook is `while (true) {{}}`, "
            f"driven at up to {rate} requests/s over {A_CONNECTIONS} connections from the start "
            f"to the end of B's second run; tenant B (seed hook) gets {requests} requests over "
            f"{B_CONNECTIONS} connections, round-robin over its {B_CLIENTS} clients (at most "
            f"{b_rate}/s: half the rate limit per client), "
            "alone and then beside A."
        ),
        _b_table(alone, beside),
        _a_outcomes(a_result, beside),
    ]


def _b_table(alone: LoadResult, beside: LoadResult) -> str:
    rows = [
        [name, str(r.responses), str(r.errors), f"{r.tokens_per_second:.0f}",
         ms_cell(r.p50_ms), ms_cell(r.p99_ms), status_counts(r)]
        for name, r in (("B alone", alone), ("B beside A", beside))
    ]  # fmt: skip
    header = ["run", "requests", "errors", "tokens/s", "p50 ms", "p99 ms", "HTTP statuses"]
    table = format_table(header, rows, text_columns=1)
    if beside.error_kinds:
        table += "\n\nB's errors beside A: " + ", ".join(
            f"{kind} ({count})" for kind, count in beside.error_kinds.items()
        )
    errors = "✓" if beside.errors == 0 and alone.errors == 0 else "✗"
    if alone.p99_ms and beside.p99_ms is not None:
        ratio = beside.p99_ms / alone.p99_ms
        p99 = f"{ratio:.2f} (target ≤ {P99_TARGET}) {'✓' if ratio <= P99_TARGET else '✗'}"
    else:
        p99 = "- ✗"
    return (
        f"{table}\n\nB's errors beside A: {beside.errors} (target 0) {errors}; "
        f"B's p99 beside A / alone: {p99}"
    )


def _a_outcomes(a_result: LoadResult, beside: LoadResult) -> str:
    """A's responses by status: 500 timeouts, 503 breaker, 429 rate limit or cap."""
    codes = a_result.status_codes
    named = {
        "500": "500 (hook timed out / failed)",
        "503": "503 temporarily_unavailable (breaker)",
        "429": "429 (rate limit, or the tenant's concurrent-hook cap)",
        "200": "200",
    }
    rows = [[named.get(code, code), str(count)] for code, count in sorted(codes.items())]
    rows.append(["connection errors, timeouts", str(a_result.errors - a_result.non2xx)])
    table = format_table(["A's responses", "count"], rows, text_columns=1)
    kinds = sorted(a_result.error_kinds.items(), key=lambda item: -item[1])
    table += "\n\n" + format_table(
        ["A's error bodies (error: error_description)", "count"],
        [[kind, str(count)] for kind, count in kinds],
        text_columns=1,
    )
    return (
        f"{table}\n\nA: {a_result.responses} responses in {a_result.duration_seconds:.1f} s "
        f"({a_result.responses / max(a_result.duration_seconds, 1e-9):.0f}/s), "
        f"beside B's {beside.duration_seconds:.1f} s."
    )
