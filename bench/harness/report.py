"""The results table, the derived comparisons, and the RESULTS.md entry."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sqlite3
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.loadgen import LoadResult
from harness.node import BENCH_DIR, NODE_PACKAGES, installed_version

RESULTS_FILE = BENCH_DIR / "RESULTS.md"
RESULTS_HEADER = """# Token endpoint benchmark results

Appended by `python bench/token_endpoint.py` (newest last). How to read them:
bench/README.md. Numbers from different machines or load generators do not
compare; the Tessera/peer ratio measured in the same run holds better.
"""

HOOK = "tessera+hook"
NO_HOOK = "tessera"
PEER = "peer"
FLOOR = "floor"
MIB = 1024 * 1024
# Issue 10's targets, at 50 connections: (name, numerator, denominator,
# measure, bound, at least (True) or at most (False)).
TARGET_CONCURRENCY = 50
TARGETS = (
    ("no hook / floor, tokens/s", NO_HOOK, FLOOR, "tokens/s", 0.85, True),
    ("hook / no hook, tokens/s", HOOK, NO_HOOK, "tokens/s", 0.9, True),
    ("hook / peer, tokens/s", HOOK, PEER, "tokens/s", 0.7, True),
    ("hook / peer, p99", HOOK, PEER, "p99", 1.5, False),
)


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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


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
        "db", "setup", "server", "conc", "tokens/s", "p50 ms", "p99 ms",
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
                measurement.database if measurement.variant != PEER else "-",
                measurement.setup if measurement.variant != PEER else "-",
                measurement.variant,
                str(measurement.concurrency),
                f"{result.tokens_per_second:.0f}",
                _ms(result.p50_ms),
                _ms(result.p99_ms),
                errors,
                f"{result.peak_rss_bytes / MIB:.0f}",
                ratio,
            ]
        )
    return format_table(header, rows)


def _measure(result: LoadResult, measure: str) -> float | None:
    return result.tokens_per_second if measure == "tokens/s" else result.p99_ms


def targets_table(measurements: Sequence[Measurement]) -> str | None:
    """Each of issue 10's ratios next to its target, per (database, setup).

    Measured at 50 connections, or at the highest level run if 50 was not
    (then the table says so: the targets are set at 50). With several rounds,
    each ratio is taken within its round (the servers ran back to back) and
    the median of the rounds is judged; the rounds' own values follow it.
    """
    groups = dict.fromkeys((m.database, m.setup) for m in measurements if m.variant != PEER)
    rows = []
    several_rounds = False
    for database, setup in groups:
        levels = {m.concurrency for m in measurements if (m.database, m.setup) == (database, setup)}
        concurrency = TARGET_CONCURRENCY if TARGET_CONCURRENCY in levels else max(levels)
        rounds = _rounds(measurements, database, setup, concurrency)
        for name, numerator, denominator, measure, bound, at_least in TARGETS:
            ratios = []
            for results in rounds:
                top, bottom = results.get(numerator), results.get(denominator)
                if top is None or bottom is None:
                    continue
                top_value, bottom_value = _measure(top, measure), _measure(bottom, measure)
                ratios.append(
                    None if top_value is None or not bottom_value else top_value / bottom_value
                )
            if not ratios:
                continue
            values = [r for r in ratios if r is not None]
            if len(values) < len(ratios):
                ratio, verdict = "-", "✗"
            else:
                value = statistics.median(values)
                ratio = f"{value:.2f}"
                if len(values) > 1:
                    ratio += " (" + ", ".join(f"{r:.2f}" for r in values) + ")"
                    several_rounds = True
                verdict = "✓" if (value >= bound if at_least else value <= bound) else "✗"
            rows.append(
                [
                    database, setup, name, str(concurrency), ratio,
                    f"{'≥' if at_least else '≤'} {bound}", verdict,
                ]
            )  # fmt: skip
    if not rows:
        return None
    header = ["db", "setup", "ratio", "conc", "measured", "target", "met"]
    table = format_table(header, rows)
    if several_rounds:
        table += "\n\n(Several rounds: the median of the rounds' ratios, then each round's.)"
    if any(row[3] != str(TARGET_CONCURRENCY) for row in rows):
        table += (
            f"\n\n(The targets are set at c={TARGET_CONCURRENCY}, which this run did not measure.)"
        )
    return table


def connection_note(measurements: Sequence[Measurement]) -> str | None:
    """Say which servers closed connections (no keep-alive), since it changes latency."""
    closing = sorted(
        {
            f"{m.variant} ({m.setup})" if m.variant != PEER else m.variant
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
        rows.append(
            [
                database, setup, compare, str(concurrency),
                f"{without.tokens_per_second:.0f}", f"{with_hook.tokens_per_second:.0f}",
                f"{change:+.0%}", p50_delta,
            ]
        )  # fmt: skip
    if not rows:
        return None
    header = ["db", "setup", "compare", "conc", "tokens/s no hook", "tokens/s hook",
              "change", "p50 Δ ms"]  # fmt: skip
    return format_table(header, rows)


def workers_table(measurements: Sequence[Measurement]) -> str | None:
    """How throughput scales from 1 to 2 (or more) server workers."""
    by_key = {(m.database, m.variant, m.concurrency, m.workers): m.result for m in measurements}
    rows = []
    for (database, variant, concurrency, workers), result in by_key.items():
        if variant == PEER or workers == 1:
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
    return f"nproc {cores}, {cpu_model}, {memory_gib:.0f} GiB RAM, {platform.platform()}"


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
    commit = _command_output(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR.parent)
    dirty = _command_output(["git", "status", "--porcelain"], cwd=BENCH_DIR.parent)
    items.append(f"Tessera commit {commit or 'none'}{' (+ uncommitted changes)' if dirty else ''}")
    return "\n".join(f"- {item}" for item in items)


def append_results(*, title: str, sections: Sequence[str]) -> None:
    """Append one dated entry to bench/RESULTS.md."""
    timestamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    entry = f"\n## {timestamp} — {title}\n\n" + "\n\n".join(sections) + "\n"
    if not RESULTS_FILE.exists():
        RESULTS_FILE.write_text(RESULTS_HEADER)
    with RESULTS_FILE.open("a") as results:
        results.write(entry)
