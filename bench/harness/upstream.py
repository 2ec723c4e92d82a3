"""``--slow-upstream``: hooks that wait on an upstream, under two server setups.

One run, one database, a local upstream (``upstream_server.mjs``: ``/fast``
answers in 20 ms, ``/now`` at once, ``/slow`` in 2 s, ``/hang`` never) and
these tenants:

- ``slow-a`` and ``hang-a``: a Hook that fetches ``/slow`` (or ``/hang``, so
  it runs until its 5 s deadline), then adds the seed hook's claims;
- ``quiet-b``: the seed hook, 20 clients;
- ``fetch-f`` / ``nofetch-f``: the same async Hook with and without one fetch
  of ``/fast``; ``now-f``: the same fetch of ``/now`` (what a fetch costs
  when the run need not wait); ``seed-s``: the seed hook; ``bare-n``: no
  hook (30 clients each, so that no client nears its rate limit at 50
  connections).

Each setup (``setups``: the server flags and settings before this change,
the README's threads without pinning, and the README's) is started in turn
on the same database, and measures: B alone; B beside A driven at A's rate
limit (``TESSERA_TOKEN_RATE_LIMIT``) over enough connections to keep that
rate with 2 s (or 5 s) answers, as A starts and once it is steady; then
rounds of 50 connections on the fetching and non-fetching Hooks, the seed
hook and no hook, back to back (with the upstream's own CPU per request
in the fetching rounds: it runs on the same cores). Targets (issue 24): B has 0 errors and its
p99 beside A is within 2x of alone; fetch / no fetch tokens/s ≥ 0.8; the
pure-CPU paths no slower in CPU per token than under the old setup.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.loadgen import LoadResult, run_load
from harness.node import BENCH_DIR, node_executable
from harness.processes import Server, free_port, running_server
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
from harness.tokens import TokenRequest, verify_sample

RATE = 100  # A's rate limit and offered load, requests/s
B_CONNECTIONS = 10
B_WARM_CONNECTIONS = 80  # more than a worker's threads
B_CLIENTS = 20
B_RATE_FRACTION = 0.5
# Enough connections to keep A at RATE/s with every answer taking 2-5 s.
A_CONNECTIONS = 300
MANY_CLIENTS = 30
CONCURRENCY = 50
SAMPLE_TOKENS = 4
P99_TARGET = 2.0
# B beside A is cut off after this long: under the old setup B queues behind
# A's 2 s runs and would take many minutes (what is unanswered is reported).
BESIDE_SECONDS = 30.0
# B is measured twice beside A: as A starts (its first runs reach every
# thread and fill its waiting places), then once A is steady: its first
# answers back from the 2 s upstream, its first runs over at the 5 s deadline.
A_STEADY_SECONDS = 6.0
B_STEADY_REQUESTS = 5000  # B alone too: both p99 over as many requests
FETCH_TARGET = 0.8

CLAIMS = (
    "  var access_token = {};\n"
    "  access_token['https://foo.com/claim'] = 'bar';\n"
    "  access_token.scope = scope;\n"
    "  access_token.scope.push('extra');\n"
    "  cb(null, access_token);\n"
)


SLOW_UPSTREAM_RESULTS_TITLE = "### Slow upstream (issue 24): a hook waiting costs its own tenant"


def fetching_script(url: str | None) -> str:
    """An async Hook that awaits one fetch of ``url`` (none: no fetch), then
    gives the seed hook's claims."""
    fetch = f"  await (await fetch('{url}')).text();\n" if url else "  await null;\n"
    return (
        "module.exports = async function(client, scope, audience, context, cb) {\n"
        f"{fetch}{CLAIMS}}};\n"
    )


@dataclass(frozen=True)
class Setup:
    """A server setup: its flags (blocking threads) and settings."""

    name: str
    blocking_threads: int
    settings: Mapping[str, str]


def setups(recommended_threads: int) -> list[Setup]:
    return [
        Setup(
            "before: 1 thread, waits hold the slot",
            1,
            {"TESSERA_HOOK_TENANT_WAITING": "0", "TESSERA_PIN_WORKERS": "0"},
        ),
        Setup(
            f"{recommended_threads} threads, waits give it back, not pinned",
            recommended_threads,
            {"TESSERA_PIN_WORKERS": "0"},
        ),
        Setup(
            f"README: {recommended_threads} threads, waits give it back, pinned",
            recommended_threads,
            {"TESSERA_PIN_WORKERS": "1"},
        ),
    ]


@contextlib.contextmanager
def running_upstream(workdir: Path) -> Iterator[tuple[str, Server]]:
    """The upstream's base URL, and its process (for its CPU time)."""
    port = free_port()
    with running_server(
        "upstream",
        [node_executable(), str(BENCH_DIR / "upstream_server.mjs")],
        env={**os.environ, "UPSTREAM_PORT": str(port)},
        cwd=BENCH_DIR,
        log_path=workdir / "upstream.log",
    ) as server:
        yield f"http://127.0.0.1:{port}", server


def _requests(deployment: TesseraDeployment, slug: str) -> list[TokenRequest]:
    tenant = next(t for t in deployment.tenants if t.slug == slug)
    return [tessera_token_request(deployment.env, client, slug=slug) for client in tenant.clients]


def _target(deployment: TesseraDeployment, server: Target, slug: str, *, hook: bool) -> Target:
    return Target(
        label=slug,
        server=server.server,
        token_request=_requests(deployment, slug)[0],
        expectation=tessera_expectation(deployment.env, with_hook=hook, slug=slug),
    )


ROUND_TENANTS = [
    ("nofetch-f", True),
    ("fetch-f", True),
    ("now-f", True),
    ("seed-s", True),
    ("bare-n", False),
]
FETCHING = {"fetch-f", "now-f"}


def run_slow_upstream(
    *,
    database: str,
    config: ServerConfig,
    settings: Mapping[str, str],
    requests: int,
    rounds: int,
    threads: int,
    max_seconds: float,
    workdir: Path,
    readme_only: bool = False,
) -> list[str]:
    """Every setup in turn on one database; the report."""
    results: dict[str, dict[str, Any]] = {}
    with running_upstream(workdir) as (upstream, upstream_server):
        settings = {
            **settings,
            "TESSERA_TOKEN_RATE_LIMIT": f"{RATE}/s",
            "TESSERA_EGRESS_ALLOW": "127.0.0.1:*",
        }
        tenants = [
            TenantSpec("slow-a", fetching_script(f"{upstream}/slow")),
            TenantSpec("hang-a", fetching_script(f"{upstream}/hang")),
            TenantSpec("quiet-b", seed_script("quiet-b"), clients=B_CLIENTS),
            TenantSpec("fetch-f", fetching_script(f"{upstream}/fast"), clients=MANY_CLIENTS),
            TenantSpec("nofetch-f", fetching_script(None), clients=MANY_CLIENTS),
            TenantSpec("now-f", fetching_script(f"{upstream}/now"), clients=MANY_CLIENTS),
            TenantSpec("seed-s", seed_script("seed-s"), clients=MANY_CLIENTS),
            TenantSpec("bare-n", None, clients=MANY_CLIENTS),
        ]
        with provisioned_tessera(
            database, with_hook=True, workdir=workdir, settings=settings, tenants=tenants
        ) as deployment:
            base = dict(deployment.env.variables)
            for setup in setups(threads)[-1:] if readme_only else setups(threads):
                deployment.env.variables = {**base, **setup.settings}
                server_config = ServerConfig(
                    server=config.server,
                    workers=config.workers,
                    worker_class=config.worker_class,
                    threads=config.threads,
                    blocking_threads=setup.blocking_threads,
                )
                print(f"slow upstream: {setup.name} ({server_config.describe()})", flush=True)
                measured: dict[str, Any] = {}
                # A fresh server for each part: under the old setup, A's queued
                # requests would hold the next part up for many minutes.
                for part in ("slow-a", "hang-a", ROUNDS):
                    with running_tessera(deployment, server_config, workdir) as server:
                        measured.update(
                            _measure(
                                deployment, server, part, requests, rounds, max_seconds, workdir,
                                upstream_server,
                            )
                        )  # fmt: skip
                results[setup.name] = measured
            deployment.env.variables = base
    return _report(results, database, config, requests, rounds)


ROUNDS = "rounds"


def _measure(
    deployment: TesseraDeployment,
    server: Target,
    part: str,
    requests: int,
    rounds: int,
    max_seconds: float,
    workdir: Path,
    upstream: Server,
) -> dict[str, Any]:
    quiet = _target(deployment, server, "quiet-b", hook=True)
    verify_sample(quiet.token_request, quiet.expectation, count=SAMPLE_TOKENS)
    b_cycle = _requests(deployment, "quiet-b")
    b_rate = int(RATE * B_CLIENTS * B_RATE_FRACTION)

    def b_run(seconds: float = max_seconds, count: int = requests) -> LoadResult:
        return run_load(
            quiet, connections=B_CONNECTIONS, requests=count, max_seconds=seconds,
            rate=b_rate, cycle=b_cycle,
        )  # fmt: skip

    measured: dict[str, Any] = {}
    if part != ROUNDS:
        slug = part
        # As many warm copies of B's hook in each worker as runs of it go at
        # once: a first run without an idle copy compiles the hook.
        run_load(quiet, connections=B_WARM_CONNECTIONS, requests=2000,
                 max_seconds=max_seconds, rate=b_rate, cycle=b_cycle)  # fmt: skip
        alone = measured[f"B alone {slug}"] = b_run(count=B_STEADY_REQUESTS)
        print(f"  B alone: p99 {alone.p99_ms} ms", flush=True)
        noisy = _target(deployment, server, slug, hook=True)
        stop_file = workdir / f"stop-{slug}-{server.server.pid}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(
                run_load, noisy, connections=A_CONNECTIONS, requests=None,
                duration_seconds=2 * BESIDE_SECONDS + 10, max_seconds=2 * BESIDE_SECONDS + 15,
                rate=RATE, stop_file=stop_file,
            )  # fmt: skip
            started = time.monotonic()
            try:
                starting = b_run(BESIDE_SECONDS)
                time.sleep(max(0.0, started + A_STEADY_SECONDS - time.monotonic()))
                beside = b_run(BESIDE_SECONDS, B_STEADY_REQUESTS)
            finally:
                stop_file.touch()
            measured[f"B beside {slug} starting"] = starting
            measured[f"B beside {slug}"] = beside
            measured[f"A {slug}"] = future.result()
        print(
            f"  B beside {slug}: p99 {starting.p99_ms} ms as A starts, {beside.p99_ms} ms "
            f"once steady; {starting.errors + beside.errors} errors",
            flush=True,
        )
        return measured
    for slug, hook in ROUND_TENANTS:  # warm every thread's contexts up once
        target = _target(deployment, server, slug, hook=hook)
        verify_sample(target.token_request, target.expectation, count=SAMPLE_TOKENS)
        run_load(target, connections=CONCURRENCY, requests=1000, max_seconds=max_seconds,
                 cycle=_requests(deployment, slug))  # fmt: skip
    for index in range(rounds):
        order = ROUND_TENANTS if index % 2 == 0 else ROUND_TENANTS[::-1]
        for slug, hook in order:
            target = _target(deployment, server, slug, hook=hook)
            upstream_before = upstream.cpu_seconds()
            result = run_load(
                target, connections=CONCURRENCY, requests=requests, max_seconds=max_seconds,
                cycle=_requests(deployment, slug),
            )  # fmt: skip
            measured.setdefault(slug, []).append(result)
            if slug in FETCHING:
                upstream_ms = (upstream.cpu_seconds() - upstream_before) * 1000
                measured.setdefault(f"{slug} upstream", []).append(
                    upstream_ms / max(result.responses, 1)
                )
            print(
                f"  round {index + 1} {slug:<10} {result.tokens_per_second:6.0f} tokens/s  "
                f"CPU {result.cpu_ms_per_token or 0:.3f} ms/token  errors {result.errors}",
                flush=True,
            )
    return measured


def _median(results: Sequence[LoadResult], what: str) -> float:
    values = [getattr(result, what) or 0.0 for result in results]
    return statistics.median(values)


def _report(
    results: dict[str, dict[str, Any]],
    database: str,
    config: ServerConfig,
    requests: int,
    rounds: int,
) -> list[str]:
    intro = (
        f"Slow upstream on {database}, granian {config.workers} workers, "
        f"TESSERA_TOKEN_RATE_LIMIT={RATE}/s. Tenant A's Hook fetches an upstream answering in "
        f"2 s (`slow-a`) or never (`hang-a`, until its 5 s deadline), driven at {RATE}/s over "
        f"{A_CONNECTIONS} connections while tenant B (seed hook, {B_CLIENTS} clients, "
        f"{B_CONNECTIONS} connections) sends {requests} requests as A starts, then, once A "
        f"has run {A_STEADY_SECONDS:.0f} s, {B_STEADY_REQUESTS} (B alone: as many); "
        f"then {rounds} rounds at "
        f"c={CONCURRENCY} of {requests} requests each: an async Hook with one fetch of an "
        "upstream answering in 20 ms (`fetch-f`), the same Hook without it (`nofetch-f`), the "
        "same fetch answered at once (`now-f`), the seed hook (`seed-s`) and no hook "
        "(`bare-n`), back to back."
    )
    sections = [intro]
    fairness_rows, a_rows, round_rows, verdicts = [], [], [], []
    cpu_before: dict[str, float] = {}
    error_kinds: dict[tuple[str, str, str], int] = {}
    for index, (setup, measured) in enumerate(results.items()):
        for slug in ("slow-a", "hang-a"):
            alone = measured[f"B alone {slug}"]
            assert isinstance(alone, LoadResult)
            starting = measured[f"B beside {slug} starting"]
            beside = measured[f"B beside {slug}"]
            a_result = measured[f"A {slug}"]
            assert isinstance(starting, LoadResult) and isinstance(beside, LoadResult)
            assert isinstance(a_result, LoadResult)
            ratio = (beside.p99_ms or 0) / alone.p99_ms if alone.p99_ms else float("inf")
            errors = starting.errors + beside.errors
            unanswered = sum(run.requested - run.responses for run in (starting, beside))
            met = errors == 0 and unanswered <= 0 and ratio <= P99_TARGET
            fairness_rows.append(
                [setup, slug, ms_cell(alone.p99_ms), ms_cell(starting.p99_ms),
                 ms_cell(beside.p99_ms), f"{ratio:.2f}", str(errors),
                 f"{status_counts(starting)}; {status_counts(beside)}", "✓" if met else "✗"]
            )  # fmt: skip
            a_rows.append(
                [setup, slug, f"{a_result.responses / max(a_result.duration_seconds, 1e-9):.0f}",
                 status_counts(a_result)]
            )  # fmt: skip
        medians = {}
        for slug, _ in ROUND_TENANTS:
            runs = measured[slug]
            assert isinstance(runs, list)
            medians[slug] = (_median(runs, "tokens_per_second"), _median(runs, "cpu_ms_per_token"))
            errors = sum(run.errors for run in runs)
            for run in runs:
                for kind, count in run.error_kinds.items():
                    error_kinds[(setup, slug, kind)] = (
                        error_kinds.get((setup, slug, kind), 0) + count
                    )
            upstream = measured.get(f"{slug} upstream")
            round_rows.append(
                [setup, slug, f"{medians[slug][0]:.0f}", f"{medians[slug][1]:.3f}", str(errors),
                 " / ".join(f"{run.tokens_per_second:.0f}" for run in runs),
                 " / ".join(f"{run.cpu_ms_per_token or 0:.3f}" for run in runs),
                 f"{statistics.median(upstream):.3f}" if upstream else "-"]
            )  # fmt: skip
        fetch_ratio = medians["fetch-f"][0] / max(medians["nofetch-f"][0], 1e-9)
        verdicts.append(
            f"{setup}: fetch-f / nofetch-f tokens/s {fetch_ratio:.2f} (target ≥ {FETCH_TARGET}) "
            f"{'✓' if fetch_ratio >= FETCH_TARGET else '✗'}"
        )
        base_cpu = medians["nofetch-f"][1]
        verdicts.append(
            f"{setup}: server CPU per token beyond nofetch-f's {base_cpu:.3f} ms: "
            f"fetch-f +{medians['fetch-f'][1] - base_cpu:.3f} ms, now-f (no wait) "
            f"+{medians['now-f'][1] - base_cpu:.3f} ms; the upstream, on the same cores, "
            f"{statistics.median(measured['fetch-f upstream']):.3f} ms per request"
        )
        if index == 0:
            cpu_before = {slug: medians[slug][1] for slug in ("seed-s", "bare-n")}
        else:
            for slug in ("seed-s", "bare-n"):
                change = medians[slug][1] / max(cpu_before[slug], 1e-9)
                verdicts.append(
                    f"{setup}: {slug} CPU ms/token vs before {change:.2f} (no slower beyond noise)"
                )
    sections.append(
        format_table(
            [
                "setup",
                "A",
                "B alone p99 ms",
                "B as A starts p99 ms",
                "B beside steady A p99 ms",
                "ratio (steady / alone)",
                "B errors",
                "B's HTTP statuses (starting; steady)",
                "met (0 errors, ≤ 2x)",
            ],
            fairness_rows,
            text_columns=3,
        )
    )
    sections.append(
        format_table(["setup", "A", "A's answers/s", "A's HTTP statuses"], a_rows, text_columns=2)
    )
    sections.append(
        format_table(
            [
                "setup",
                "tenant",
                "tokens/s (median)",
                "CPU ms/token (median)",
                "errors",
                "tokens/s by round",
                "CPU ms/token by round",
                "upstream CPU ms/request (median)",
            ],
            round_rows,
            text_columns=2,
        )
    )
    if error_kinds:
        sections.append(
            format_table(
                ["setup", "tenant", "errors in the rounds (error: error_description)", "count"],
                [[*key, str(count)] for key, count in sorted(error_kinds.items())],
            )
        )
    sections.append("\n".join(f"- {line}" for line in verdicts))
    return sections
