"""``/healthz``, ``/readyz`` and ``/metrics`` for load balancers and Prometheus.

``/healthz`` is open: it says the process answers. ``/readyz`` and
``/metrics`` answer only a client presenting ``TESSERA_METRICS_TOKEN`` as a
Bearer token or, without a token configured, a loopback client.
"""

import hmac
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from tenant import config_cache, metrics
from tenant.redis_client import redis_client
from tenant.selectors import tenants_with_unreadable_keys

LOOPBACK = frozenset({"127.0.0.1", "::1"})

_migrations_applied = False


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name] = value
    return response


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None if the client may read readiness and metrics, else the refusal."""
    if request.method not in ("GET", "HEAD"):
        body = {"error": "method_not_allowed", "error_description": "Use GET."}
        return _json(body, 405, Allow="GET, HEAD")
    token = settings.TESSERA_METRICS_TOKEN
    if token:
        presented = request.headers.get("Authorization", "")
        if hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            return None
        body = {"error": "unauthorized", "error_description": "A valid Bearer token is required."}
        return _json(body, 401, **{"WWW-Authenticate": 'Bearer realm="metrics"'})
    if request.META.get("REMOTE_ADDR") in LOOPBACK:
        return None
    body = {
        "error": "forbidden",
        "error_description": "Set TESSERA_METRICS_TOKEN to read this from elsewhere.",
    }
    return _json(body, 403)


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is alive and answering."""
    if request.method not in ("GET", "HEAD"):
        body = {"error": "method_not_allowed", "error_description": "Use GET."}
        return _json(body, 405, Allow="GET, HEAD")
    return _json({"status": "ok"})


def _database_ready() -> bool:
    """The database answers now (within its timeouts), and is migrated."""
    global _migrations_applied
    try:
        config_cache.check_now()
        if not _migrations_applied:
            executor = MigrationExecutor(connection)
            _migrations_applied = not executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        connection.close()
        return False
    return True


def _redis_status() -> str:
    client = redis_client()
    if client is None:
        return "not configured"
    try:
        client.ping()
    except Exception:  # any failure: Redis is not usable right now
        metrics.DEPENDENCY_ERRORS.labels(dependency="redis").inc()
        return "unavailable"
    return "ok"


def readyz(request: HttpRequest) -> HttpResponse:
    """Ready to serve: the database answers, migrations are applied and the
    configuration is within its staleness bound. ``degraded``: ready, but
    some tenants' signing keys cannot be decrypted (``unreadable_keys``). Redis is reported but does
    not decide: without it tokens are still issued (rate limits per process),
    and failing every server at once would turn a Redis outage into a full one."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    database = _database_ready()
    age = config_cache.config_age()
    checks: dict[str, Any] = {
        "database": "ok" if database else "unavailable",
        "migrations": "ok" if _migrations_applied else ("pending" if database else "unknown"),
        "config_age_seconds": round(age, 3) if age != float("inf") else None,
        "redis": _redis_status(),
    }
    fresh = age <= settings.TESSERA_CONFIG_MAX_STALENESS
    ready = database and _migrations_applied and fresh
    metrics.CONFIG_AGE.set(age if age != float("inf") else -1)
    unreadable = tenants_with_unreadable_keys() if database else []
    checks["unreadable_keys"] = unreadable
    status = "degraded" if unreadable else "ready"
    body = {"status": status if ready else "not_ready", "checks": checks}
    if ready:
        # A tenant whose signing key this server cannot decrypt is still a
        # 200: every server of the fleet shares the database and the KEK
        # (a KEK that reads no key at all stops the server at start), so
        # taking this one out of rotation would not serve that tenant
        # anywhere else, and would refuse every other tenant too. The
        # status and the list say who needs the operator.
        return _json(body)
    return _json(body, 503, **{"Retry-After": "5"})


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    metrics.CONFIG_AGE.set(min(config_cache.config_age(), 1e9))
    payload, content_type = metrics.exposition()
    return HttpResponse(payload, content_type=content_type)
