"""Drive a server with bench/loadgen.mjs (autocannon) while sampling its memory."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from harness.node import BENCH_DIR, node_executable
from harness.processes import ProcessError, Server, run_command
from harness.targets import Target
from harness.tokens import TokenRequest

REQUEST_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class LoadResult:
    """One bounded load run against one server."""

    requested: int
    responses: int
    valid: int
    errors: int
    non2xx: int
    duration_seconds: float
    tokens_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    peak_rss_bytes: int
    truncated: bool
    status_codes: dict[str, int]
    reconnects: int  # responses after which the server closed the connection
    # The first response to each distinct request of a cycled run (see run_load).
    cold_count: int = 0
    cold_p50_ms: float | None = None
    cold_p99_ms: float | None = None
    # Highest sampled RSS of each process of the server's tree (pid -> bytes).
    peak_rss_by_pid: dict[int, int] = field(default_factory=dict)
    # Responses without a token by "error: error_description" (20 kinds at most).
    error_kinds: dict[str, int] = field(default_factory=dict)
    # CPU seconds the server's whole process tree used during the run (from
    # /proc: utime + stime, sampled just before and just after it).
    cpu_seconds: float = 0.0

    @property
    def cpu_ms_per_token(self) -> float | None:
        """The server's CPU milliseconds per completed request."""
        if self.responses <= 0:
            return None
        return self.cpu_seconds * 1000 / self.responses


class PeakRssSampler:
    """Samples a server's tree RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, server: Server, interval: float = 0.1) -> None:
        self._server = server
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_bytes = 0
        self.peak_by_pid: dict[int, int] = {}

    def _sample(self) -> None:
        tree = self._server.tree()
        self.peak_bytes = max(self.peak_bytes, sum(info.rss_bytes for info in tree))
        for info in tree:
            self.peak_by_pid[info.pid] = max(self.peak_by_pid.get(info.pid, 0), info.rss_bytes)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> PeakRssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def run_load(
    target: Target,
    *,
    connections: int,
    requests: int | None,
    max_seconds: float,
    cycle: Sequence[TokenRequest] = (),
    vary: bool = False,
    duration_seconds: float | None = None,
    rate: int | None = None,
    stop_file: Path | None = None,
) -> LoadResult:
    """Send ``requests`` token requests over ``connections`` keep-alive connections.

    ``cycle``: requests (on the target's host) sent round-robin instead of the
    target's own; the first response to each is reported as cold. ``vary``:
    every request gets its own User-Agent and body parameter. With
    ``requests=None`` the run lasts ``duration_seconds``; ``rate`` caps the
    requests per second over all connections; the run also ends once ``stop_file``
    exists (another thread creates it).

    The run stops after ``max_seconds`` even if unfinished (result flagged
    ``truncated``); the node process itself is killed a minute after that.
    """
    request = target.token_request
    options: dict[str, object] = {
        "url": request.url,
        "headers": {"content-type": request.content_type},
        "body": request.body.decode(),
        "connections": connections,
        "timeoutSeconds": REQUEST_TIMEOUT_SECONDS,
        "maxSeconds": max_seconds,
        "vary": vary,
    }
    if requests is not None:
        options["amount"] = requests
    elif duration_seconds is not None:
        options["durationSeconds"] = max(1, round(duration_seconds))
    else:
        raise ValueError("run_load needs requests or duration_seconds")
    if rate is not None:
        options["overallRate"] = rate
    if stop_file is not None:
        options["stopFile"] = str(stop_file)
    if cycle:
        options["requests"] = [_cycled(item, request) for item in cycle]
    with (
        tempfile.TemporaryDirectory(prefix="tessera-bench-loadgen-") as directory,
        PeakRssSampler(target.server) as sampler,
    ):
        # In a file: a thousand tenants' requests exceed one argument's limit.
        options_file = Path(directory) / "options.json"
        options_file.write_text(json.dumps(options))
        cpu_before = target.server.cpu_seconds()
        stdout = run_command(
            [node_executable(), str(BENCH_DIR / "loadgen.mjs"), f"@{options_file}"],
            env=os.environ,
            cwd=BENCH_DIR,
            timeout=max_seconds + 60,
        )
        cpu_seconds = target.server.cpu_seconds() - cpu_before
    target.server.check_alive()
    try:
        summary = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProcessError(f"loadgen printed no summary: {stdout[-1000:]!r}") from None
    latency = summary["latencyMs"]
    cold = summary["coldLatencyMs"]
    return LoadResult(
        requested=summary["requested"],
        responses=summary["responses"],
        valid=summary["valid"],
        # Invalid bodies (incl. every non-2xx), connection errors and timeouts.
        errors=summary["mismatches"] + summary["connectionErrors"] + summary["timeouts"],
        non2xx=summary["non2xx"],
        duration_seconds=summary["durationSeconds"],
        tokens_per_second=summary["tokensPerSecond"],
        p50_ms=latency["p50"],
        p99_ms=latency["p99"],
        peak_rss_bytes=sampler.peak_bytes,
        truncated=summary["truncated"],
        status_codes=summary["statusCodes"],
        reconnects=summary["reconnects"],
        cold_count=cold["count"] if cycle else 0,
        cold_p50_ms=cold["p50"] if cycle else None,
        cold_p99_ms=cold["p99"] if cycle else None,
        peak_rss_by_pid=sampler.peak_by_pid,
        error_kinds=summary["errorKinds"],
        cpu_seconds=cpu_seconds,
    )


def _cycled(item: TokenRequest, base: TokenRequest) -> dict[str, object]:
    """One entry of loadgen's request list: a path on ``base``'s host, and its body."""
    url, base_url = urllib.parse.urlsplit(item.url), urllib.parse.urlsplit(base.url)
    if url.netloc != base_url.netloc:
        raise ValueError(f"cycled requests must share a host: {item.url} vs {base.url}")
    return {
        "path": url.path,
        "headers": {"content-type": item.content_type},
        "body": item.body.decode(),
    }
