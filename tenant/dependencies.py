"""Answering, not crashing, when PostgreSQL or Redis is down or frozen.

- Redis: ``ResilientRedisCache`` wraps django-redis with a circuit breaker.
  A failed call opens the circuit for a couple of seconds, during which calls
  go straight to the fallback: a per-process cache (rate limits) or a miss
  (copies of shared data, which are then read from the database).
- Database: a request that needs the database while it does not answer gets
  a 503 with ``Retry-After``, JSON on API paths and a short page in the
  dashboard, never Django's HTML 500.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_redis.cache import RedisCache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from tenant import metrics

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# How long Redis is left alone after a failure before it is tried again.
CIRCUIT_OPEN_SECONDS = 2.0
REDIS_ERRORS = (ConnectionInterrupted, RedisError, OSError)
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


class ResilientRedisCache(BaseCache):
    """django-redis that degrades instead of raising.

    ``OPTIONS["FALLBACK"]`` is ``"local"`` (a per-process cache stands in:
    rate limits keep working, per process) or ``"miss"`` (reads miss, writes
    are dropped: for shared copies of database data). Other OPTIONS go to
    django-redis.
    """

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = dict(params.get("OPTIONS") or {})
        self.fallback_mode = options.pop("FALLBACK", "miss")
        super().__init__(params)
        self.redis = RedisCache(server, {**params, "OPTIONS": options})
        self.local = LocMemCache("tessera-redis-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
        self.open_until = 0.0
        self.lock = threading.Lock()

    def _call(self, name: str, miss: Any, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= self.open_until:
            try:
                return getattr(self.redis, name)(*args, **kwargs)
            except REDIS_ERRORS as error:
                self._open(error)
        if self.fallback_mode == "local":
            if name in ("get", "get_many", "add", "incr"):
                metrics.RATE_LIMIT_FALLBACKS.inc()
            return getattr(self.local, name)(*args, **kwargs)
        if callable(miss):
            return miss(*args, **kwargs)
        return miss

    def _open(self, error: Exception) -> None:
        metrics.DEPENDENCY_ERRORS.labels(dependency="redis").inc()
        with self.lock:
            was_closed = time.monotonic() >= self.open_until
            self.open_until = time.monotonic() + CIRCUIT_OPEN_SECONDS
        if was_closed:
            logger.warning(
                "Redis unavailable (%s): %s for %.0f s",
                error.__class__.__name__,
                "rate limits are per process"
                if self.fallback_mode == "local"
                else "shared copies are read from the database",
                CIRCUIT_OPEN_SECONDS,
            )

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._call("get", default, key, default, version)

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self._call("set", None, key, value, timeout, version)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return bool(self._call("add", False, key, value, timeout, version))

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return bool(self._call("touch", False, key, timeout, version))

    def delete(self, key: Any, version: int | None = None) -> bool:
        return bool(self._call("delete", False, key, version))

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return bool(self._call("has_key", False, key, version))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        def missing(*args: Any) -> int:
            raise ValueError(f"Key '{key}' not found")

        return int(self._call("incr", missing, key, delta, version))

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return dict(self._call("get_many", {}, list(keys), version))

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        return list(self._call("set_many", [], data, timeout, version) or [])

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        self._call("delete_many", None, list(keys), version)

    def clear(self) -> None:
        self.local.clear()
        self._call("clear", None)

    def close(self, **kwargs: Any) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            self.redis.close(**kwargs)


def is_dashboard(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/") or request.path == "/admin"


def unavailable_response(request: HttpRequest, *, dependency: str) -> HttpResponse:
    """503 with ``Retry-After``: JSON on API paths, a short page in the dashboard."""
    retry = str(RETRY_AFTER_SECONDS)
    if is_dashboard(request):
        page = (
            "<!doctype html><title>Tessera is unavailable</title>"
            "<h1>Temporarily unavailable</h1>"
            f"<p>The {dependency} cannot be reached. Nothing was changed; "
            f"try again in {retry} seconds.</p>"
        )
        response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
    else:
        body = {
            "error": "temporarily_unavailable",
            "error_description": f"The service is temporarily unavailable ({dependency}).",
        }
        response = JsonResponse(body, status=503)
    response["Retry-After"] = retry
    response["Cache-Control"] = "no-store"
    return response


class DependencyErrorsMiddleware:
    """A view that fails because the database does not answer gets a 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        metrics.DEPENDENCY_ERRORS.labels(dependency="database").inc()
        logger.warning("Database unavailable: %s", exception.__class__.__name__)
        return unavailable_response(request, dependency="database")
