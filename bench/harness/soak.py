"""Soak run: many requests against Tessera, RSS per process at start, middle and end."""

from __future__ import annotations

from dataclasses import dataclass

from harness.loadgen import LoadResult, run_load
from harness.processes import ProcessInfo, Server
from harness.report import MIB, format_table
from harness.targets import Target
from harness.tokens import verify_sample

SOAK_CHUNKS = 10
SAMPLE_TOKENS = 8
# Growth from the middle to the end snapshot above both of these is flagged,
# for the whole tree and for each process.
GROWTH_TOLERANCE_BYTES = 2 * MIB
GROWTH_TOLERANCE_FRACTION = 0.03


@dataclass(frozen=True)
class SoakReport:
    """RSS snapshots (pid -> process) and the load figures of the whole soak."""

    snapshots: dict[str, dict[int, ProcessInfo]]
    roles: dict[int, str]
    results: list[LoadResult]


def _roles(server: Server, tree: list[ProcessInfo]) -> dict[int, str]:
    """Name each process by its depth: server main process, web worker, hook worker."""
    parents = {info.pid: info.ppid for info in tree}
    names = {0: "server main", 1: "web worker", 2: "hook worker"}
    roles = {}
    for info in tree:
        depth, pid = 0, info.pid
        while pid != server.pid and pid in parents:
            pid, depth = parents[pid], depth + 1
        roles[info.pid] = names.get(depth, f"depth-{depth} child")
    return roles


def run_soak(target: Target, *, requests: int, concurrency: int, max_seconds: float) -> SoakReport:
    """Send ``requests`` requests in chunks; snapshot the tree after chunk 0, half and all."""
    chunk = max(1, requests // SOAK_CHUNKS)
    snapshots: dict[str, dict[int, ProcessInfo]] = {}
    roles: dict[int, str] = {}
    results: list[LoadResult] = []

    def snapshot(name: str) -> None:
        tree = target.server.tree()
        roles.update(_roles(target.server, tree))
        snapshots[name] = {info.pid: info for info in tree}

    snapshot("start")
    for index in range(SOAK_CHUNKS):
        results.append(
            # Every request differs (User-Agent, a body parameter), so the
            # hook's context is new each time, as with real traffic.
            run_load(
                target,
                connections=concurrency,
                requests=chunk,
                max_seconds=max_seconds,
                vary=True,
            )
        )
        done = (index + 1) * chunk
        print(f"  soak: {done}/{chunk * SOAK_CHUNKS} requests", flush=True)
        if index + 1 == SOAK_CHUNKS // 2:
            snapshot("middle")
    snapshot("end")
    verify_sample(target.token_request, target.expectation, count=SAMPLE_TOKENS)
    return SoakReport(snapshots=snapshots, roles=roles, results=results)


def soak_table(report: SoakReport) -> str:
    """RSS of each process at start, middle and end of the soak, and the totals."""
    columns = ("start", "middle", "end")
    pids = sorted({pid for snapshot in report.snapshots.values() for pid in snapshot})
    rows = []

    def mib(name: str, pid: int) -> str:
        info = report.snapshots[name].get(pid)
        return "-" if info is None else f"{info.rss_bytes / MIB:.1f}"

    def growth(first: str, last: str, pid: int) -> str:
        before, after = report.snapshots[first].get(pid), report.snapshots[last].get(pid)
        if before is None or after is None:
            return "-"
        return f"{(after.rss_bytes - before.rss_bytes) / MIB:+.1f}"

    for pid in pids:
        rows.append(
            [
                report.roles.get(pid, "?"),
                str(pid),
                *(mib(name, pid) for name in columns),
                growth("start", "end", pid),
                growth("middle", "end", pid),
            ]
        )
    totals = [sum(i.rss_bytes for i in report.snapshots[name].values()) for name in columns]
    rows.append(
        [
            "total", "", *(f"{total / MIB:.1f}" for total in totals),
            f"{(totals[2] - totals[0]) / MIB:+.1f}", f"{(totals[2] - totals[1]) / MIB:+.1f}",
        ]
    )  # fmt: skip
    header = [
        "process", "pid", "RSS start MiB", "RSS middle MiB", "RSS end MiB",
        "start → end MiB", "middle → end MiB",
    ]  # fmt: skip
    return format_table(header, rows, text_columns=2)


def _grew(before: int, after: int) -> bool:
    return after - before > max(GROWTH_TOLERANCE_BYTES, GROWTH_TOLERANCE_FRACTION * before)


def soak_verdict(report: SoakReport) -> str:
    """Whether the tree, or any one process in it, grew from the middle to the end snapshot.

    Start to middle includes caches and V8 heaps filling up; a leak shows as
    growth that goes on in the second half.
    """
    middle_snapshot, end_snapshot = report.snapshots["middle"], report.snapshots["end"]
    middle = sum(info.rss_bytes for info in middle_snapshot.values())
    end = sum(info.rss_bytes for info in end_snapshot.values())
    growing = [
        f"{report.roles.get(pid, '?')} {pid} "
        f"{(end_snapshot[pid].rss_bytes - info.rss_bytes) / MIB:+.1f} MiB"
        for pid, info in middle_snapshot.items()
        if pid in end_snapshot and _grew(info.rss_bytes, end_snapshot[pid].rss_bytes)
    ]
    if _grew(middle, end):
        verdict = "GROWING"
    elif growing:
        verdict = "stable in total, but still growing: " + ", ".join(growing)
    else:
        verdict = "stable"
    requests = sum(result.responses for result in report.results)
    errors = sum(result.errors for result in report.results)
    rate = requests / sum(result.duration_seconds for result in report.results)
    return (
        f"{requests} requests, {errors} errors, {rate:.0f} tokens/s; "
        f"RSS middle → end {(end - middle) / MIB:+.1f} MiB ({(end - middle) / middle:+.1%}): "
        f"{verdict}"
    )
