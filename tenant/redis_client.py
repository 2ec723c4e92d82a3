"""The raw Redis client for configuration notifications (pub/sub), with the
same short timeouts as the caches: a frozen Redis costs a fraction of a
second, never a request's worth of waiting."""

import functools
import os

import redis
from django.conf import settings


def redis_client() -> redis.Redis | None:
    """This process's client for ``REDIS_URL``, or None without Redis."""
    if not settings.REDIS_URL:
        return None
    return _client(settings.REDIS_URL, os.getpid())


@functools.cache
def _client(url: str, pid: int) -> redis.Redis:
    # Keyed by pid: a forked worker opens its own connections.
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=settings.TESSERA_REDIS_TIMEOUT,
        socket_timeout=settings.TESSERA_REDIS_TIMEOUT,
        health_check_interval=30,
    )
