"""The results table, the derived comparisons, and the RESULTS.md entry."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import sqlite3
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.loadgen import LoadResult
from harness.node import BENCH_DIR, NODE_PACKAGES, installed_version

RESULTS_FILE = BENCH_DIR / "RESULTS.md"
HISTORY_DIR = BENCH_DIR / "history"
HISTORY_HEADER = """# Token endpoint benchmark: full entries, {month}

Appended by `python bench/token_endpoint.py` (newest last); bench/RESULTS.md
holds the current figures. How to read them: bench/README.md.
"""

HOOK = "tessera+hook"
NO_HOOK = "tessera"
PEER = "peer"
PEER_VM = "peer+vm"
FLOOR = "floor"
FLOOR_ASGI = "floor-asgi"
MIB = 1024 * 1024
TOKENS = "tokens/s"
P99 = "p99"
CPU = "CPU ms/token"


@dataclass(frozen=True)
class Ratio:
    """A ratio of two servers' measure at 50 connections; with a bound, a target."""

    heading: str  # what it says, as RESULTS.md's section title
    name: str  # short, for the terminal's targets table
    numerator: str
    denominator: str
    measure: str  # TOKENS, P99 or CPU
    bound: float | None = None  # None: reported, no target
    at_least: bool = False


# Issue 22's targets, judged at 50 connections on the median of the rounds,
# then the ratios reported every run without a target.
TARGET_CONCURRENCY = 50
TARGETS = (
    Ratio("The seed hook adds at most 10 % CPU per token over no hook",
          "hook / no hook, CPU", HOOK, NO_HOOK, CPU, 1.10),
    Ratio("Without a hook, at most 1.15 times the DRF floor's CPU per token",
          "no hook / floor, CPU", NO_HOOK, FLOOR, CPU, 1.15),
    Ratio("At least 1.5 times the tokens/s of the peer running the hook in a new vm context",
          "hook / peer+vm, tokens/s", HOOK, PEER_VM, TOKENS, 1.5, at_least=True),
    Ratio("p99 at most 1.0 times the p99 of the peer running the hook in a new vm context",
          "hook / peer+vm, p99", HOOK, PEER_VM, P99, 1.0),
    Ratio("Against the peer running the hook in a new vm context, CPU per token (reported)",
          "hook / peer+vm, CPU", HOOK, PEER_VM, CPU),
    Ratio("The raw peer ratio, tokens/s (reported every run)",
          "hook / peer, tokens/s", HOOK, PEER, TOKENS),
    Ratio("The raw peer ratio, CPU per token (reported every run)",
          "hook / peer, CPU", HOOK, PEER, CPU),
    Ratio("Django's async path: the WSGI floor's tokens/s over the ASGI floor's",
          "floor WSGI / ASGI, tokens/s", FLOOR, FLOOR_ASGI, TOKENS),
    Ratio("Django's async path: the ASGI floor's CPU per token over the WSGI floor's",
          "floor ASGI / WSGI, CPU", FLOOR_ASGI, FLOOR, CPU),
)  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    """One load run, placed in its group (database, server config, concurrency)."""

    database: str
    setup: str
    workers: int
    variant: str
    concurrency: int
    result: LoadResult


def format_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, text_columns: int = 3
) -> str:
    """A Markdown table padded so that it also reads well on a terminal.

    The first ``text_columns`` columns are left-aligned, the (numeric) rest right-aligned.
    """
    rows = [list(row) for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if index >= text_columns else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join(
        "-" * (width + 1) + ":" if index >= text_columns else "-" * (width + 2)
        for index, width in enumerate(widths)
    ) + "|"  # fmt: skip
    return "\n".join([line(header), separator, *(line(row) for row in rows)])


def ms_cell(value: float | None) -> str:
    """Milliseconds to one decimal for a mode's table; ``-`` when not measured."""
    return "-" if value is None else f"{value:.1f}"


def status_counts(result: LoadResult) -> str:
    """How many answers of each HTTP status, and the requests never answered."""
    codes = ", ".join(f"{code}: {count}" for code, count in sorted(result.status_codes.items()))
    unanswered = result.requested - result.responses
    return codes + (f", unanswered: {unanswered}" if unanswered > 0 else "")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _is_peer(variant: str) -> bool:
    return variant in (PEER, PEER_VM)


def _round_of(measurements: Sequence[Measurement], measurement: Measurement) -> int:
    """Which round ``measurement`` belongs to: a concurrency level given more
    than once (``--concurrency 50,50,50``) runs every server once per round."""
    key = (measurement.database, measurement.setup, measurement.concurrency, measurement.variant)
    earlier = 0
    for other in measurements:
        if other is measurement:
            return earlier
        if (other.database, other.setup, other.concurrency, other.variant) == key:
            earlier += 1
    raise ValueError("measurement not in measurements")


def _rounds(
    measurements: Sequence[Measurement], database: str, setup: str, concurrency: int
) -> list[dict[str, LoadResult]]:
    """Per round, each server's result at one (database, setup, concurrency)."""
    rounds: list[dict[str, LoadResult]] = []
    for measurement in measurements:
        if (measurement.database, measurement.setup, measurement.concurrency) != (
            database,
            setup,
            concurrency,
        ):
            continue
        index = _round_of(measurements, measurement)
        while len(rounds) <= index:
            rounds.append({})
        rounds[index][measurement.variant] = measurement.result
    return rounds


def _peer_for(measurements: Sequence[Measurement], other: Measurement) -> LoadResult | None:
    """The peer's result from the same round as ``other``."""
    rounds = _rounds(measurements, other.database, other.setup, other.concurrency)
    return rounds[_round_of(measurements, other)].get(PEER)


def results_table(measurements: Sequence[Measurement]) -> str:
    """One row per run: throughput, latency, errors, peak RSS and the ratio to the peer."""
    header = [
        "db", "setup", "server", "conc", "tokens/s", "p50 ms", "p99 ms", "CPU ms/token",
        "errors", "peak RSS MiB", "tokens/s vs peer",
    ]  # fmt: skip
    rows = []
    for measurement in measurements:
        result = measurement.result
        peer = _peer_for(measurements, measurement)
        if measurement.variant == PEER:
            ratio = "1"
        elif peer and peer.tokens_per_second > 0:
            ratio = f"{result.tokens_per_second / peer.tokens_per_second:.2f}"
        else:
            ratio = "-"
        errors = str(result.errors)
        if result.truncated:
            errors += f" (stopped at {result.responses}/{result.requested})"
        rows.append(
            [
                measurement.database if not _is_peer(measurement.variant) else "-",
                measurement.setup if not _is_peer(measurement.variant) else "-",
                measurement.variant,
                str(measurement.concurrency),
                f"{result.tokens_per_second:.0f}",
                _ms(result.p50_ms),
                _ms(result.p99_ms),
                _cpu(result.cpu_ms_per_token),
                errors,
                f"{result.peak_rss_bytes / MIB:.0f}",
                ratio,
            ]
        )
    return format_table(header, rows)


def _measure(result: LoadResult, measure: str) -> float | None:
    if measure == TOKENS:
        return result.tokens_per_second
    if measure == P99:
        return result.p99_ms
    return result.cpu_ms_per_token


def _format_measure(value: float | None, measure: str) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if measure == TOKENS else _cpu(value) if measure == CPU else _ms(value)


@dataclass(frozen=True)
class RatioRounds:
    """One Ratio at one (database, setup): each round's two values and their ratio."""

    ratio: Ratio
    database: str
    setup: str
    concurrency: int
    rounds: list[tuple[float | None, float | None, float | None]]  # (top, bottom, ratio)

    @property
    def median(self) -> float | None:
        ratios = [ratio for _, _, ratio in self.rounds]
        if not ratios or any(ratio is None for ratio in ratios):
            return None
        return statistics.median(r for r in ratios if r is not None)

    @property
    def verdict(self) -> str:
        """✓ or ✗ against the bound; "-" for a ratio reported without one."""
        if self.ratio.bound is None:
            return "-"
        value = self.median
        if value is None:
            return "✗"
        met = value >= self.ratio.bound if self.ratio.at_least else value <= self.ratio.bound
        return "✓" if met else "✗"

    @property
    def target(self) -> str:
        if self.ratio.bound is None:
            return "reported"
        return f"{'≥' if self.ratio.at_least else '≤'} {self.ratio.bound:g}"


def ratio_rounds(measurements: Sequence[Measurement]) -> list[RatioRounds]:
    """Every Ratio of TARGETS, per (database, setup), round by round.

    Measured at 50 connections, or at the highest level run if 50 was not.
    With several rounds, each ratio is taken within its round (the servers
    ran back to back) and the median of the rounds is judged.
    """
    groups = dict.fromkeys((m.database, m.setup) for m in measurements if not _is_peer(m.variant))
    found = []
    for database, setup in groups:
        levels = {m.concurrency for m in measurements if (m.database, m.setup) == (database, setup)}
        concurrency = TARGET_CONCURRENCY if TARGET_CONCURRENCY in levels else max(levels)
        rounds = _rounds(measurements, database, setup, concurrency)
        for ratio in TARGETS:
            values = []
            for results in rounds:
                top, bottom = results.get(ratio.numerator), results.get(ratio.denominator)
                if top is None or bottom is None:
                    continue
                top_value = _measure(top, ratio.measure)
                bottom_value = _measure(bottom, ratio.measure)
                quotient = (
                    top_value / bottom_value if top_value is not None and bottom_value else None
                )
                values.append((top_value, bottom_value, quotient))
            if values:
                found.append(RatioRounds(ratio, database, setup, concurrency, values))
    return found


def targets_table(measurements: Sequence[Measurement]) -> str | None:
    """Each ratio next to its target (if any), per (database, setup): the
    median of the rounds, then each round's value."""
    rows = []
    several_rounds = False
    found = ratio_rounds(measurements)
    for item in found:
        median = item.median
        measured = "-" if median is None else f"{median:.2f}"
        if median is not None and len(item.rounds) > 1:
            each = [f"{r:.2f}" for _, _, r in item.rounds if r is not None]
            measured += " (" + ", ".join(each) + ")"
            several_rounds = True
        rows.append(
            [
                item.database, item.setup, item.ratio.name, str(item.concurrency),
                measured, item.target, item.verdict,
            ]
        )  # fmt: skip
    if not rows:
        return None
    header = ["db", "setup", "ratio", "conc", "measured", "target", "met"]
    table = format_table(header, rows)
    if several_rounds:
        table += "\n\n(Several rounds: the median of the rounds' ratios, then each round's.)"
    if any(item.concurrency != TARGET_CONCURRENCY for item in found):
        table += (
            f"\n\n(The targets are set at c={TARGET_CONCURRENCY}, which this run did not measure.)"
        )
    return table


def _median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def medians_table(measurements: Sequence[Measurement]) -> str | None:
    """Each server's medians over the rounds at the targets' concurrency."""
    rows = []
    groups = dict.fromkeys((i.database, i.setup, i.concurrency) for i in ratio_rounds(measurements))
    for database, setup, concurrency in groups:
        by_variant: dict[str, list[LoadResult]] = {}
        for round_results in _rounds(measurements, database, setup, concurrency):
            for variant, result in round_results.items():
                by_variant.setdefault(variant, []).append(result)
        for variant, results in by_variant.items():
            medians = [
                _median([_measure(result, measure) for result in results])
                for measure in (TOKENS, P99, CPU)
            ]
            rows.append(
                [
                    database, setup, variant, str(concurrency), str(len(results)),
                    *(_format_measure(value, measure)
                      for value, measure in zip(medians, (TOKENS, P99, CPU), strict=True)),
                ]
            )  # fmt: skip
    if not rows:
        return None
    header = ["db", "setup", "server", "conc", "rounds", "tokens/s", "p99 ms", "CPU ms/token"]
    return format_table(header, rows, text_columns=4)


def current_tables(measurements: Sequence[Measurement]) -> list[str]:
    """RESULTS.md's head: each server's medians, then one table per ratio of
    TARGETS: each round's two values and their ratio, then the median of the
    rounds and the verdict."""
    sections = []
    if medians := medians_table(measurements):
        sections.append(f"### Each server, medians of the rounds\n\n{medians}")
    for ratio in TARGETS:
        items = [item for item in ratio_rounds(measurements) if item.ratio == ratio]
        if not items:
            continue
        header = ["db", "setup", "conc", "round", f"{ratio.numerator} {ratio.measure}",
                  f"{ratio.denominator} {ratio.measure}", "ratio", "target", "met"]  # fmt: skip
        rows = []
        for item in items:
            for index, (top, bottom, quotient) in enumerate(item.rounds, start=1):
                rows.append(
                    [
                        item.database, item.setup, str(item.concurrency), str(index),
                        _format_measure(top, ratio.measure),
                        _format_measure(bottom, ratio.measure),
                        "-" if quotient is None else f"{quotient:.2f}", "", "",
                    ]
                )  # fmt: skip
            median = item.median
            rows.append(
                [
                    item.database, item.setup, str(item.concurrency), "**median**", "", "",
                    "-" if median is None else f"**{median:.2f}**", item.target, item.verdict,
                ]
            )  # fmt: skip
        sections.append(f"### {ratio.heading}\n\n" + format_table(header, rows, text_columns=4))
    return sections


def connection_note(measurements: Sequence[Measurement]) -> str | None:
    """Say which servers closed connections (no keep-alive), since it changes latency."""
    closing = sorted(
        {
            f"{m.variant} ({m.setup})" if not _is_peer(m.variant) else m.variant
            for m in measurements
            if m.result.reconnects > m.result.responses // 2
        }
    )
    if not closing:
        return None
    return (
        "No keep-alive: " + ", ".join(closing) + " closed the connection after each response, "
        "so each request opened a new TCP connection (included in its latency)."
    )


def hook_cost_table(measurements: Sequence[Measurement]) -> str | None:
    """What the seed hook costs: the same setup and concurrency with and
    without it, round by round."""
    rows = []
    for measurement in measurements:
        if measurement.variant != HOOK:
            continue
        database, setup, concurrency = (
            measurement.database,
            measurement.setup,
            measurement.concurrency,
        )
        rounds = _rounds(measurements, database, setup, concurrency)
        index = _round_of(measurements, measurement)
        with_hook, without = measurement.result, rounds[index].get(NO_HOOK)
        if without is None or without.tokens_per_second <= 0:
            continue
        change = with_hook.tokens_per_second / without.tokens_per_second - 1
        p50_delta = (
            f"{with_hook.p50_ms - without.p50_ms:+.2f}"
            if with_hook.p50_ms is not None and without.p50_ms is not None
            else "-"
        )
        compare = "hook vs none" + (f", round {index + 1}" if len(rounds) > 1 else "")
        cpu_with, cpu_without = with_hook.cpu_ms_per_token, without.cpu_ms_per_token
        cpu_change = f"{cpu_with / cpu_without - 1:+.0%}" if cpu_with and cpu_without else "-"
        rows.append(
            [
                database, setup, compare, str(concurrency),
                f"{without.tokens_per_second:.0f}", f"{with_hook.tokens_per_second:.0f}",
                f"{change:+.0%}", p50_delta,
                _cpu(cpu_without), _cpu(cpu_with), cpu_change,
            ]
        )  # fmt: skip
    if not rows:
        return None
    header = ["db", "setup", "compare", "conc", "tokens/s no hook", "tokens/s hook",
              "change", "p50 Δ ms", "CPU ms/token no hook", "CPU ms/token hook",
              "CPU change"]  # fmt: skip
    return format_table(header, rows)


def workers_table(measurements: Sequence[Measurement]) -> str | None:
    """How throughput scales from 1 to 2 (or more) server workers."""
    by_key = {(m.database, m.variant, m.concurrency, m.workers): m.result for m in measurements}
    rows = []
    for (database, variant, concurrency, workers), result in by_key.items():
        if _is_peer(variant) or workers == 1:
            continue
        single = by_key.get((database, variant, concurrency, 1))
        if single is None or single.tokens_per_second <= 0:
            continue
        rows.append(
            [
                database, f"1 → {workers} workers", variant, str(concurrency),
                f"{single.tokens_per_second:.0f}", f"{result.tokens_per_second:.0f}",
                f"x{result.tokens_per_second / single.tokens_per_second:.2f}",
            ]
        )  # fmt: skip
    if not rows:
        return None
    header = ["db", "compare", "server", "conc", "tokens/s 1 worker", "tokens/s N workers",
              "scaling"]  # fmt: skip
    return format_table(header, rows)


PYTHON_PACKAGES = (
    "Django", "granian", "gunicorn", "PyJWT", "cryptography", "quickjs-ng", "psycopg",
)  # fmt: skip


def machine_description() -> str:
    """nproc, CPU model and memory, from the OS."""
    cpu_model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    cores = len(os.sched_getaffinity(0))
    memory_gib = memory_kib / 1024 / 1024
    # Other jobs on the machine move every figure: say how busy it was.
    load = " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (
        f"nproc {cores}, {cpu_model}, {memory_gib:.0f} GiB RAM, {platform.platform()}; "
        f"load average {load} (1 / 5 / 15 min) when the run ended"
    )


def _python_package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_output(command: Sequence[str], cwd: Path = BENCH_DIR) -> str:
    try:
        completed = subprocess.run(
            list(command), cwd=cwd, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip()


def versions_description(*, with_postgres: bool) -> str:
    """Versions of everything measured, one per item."""
    python_packages = ", ".join(
        f"{name} {_python_package_version(name)}" for name in PYTHON_PACKAGES
    )
    node_packages = ", ".join(f"{name} {installed_version(name)}" for name in NODE_PACKAGES)
    items = [
        f"Python {platform.python_version()} ({python_packages})",
        f"SQLite {sqlite3.sqlite_version}",
        f"node {_command_output(['node', '--version'])} ({node_packages})",
    ]
    if with_postgres:
        query = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-c", "SHOW server_version"]
        items.append(f"PostgreSQL {_command_output(query)}")
    items.append(f"Tessera commit {commit_description()}")
    return "\n".join(f"- {item}" for item in items)


def commit_description() -> str:
    """The checked-out commit, and whether the tree differs from it."""
    commit = _command_output(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR.parent)
    dirty = _command_output(["git", "status", "--porcelain"], cwd=BENCH_DIR.parent)
    return f"{commit or 'none'}{' (+ uncommitted changes)' if dirty else ''}"


RESULTS_HEAD = """# Token endpoint benchmark: current figures

Written by `python bench/token_endpoint.py` after each comparison run it
records (not `--quick`, not `--peer-only`): one table per target of issue 22,
from the latest such run. Every run's full entry (all servers, latencies,
memory, the soak, tenants and noisy-neighbour modes) is appended to
`bench/history/YYYY-MM.md`; `bench/history/2026-11-23_to_2026-12-05.md` is
the log from before this layout. How to read them: bench/README.md.

Latest run: {timestamp}, Tessera commit {commit}: `{command}`.

Machine: {machine}

This machine is shared (2 cores; other sessions run test suites and
browsers on it), and the load average above says how busy it was. Other
jobs take wall time from the servers, so tokens/s and p99 move with them;
when the machine is oversubscribed the scheduler also gives a server with
two worker processes more of it than the one-process node peers. CPU
milliseconds per token (all the server's processes, from /proc) moves less,
though not nothing: work that shares a core's caches with another job runs
slower. Judge the CPU targets first, on the median of the rounds (each
ratio is taken within a round, the servers back to back); each table shows
every round, so the spread is in sight.

{tables}
"""


# Where bench/RESULTS.md's slow-upstream part starts: a comparison run
# rewrites what is above it and keeps the rest, a --slow-upstream run the
# opposite.
def record_results(
    *,
    title: str,
    command: str,
    sections: Sequence[str],
    head: Sequence[str] = (),
    block: tuple[str, str] | None = None,
) -> Path:
    """Append one dated entry to this month's history file; with ``head``
    (the current tables of a comparison run), rewrite bench/RESULTS.md around
    them, keeping the other modes' blocks; with ``block`` (a mode's name and
    its current tables under a title line, e.g. ``--flow``'s), put that block
    in RESULTS.md in place of the mode's last one. Returns the history file."""
    now = datetime.datetime.now(datetime.UTC)
    timestamp = now.strftime("%Y-%m-%d %H:%M UTC")
    commit = commit_description()  # before this function's own writes dirty the tree
    history = HISTORY_DIR / f"{now:%Y-%m}.md"
    entry = f"\n## {timestamp} — {title}: `{command}`\n\n" + "\n\n".join(sections) + "\n"
    HISTORY_DIR.mkdir(exist_ok=True)
    if not history.exists():
        history.write_text(HISTORY_HEADER.format(month=f"{now:%Y-%m}"))
    with history.open("a") as file:
        file.write(entry)
    current = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else ""
    blocks = dict(_BLOCK.findall(current))
    if head:
        current = RESULTS_HEAD.format(
            timestamp=timestamp,
            commit=commit,
            command=command,
            machine=machine_description(),
            tables="\n\n".join(head),
        )
    if block is not None:
        name, text = block
        title_line, _, tables = text.strip().partition("\n")
        blocks[name] = (
            f"\n{title_line}\n\nLatest `--{name}` run: {timestamp}, Tessera commit {commit}: "
            f"`{command}`.\n\n{tables.strip()}\n"
        )
    if head or block is not None:
        current = _BLOCK.sub("", current).rstrip("\n") + "\n"
        for name, text in blocks.items():
            current += f"\n<!-- {name}:start -->{text}<!-- {name}:end -->\n"
        RESULTS_FILE.write_text(current)
    return history


# A mode's own section of RESULTS.md, kept when a comparison run rewrites the rest.
_BLOCK = re.compile(r"\n?<!-- (\S+):start -->(.*?)<!-- \1:end -->\n?", re.DOTALL)
