"""``--flow``: the credentials-exchange flow of Actions, three bound Actions
beside one.

Two tenants on one server, provisioned like the bench tenant: ``flow-one``
with one bound Action, ``flow-three`` with three, each Action setting one
claim, made, deployed and bound with ``manage.py actions`` as an operator
would. Each round measures both back to back (the order alternates); the
target (issue 23): the three-Action flow's CPU per token is at most 1.3
times the one-Action flow's, on the median of the rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path

from harness.loadgen import LoadResult, run_load
from harness.report import format_table
from harness.targets import Target
from harness.tessera import (
    ServerConfig,
    TenantSpec,
    TesseraDeployment,
    TesseraEnvironment,
    provisioned_tessera,
    running_tessera,
    tessera_expectation,
    tessera_token_request,
)
from harness.tokens import verify_sample

ONE, THREE = "flow-one", "flow-three"
ACTIONS = {ONE: ("claim-a",), THREE: ("claim-a", "claim-b", "claim-c")}
CPU_TARGET = 1.3
FLOW_RESULTS_TITLE = "### Three bound Actions cost at most 1.3 times one Action's CPU per token"
SAMPLE_TOKENS = 8


def action_script(name: str) -> str:
    """An Action that sets one claim, ``https://bench.test/<name>``."""
    return (
        "exports.onExecuteCredentialsExchange = async (event, api) => {\n"
        f"  api.accessToken.setCustomClaim('https://bench.test/{name}', '{name}');\n"
        "};\n"
    )


def claims_of(slug: str) -> dict[str, str]:
    return {f"https://bench.test/{name}": name for name in ACTIONS[slug]}


def bind_actions(env: TesseraEnvironment, slug: str, workdir: Path) -> None:
    """Create, deploy and bind the tenant's Actions with the ``actions`` command."""
    for name in ACTIONS[slug]:
        script = workdir / f"{slug}-{name}.js"
        script.write_text(action_script(name))
        env.manage("actions", "create", "-n", name, "-p", slug, str(script))
        env.manage("actions", "deploy", name, "-p", slug)
        env.manage("actions", "bind", name, "-p", slug)


def _target(deployment: TesseraDeployment, server_target: Target, index: int) -> Target:
    tenant = deployment.tenants[index]
    return Target(
        label=tenant.slug,
        server=server_target.server,
        token_request=tessera_token_request(deployment.env, tenant.client, slug=tenant.slug),
        expectation=tessera_expectation(
            deployment.env, with_hook=False, slug=tenant.slug, claims=claims_of(tenant.slug)
        ),
    )


def run_flow(
    *,
    database: str,
    config: ServerConfig,
    settings: Mapping[str, str],
    requests: int,
    rounds: list[int],
    warmup: int,
    max_seconds: float,
    workdir: Path,
) -> list[str]:
    """One and three bound Actions, back to back, one round per ``rounds`` entry
    (its concurrency); the report."""
    print(f"flow: {database}, {config.describe()}, {len(rounds)} rounds", flush=True)
    tenants = [TenantSpec(ONE, None), TenantSpec(THREE, None)]
    results: list[dict[str, LoadResult]] = []
    with provisioned_tessera(
        database, with_hook=False, workdir=workdir, settings=settings, tenants=tenants
    ) as deployment:
        for slug in (ONE, THREE):
            bind_actions(deployment.env, slug, workdir)
        with running_tessera(deployment, config, workdir) as tessera:
            targets = {ONE: _target(deployment, tessera, 0), THREE: _target(deployment, tessera, 1)}
            for number, concurrency in enumerate(rounds):
                order = [ONE, THREE] if number % 2 == 0 else [THREE, ONE]
                measured: dict[str, LoadResult] = {}
                for slug in order:
                    result = _measure(targets[slug], concurrency, requests, warmup, max_seconds)
                    measured[slug] = result
                    print(
                        f"  round {number + 1} {slug:<10} c={concurrency:<3} "
                        f"{result.tokens_per_second:7.0f} tokens/s  "
                        f"CPU {_cpu(result.cpu_ms_per_token)} ms/token  errors {result.errors}",
                        flush=True,
                    )
                results.append(measured)
    return [
        (
            f"Action flows on {database}, {config.describe()}, hooks "
            f"{settings.get('TESSERA_HOOK_ISOLATION', 'inprocess')}: tenant `{ONE}` has one "
            f"bound Action, `{THREE}` three (each sets one claim; made, deployed and bound "
            f"with `manage.py actions`), no hook; {requests} requests per run after "
            f"{warmup} warm-up, the two back to back in each round (the order alternates)."
        ),
        flow_table(results, rounds),
    ]


def _measure(
    target: Target, concurrency: int, requests: int, warmup: int, max_seconds: float
) -> LoadResult:
    """Verify a sample (the flow's claims included), warm up, measure, verify again."""
    verify_sample(target.token_request, target.expectation, count=SAMPLE_TOKENS)
    if warmup:
        run_load(target, connections=concurrency, requests=warmup, max_seconds=max_seconds)
    result = run_load(target, connections=concurrency, requests=requests, max_seconds=max_seconds)
    verify_sample(target.token_request, target.expectation, count=SAMPLE_TOKENS)
    return result


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def flow_table(results: list[dict[str, LoadResult]], rounds: list[int]) -> str:
    """Per round: tokens/s and CPU ms per token of each flow, and the CPU ratio;
    then the medians and the target."""
    rows = []
    ratios = []
    for number, (measured, concurrency) in enumerate(zip(results, rounds, strict=False), 1):
        one, three = measured[ONE], measured[THREE]
        ratio = (
            three.cpu_ms_per_token / one.cpu_ms_per_token
            if one.cpu_ms_per_token and three.cpu_ms_per_token
            else None
        )
        if ratio is not None:
            ratios.append(ratio)
        rows.append([
            str(number), str(concurrency),
            f"{one.tokens_per_second:.0f}", f"{three.tokens_per_second:.0f}",
            _cpu(one.cpu_ms_per_token), _cpu(three.cpu_ms_per_token),
            "-" if ratio is None else f"{ratio:.2f}", str(one.errors + three.errors),
        ])  # fmt: skip
    median = statistics.median(ratios) if ratios else None

    def mid(slug: str, value: str) -> str:
        values = [getattr(measured[slug], value) for measured in results]
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        middle = statistics.median(values)
        return f"{middle:.0f}" if value == "tokens_per_second" else _cpu(middle)

    rows.append([
        "**median**", "",
        mid(ONE, "tokens_per_second"), mid(THREE, "tokens_per_second"),
        mid(ONE, "cpu_ms_per_token"), mid(THREE, "cpu_ms_per_token"),
        "-" if median is None else f"**{median:.2f}**", "",
    ])  # fmt: skip
    header = [
        "round", "conc", "1 Action tokens/s", "3 Actions tokens/s",
        "1 Action CPU ms/token", "3 Actions CPU ms/token", "3 / 1 CPU", "errors",
    ]  # fmt: skip
    met = median is not None and median <= CPU_TARGET
    verdict = (
        f"Three bound Actions / one, CPU ms per token (median of the rounds): "
        f"{'-' if median is None else f'{median:.2f}'} (target ≤ {CPU_TARGET}) "
        f"{'✓' if met else '✗'}"
    )
    return f"{format_table(header, rows, text_columns=2)}\n\n{verdict}"
