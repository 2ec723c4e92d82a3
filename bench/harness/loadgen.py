"""Drive a server with bench/loadgen.mjs (autocannon) while sampling its memory."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from types import TracebackType

from harness.node import BENCH_DIR, node_executable
from harness.processes import ProcessError, Server, run_command
from harness.targets import Target

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


class PeakRssSampler:
    """Samples a server's tree RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, server: Server, interval: float = 0.1) -> None:
        self._server = server
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_bytes = 0

    def _sample(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self._server.rss_bytes())

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


def run_load(target: Target, *, connections: int, requests: int, max_seconds: float) -> LoadResult:
    """Send ``requests`` token requests over ``connections`` keep-alive connections.

    The run stops after ``max_seconds`` even if unfinished (result flagged
    ``truncated``); the node process itself is killed a minute after that.
    """
    request = target.token_request
    options = {
        "url": request.url,
        "headers": {"content-type": request.content_type},
        "body": request.body.decode(),
        "connections": connections,
        "amount": requests,
        "timeoutSeconds": REQUEST_TIMEOUT_SECONDS,
        "maxSeconds": max_seconds,
    }
    with PeakRssSampler(target.server) as sampler:
        stdout = run_command(
            [node_executable(), str(BENCH_DIR / "loadgen.mjs"), json.dumps(options)],
            env=os.environ,
            cwd=BENCH_DIR,
            timeout=max_seconds + 60,
        )
    target.server.check_alive()
    try:
        summary = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProcessError(f"loadgen printed no summary: {stdout[-1000:]!r}") from None
    latency = summary["latencyMs"]
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
    )
