"""Prometheus metrics (``/metrics``).

Labels are bounded sets (outcomes, dependency names), never tenants, clients
or paths. Under granian's several worker processes, set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory per server (README,
"Operating a fleet"): every worker writes its samples there and ``/metrics``
adds them up, whichever worker answers the scrape. Without it, each process
reports its own figures.
"""

import json
import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

TOKEN_REQUESTS = Counter(
    "tessera_token_requests",
    "Token requests by outcome (ok, or the OAuth error code).",
    ["outcome"],
)
TOKEN_LATENCY = Histogram(
    "tessera_token_request_seconds",
    "Token request latency inside the server, all tenants together.",
    buckets=LATENCY_BUCKETS,
)
HOOK_RUNS = Counter("tessera_hook_runs", "Hook runs by outcome.", ["outcome"])
HOOK_DURATION = Histogram("tessera_hook_run_seconds", "Hook run duration.", buckets=LATENCY_BUCKETS)
CONFIG_AGE = Gauge(
    "tessera_config_age_seconds",
    "Seconds since the configuration generation was last read from the database.",
    multiprocess_mode="max",
)
CONFIG_INVALIDATIONS = Counter(
    "tessera_config_invalidations",
    "Configuration changes noticed (the memo of a process was dropped).",
)
DEPENDENCY_ERRORS = Counter(
    "tessera_dependency_errors",
    "Failed calls to a dependency.",
    ["dependency"],
)
RATE_LIMIT_FALLBACKS = Counter(
    "tessera_rate_limit_local_fallbacks",
    "Rate-limit checks made per process because Redis was unavailable.",
)
RUN_LOG_BUFFERED = Gauge(
    "tessera_hook_run_log_buffered",
    "Hook-run records waiting to be written.",
    multiprocess_mode="livesum",
)
RUN_LOG_DROPPED = Counter(
    "tessera_hook_run_log_dropped",
    "Hook-run records dropped because the buffer was full.",
)
ACTIVITY_DROPPED = Counter(
    "tessera_activity_counts_dropped",
    "Token requests and hook runs left out of the dashboard's activity counts "
    "because the database was away too long.",
)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# The error codes a token response can carry; anything else is counted by class.
TOKEN_OUTCOMES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
        "too_many_requests",
    }
)


def token_outcome(response: HttpResponse) -> str:
    """``ok``, a known OAuth error code, or the status class (bounded labels)."""
    if response.status_code == 200:
        return "ok"
    error = None
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        error = data.get("error")
    elif response.get("Content-Type", "").startswith("application/json"):
        try:
            error = json.loads(response.content).get("error")
        except (ValueError, AttributeError):
            error = None
    if isinstance(error, str) and error in TOKEN_OUTCOMES:
        return error
    return f"http_{response.status_code // 100}xx"


class TokenMetricsMiddleware:
    """Counts token requests by outcome and times them, whatever answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.endswith("/oauth/token"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        TOKEN_LATENCY.observe(time.perf_counter() - started)
        TOKEN_REQUESTS.labels(outcome=token_outcome(response)).inc()
        return response
