"""Benchmark Tessera's token endpoint against a peer (node oidc-provider).

    python bench/token_endpoint.py [--quick] [--requests N] [--concurrency 1,10,50]
        [--db postgres,sqlite] [--workers 1,2] [--server granian|gunicorn]
        [--worker-class sync|gthread] [--isolation inprocess|process]
        [--soak N] [--tenants N] [--noisy-neighbour] [--flow] [--peer-only]
        [--append/--no-append]

Starts Tessera as deployed (granian, production settings) on each database,
the two peers (the seed hook's claim as a constant, and the seed hook in a
new vm context per token) and the floor (a bare DRF view signing the same
token, on WSGI and as an async view on ASGI), drives them one after the other
with the same bounded load generator on 127.0.0.1, verifies sample tokens
with PyJWT, measures tokens/s, latency and the server's CPU per token, prints
one table with the targets, appends the entry to bench/history/ and writes
the current tables to bench/RESULTS.md. Everything it starts it stops. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from harness.floor import running_floor
from harness.flow import FLOW_RESULTS_TITLE, run_flow
from harness.loadgen import LoadResult, run_load
from harness.neighbour import NEIGHBOUR_RATE, run_noisy_neighbour
from harness.node import ensure_node_modules
from harness.peer import running_peer
from harness.processes import ProcessError
from harness.report import (
    FLOOR,
    FLOOR_ASGI,
    HOOK,
    NO_HOOK,
    PEER,
    PEER_VM,
    Measurement,
    connection_note,
    current_tables,
    hook_cost_table,
    machine_description,
    record_results,
    results_table,
    targets_table,
    versions_description,
    workers_table,
)
from harness.soak import run_soak, soak_table, soak_verdict
from harness.targets import Target
from harness.tenants import run_tenants
from harness.tessera import (
    ServerConfig,
    TesseraDeployment,
    check_repository,
    provisioned_tessera,
    running_tessera,
    server_arguments,
    switch_hook,
)
from harness.tokens import TokenCheckError, verify_sample
from harness.upstream import SLOW_UPSTREAM_RESULTS_TITLE, run_slow_upstream

SAMPLE_TOKENS = 8
# V8 optimises the peer's hot paths only after some thousands of requests; its
# first runs are otherwise slower than the rest, whatever their own warm-up.
PEER_STARTUP_WARMUP = 5_000


@dataclass(frozen=True)
class Preset:
    """Defaults for options not given on the command line."""

    requests: int
    concurrency: str
    warmup: int | None  # None: chosen per concurrency level


FULL = Preset(requests=20_000, concurrency="1,10,50", warmup=None)
QUICK = Preset(requests=300, concurrency="1,10", warmup=50)
NOISY = Preset(requests=2_000, concurrency="10", warmup=None)
# Three rounds at 50 connections, each flow 3,000 requests: a few minutes.
FLOW = Preset(requests=3_000, concurrency="50,50,50", warmup=500)


@dataclass(frozen=True)
class Plan:
    """What to measure, resolved from the command line."""

    requests: int
    warmup: int | None
    concurrency: list[int]
    databases: list[str]
    workers: list[int]
    server: str
    worker_class: str
    threads: int
    blocking_threads: int
    max_seconds: float
    soak: int | None
    soak_concurrency: int
    tenants: int | None
    noisy_neighbour: bool
    neighbour_rate: int
    flow: bool
    slow_upstream: bool
    readme_only: bool
    rounds: int
    isolation: str
    peer_only: bool
    with_hook: bool
    quick: bool

    @property
    def settings(self) -> dict[str, str]:
        """Tessera's environment that the command line sets."""
        return {"TESSERA_HOOK_ISOLATION": self.isolation}

    def warmup_for(self, concurrency: int) -> int:
        """Requests sent (and discarded) before a measured run."""
        if self.warmup is not None:
            return self.warmup
        return min(2_000, max(10 * concurrency, self.requests // 10))


def _int_list(text: str) -> list[int]:
    values = [int(item) for item in text.split(",") if item.strip()]
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _databases(text: str) -> list[str]:
    values = [item.strip() for item in text.split(",") if item.strip()]
    if not values or any(value not in {"postgres", "sqlite"} for value in values):
        raise argparse.ArgumentTypeError(f"expected postgres and/or sqlite, got {text!r}")
    return values


def parse_plan(argv: Sequence[str]) -> tuple[Plan, bool]:
    """The plan and whether to append to RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, help="requests per measured run (20000)")
    parser.add_argument("--concurrency", help="connection counts, comma-separated (1,10,50)")
    parser.add_argument("--db", type=_databases, default="postgres,sqlite",
                        help="databases for Tessera: postgres,sqlite")  # fmt: skip
    parser.add_argument("--workers", type=_int_list, default="1,2",
                        help="server worker counts to compare (1,2)")  # fmt: skip
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian",
                        help="server for Tessera (granian, as deployed)")  # fmt: skip
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync",
                        help="gunicorn worker class (sync; see harness/tessera.py)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (4)")
    parser.add_argument("--blocking-threads", type=int, default=64,
                        help="granian threads running Tessera per worker (64)")  # fmt: skip
    parser.add_argument("--warmup", type=int, help="warm-up requests before each run (auto)")
    parser.add_argument("--max-seconds", type=float, default=300,
                        help="stop any single run after this long (300)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 300 requests, concurrency 1,10, not appended")  # fmt: skip
    parser.add_argument("--soak", type=int, metavar="N",
                        help="instead: N requests to Tessera, RSS at start/middle/end")  # fmt: skip
    parser.add_argument("--soak-concurrency", type=int, default=10)
    parser.add_argument("--tenants", type=int, metavar="N",
                        help="instead: N tenants, each with its own hook, round-robin")  # fmt: skip
    parser.add_argument("--noisy-neighbour", action="store_true",
                        help="instead: tenant B alone and beside A's looping hook")  # fmt: skip
    parser.add_argument("--neighbour-rate", type=int, default=NEIGHBOUR_RATE,
                        help=f"A's rate limit and load, requests/s ({NEIGHBOUR_RATE})")  # fmt: skip
    parser.add_argument("--flow", action="store_true",
                        help="instead: three bound Actions beside one, in rounds")  # fmt: skip
    parser.add_argument("--slow-upstream", action="store_true",
                        help="instead: hooks waiting on an upstream, before and after")  # fmt: skip
    parser.add_argument("--readme-only", action="store_true",
                        help="with --slow-upstream: only the README's setup")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --slow-upstream: rounds at 50 connections (3)")  # fmt: skip
    parser.add_argument("--isolation", choices=["inprocess", "process"], default="inprocess",
                        help="TESSERA_HOOK_ISOLATION for Tessera (inprocess)")  # fmt: skip
    parser.add_argument("--peer-only", action="store_true", help="measure only the peer")
    parser.add_argument("--no-hook", action="store_true",
                        help="no seed hook: measure Tessera without hooks only")  # fmt: skip
    parser.add_argument("--append", action=argparse.BooleanOptionalAction,
                        help="append to bench/RESULTS.md (default: unless --quick)")  # fmt: skip
    args = parser.parse_args(argv)

    preset = QUICK if args.quick else FULL
    if (args.noisy_neighbour or args.slow_upstream) and not args.quick:
        # B stays under its rate limit, so 20,000 requests would take minutes.
        preset = NOISY
    if args.flow and not args.quick:
        preset = FLOW
    plan = Plan(
        requests=args.requests or preset.requests,
        warmup=args.warmup if args.warmup is not None else preset.warmup,
        concurrency=_int_list(args.concurrency or preset.concurrency),
        databases=args.db,  # argparse applies `type` to string defaults too
        workers=args.workers,
        server=args.server,
        worker_class=args.worker_class,
        threads=args.threads,
        blocking_threads=args.blocking_threads,
        max_seconds=args.max_seconds,
        soak=args.soak,
        soak_concurrency=args.soak_concurrency,
        tenants=args.tenants,
        noisy_neighbour=args.noisy_neighbour,
        neighbour_rate=args.neighbour_rate,
        flow=args.flow,
        slow_upstream=args.slow_upstream,
        readme_only=args.readme_only,
        rounds=args.rounds,
        isolation=args.isolation,
        peer_only=args.peer_only,
        with_hook=not args.no_hook,
        quick=args.quick,
    )
    append = args.append if args.append is not None else not args.quick
    return plan, append


def measure(target: Target, *, variant: str, concurrency: int, plan: Plan) -> LoadResult:
    """Verify a sample, warm up, run the measured load, verify a sample again."""
    verify_sample(target.token_request, target.expectation, count=SAMPLE_TOKENS)
    warmup = plan.warmup_for(concurrency)
    if warmup:
        run_load(target, connections=concurrency, requests=warmup, max_seconds=plan.max_seconds)
    result = run_load(
        target, connections=concurrency, requests=plan.requests, max_seconds=plan.max_seconds
    )
    verify_sample(target.token_request, target.expectation, count=SAMPLE_TOKENS)
    p50 = f"{result.p50_ms:.2f}" if result.p50_ms is not None else "-"
    cpu = result.cpu_ms_per_token
    print(
        f"  {variant:<13} c={concurrency:<3} {result.tokens_per_second:7.0f} tokens/s  "
        f"p50 {p50} ms  CPU {cpu if cpu is None else f'{cpu:.3f}'} ms/token  "
        f"errors {result.errors}",
        flush=True,
    )
    return result


# One round: Tessera with the hook next to the peer running the hook in a
# new vm context per token, the plain peer, Tessera without the hook next to
# the floor, and the floor's ASGI case last. The order reverses every level.
ROUND_ORDER = (HOOK, PEER_VM, PEER, NO_HOOK, FLOOR, FLOOR_ASGI)


def measure_group(
    *,
    deployment: TesseraDeployment,
    tessera: Target,
    others: dict[str, Target],
    config: ServerConfig,
    database: str,
    plan: Plan,
) -> list[Measurement]:
    """All concurrency levels for one (database, server config), alternating servers.

    ``others``: the servers other than Tessera, by variant (the peers and the
    floors). Each level runs every server once in ROUND_ORDER, or in reverse
    at the next level, so that each hook state needs one toggle and no server
    always runs first.
    """
    measurements = []
    hook_enabled = tessera.expectation.with_hook
    for concurrency in plan.concurrency:
        order = [
            variant
            for variant in ROUND_ORDER
            if variant in others or variant == NO_HOOK or (variant == HOOK and deployment.with_hook)
        ]
        if deployment.with_hook and not hook_enabled:
            order.reverse()
        for variant in order:
            if variant in others:
                target = others[variant]
            else:
                wanted = variant == HOOK
                if wanted != hook_enabled:
                    tessera = switch_hook(deployment, tessera, enabled=wanted)
                    hook_enabled = wanted
                target = tessera
            result = measure(target, variant=variant, concurrency=concurrency, plan=plan)
            measurements.append(
                Measurement(
                    database=database,
                    setup=config.describe(),
                    workers=config.workers,
                    variant=variant,
                    concurrency=concurrency,
                    result=result,
                )
            )
    # Leave the hook enabled, as provisioned, for the next server config.
    if deployment.with_hook and not hook_enabled:
        switch_hook(deployment, tessera, enabled=True)
    return measurements


def run_comparison(plan: Plan, workdir: Path, measurements: list[Measurement]) -> None:
    """The main benchmark: each database, worker count and concurrency, plus the peers.

    Appends to ``measurements`` as it goes, so a failure still leaves what was measured.
    """
    with (
        running_peer(workdir) as peer,
        running_peer(workdir, run_hook=True) as peer_vm,
    ):
        peers = {PEER: peer, PEER_VM: peer_vm}
        for target in peers.values():
            print(f"{target.label}: oidc-provider on {target.expectation.issuer}", flush=True)
            run_load(
                target, connections=10, requests=PEER_STARTUP_WARMUP, max_seconds=plan.max_seconds
            )
        if plan.peer_only:
            for concurrency in plan.concurrency:
                for variant, target in peers.items():
                    result = measure(target, variant=variant, concurrency=concurrency, plan=plan)
                    measurements.append(
                        Measurement(
                            database="-",
                            setup="-",
                            workers=0,
                            variant=variant,
                            concurrency=concurrency,
                            result=result,
                        )
                    )
            return
        for database in plan.databases:
            print(f"tessera: provisioning on {database} ...", flush=True)
            with provisioned_tessera(
                database, with_hook=plan.with_hook, workdir=workdir, settings=plan.settings
            ) as deployment:
                for workers in plan.workers:
                    config = server_config(plan, workers)
                    print(f"tessera and floors: {config.describe()} on {database}", flush=True)
                    with contextlib.ExitStack() as servers:
                        tessera = servers.enter_context(
                            running_tessera(deployment, config, workdir)
                        )
                        others = {
                            **peers,
                            FLOOR: servers.enter_context(running_floor(config, workdir)),
                        }
                        if config.server == "granian":
                            others[FLOOR_ASGI] = servers.enter_context(
                                running_floor(config, workdir, interface="asgi")
                            )
                        measurements += measure_group(
                            deployment=deployment,
                            tessera=tessera,
                            others=others,
                            config=config,
                            database=database,
                            plan=plan,
                        )


def load_description(plan: Plan) -> str:
    """How the servers were driven and configured."""
    server = (
        ""
        if plan.peer_only
        else f"Tessera (hooks {plan.isolation}) and the floor: {server_description(plan)}. "
    )
    return (
        f"Load: autocannon, {plan.requests} requests per run after a warm-up, keep-alive, "
        f"127.0.0.1. {server}Peer: one node process (NODE_ENV=production), the seed hook's "
        "claim a constant; peer+vm: the same, running the seed hook in a new vm context "
        "per token (vm.runInNewContext, as Logto runs custom JWT scripts). "
        "Floor: a bare DRF view signing the same RS256 token (bench/floor); floor-asgi: "
        "an async Django view signing it, on granian --interface asgi, same workers. "
        "CPU ms/token: utime + stime of the server's whole process tree (from /proc, "
        "before and after the measured run) ÷ responses. "
        "Errors = responses without a bearer token + connection errors + timeouts."
    )


def server_config(plan: Plan, workers: int) -> ServerConfig:
    return ServerConfig(
        plan.server, workers, plan.worker_class, plan.threads, plan.blocking_threads
    )


def server_description(plan: Plan) -> str:
    """The server command line the bench runs (see harness/tessera.py)."""
    arguments = " ".join(server_arguments(server_config(plan, workers=1)))
    workers = ",".join(map(str, plan.workers))
    return (
        f"{plan.server} --workers {workers} {arguments}, no access log, "
        "production settings (DEBUG off)"
    )


def setup_lines(*, with_postgres: bool) -> list[str]:
    """What every mode's report starts with: the machine and what was measured."""
    return [f"Machine: {machine_description()}", versions_description(with_postgres=with_postgres)]


def comparison_sections(plan: Plan, measurements: list[Measurement]) -> list[str]:
    """The report: settings, main table, hook cost and worker scaling."""
    sections = [
        *setup_lines(with_postgres="postgres" in plan.databases and not plan.peer_only),
        load_description(plan),
        results_table(measurements),
    ]
    if note := connection_note(measurements):
        sections.append(note)
    for table, title in (
        (targets_table(measurements), "Targets (issue 22)"),
        (hook_cost_table(measurements), "Cost of the seed hook"),
        (workers_table(measurements), "Server workers"),
    ):
        if table:
            sections.append(f"{title}:\n\n{table}")
    return sections


def run_soak_mode(plan: Plan, workdir: Path) -> list[str]:
    """--soak: N requests against Tessera (hook on), RSS per process at start/middle/end."""
    assert plan.soak is not None
    database, workers = plan.databases[0], max(plan.workers)
    config = server_config(plan, workers)
    print(f"soak: {plan.soak} requests, {database}, {config.describe()}", flush=True)
    with (
        provisioned_tessera(
            database, with_hook=plan.with_hook, workdir=workdir, settings=plan.settings
        ) as deployment,
        running_tessera(deployment, config, workdir) as tessera,
    ):
        verify_sample(tessera.token_request, tessera.expectation, count=SAMPLE_TOKENS)
        warmup = plan.warmup if plan.warmup is not None else min(2_000, max(500, plan.soak // 20))
        run_load(
            tessera,
            connections=plan.soak_concurrency,
            requests=warmup,
            max_seconds=plan.max_seconds,
            vary=True,
        )
        report = run_soak(
            tessera,
            requests=plan.soak,
            concurrency=plan.soak_concurrency,
            max_seconds=plan.max_seconds,
        )
    return [
        *setup_lines(with_postgres=database == "postgres"),
        (
            f"Soak: Tessera{' with the seed hook' if plan.with_hook else ''} on {database}, "
            f"{config.describe()}, hooks {plan.isolation}, "
            f"concurrency {plan.soak_concurrency}, every request with its own User-Agent and "
            f"body parameter; RSS after a {warmup}-request warm-up (start), "
            "half-way (middle) and at the end."
        ),
        soak_table(report),
        soak_verdict(report),
    ]


def on_one_database(
    plan: Plan, workdir: Path, run: Callable[..., list[str]], **options: object
) -> list[str]:
    """A mode measured on the first database with the most workers: the
    setup lines, then what ``run`` reports, given the plan's common options
    and ``options``."""
    database, workers = plan.databases[0], max(plan.workers)
    return [
        *setup_lines(with_postgres=database == "postgres"),
        *run(
            database=database,
            config=server_config(plan, workers),
            settings=plan.settings,
            requests=plan.requests,
            max_seconds=plan.max_seconds,
            workdir=workdir,
            **options,
        ),
    ]


def run_tenants_mode(plan: Plan, workdir: Path) -> list[str]:
    """--tenants N: N tenants with their own hooks, requested round-robin."""
    assert plan.tenants is not None
    return on_one_database(
        plan, workdir, run_tenants, count=plan.tenants, concurrency=max(plan.concurrency)
    )


def run_noisy_mode(plan: Plan, workdir: Path) -> list[str]:
    """--noisy-neighbour: B's latency alone and while A's hook loops at A's rate limit."""
    return on_one_database(plan, workdir, run_noisy_neighbour, rate=plan.neighbour_rate)


def run_flow_mode(plan: Plan, workdir: Path) -> list[str]:
    """--flow: three bound Actions beside one, CPU per token, in rounds."""
    return on_one_database(
        plan,
        workdir,
        run_flow,
        rounds=plan.concurrency,
        warmup=plan.warmup_for(max(plan.concurrency)),
    )


def run_slow_upstream_mode(plan: Plan, workdir: Path) -> list[str]:
    """--slow-upstream: hooks waiting on an upstream, under the old setup,
    the README's threads unpinned, and the README's."""
    return on_one_database(
        plan,
        workdir,
        run_slow_upstream,
        rounds=plan.rounds,
        threads=plan.blocking_threads,
        readme_only=plan.readme_only,
    )


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so that every ``finally`` stops its servers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous: Callable[[int, FrameType | None], object] | int | None = signal.signal(
        signal.SIGTERM, handler
    )
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; return the process exit status."""
    plan, append = parse_plan(argv)
    started = time.monotonic()
    measurements: list[Measurement] = []
    block: tuple[str, str] | None = None
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="tessera-bench-") as directory:
        workdir = Path(directory)
        try:
            ensure_node_modules()
            if not plan.peer_only:
                check_repository()
            if plan.soak:
                title = f"soak, {plan.soak} requests"
                sections = run_soak_mode(plan, workdir)
            elif plan.tenants:
                title = f"{plan.tenants} tenants, each with its own hook"
                sections = run_tenants_mode(plan, workdir)
            elif plan.noisy_neighbour:
                title = "noisy neighbour"
                sections = run_noisy_mode(plan, workdir)
            elif plan.flow:
                title = "Action flows, three bound Actions beside one"
                sections = run_flow_mode(plan, workdir)
                block = ("flow", FLOW_RESULTS_TITLE + "\n\n" + "\n\n".join(sections[2:]))
            elif plan.slow_upstream:
                title = "slow upstream"
                sections = run_slow_upstream_mode(plan, workdir)
                block = (
                    "slow-upstream",
                    SLOW_UPSTREAM_RESULTS_TITLE + "\n\n" + "\n\n".join(sections),
                )
            else:
                title = "token endpoint" + (" (peer only)" if plan.peer_only else "")
                title += " (quick smoke run)" if plan.quick else ""
                run_comparison(plan, workdir, measurements)
                sections = comparison_sections(plan, measurements)
        except KeyboardInterrupt:
            print("\nbench interrupted; everything it started is stopped", file=sys.stderr)
            return 130
        except (ProcessError, TokenCheckError) as error:
            if measurements:
                print("\nmeasured before the failure:\n" + results_table(measurements))
            print(f"\nbench failed: {error}", file=sys.stderr)
            _print_logs(workdir)
            return 1
    print("\n" + "\n\n".join(sections))
    command = ("python bench/token_endpoint.py " + " ".join(argv)).strip()
    if append:
        head = current_tables(measurements) if not plan.peer_only else []
        history = record_results(
            title=title,
            command=command,
            sections=sections,
            head=head,
            block=block,
        )
        print(f"\nappended to bench/{history.relative_to(history.parents[1])}", end="")
        print(", current tables written to bench/RESULTS.md" if head or block else "")
    print(f"\ndone in {time.monotonic() - started:.0f} s")
    return 0


def _print_logs(workdir: Path) -> None:
    """The tail of each server log, to explain a failure."""
    for log in sorted(workdir.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-30:]
        print(f"--- {log.name} (last {len(lines)} lines) ---", file=sys.stderr)
        print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
