"""Django's PostgreSQL backend with its connection pool failing fast.

A process's threads share psycopg's pool (settings: ``OPTIONS["pool"]``).
The pool opens connections on threads of its own, and a thread that asks
for one while none can be opened waits the pool's whole timeout: during a
database outage every request that needs the database would hold its
thread that long, where without a pool a refused connection fails at once.
So a failed attempt to open a connection is remembered, and until one
succeeds again a thread asking for a connection waits only a moment (which
still starts the pool's next attempt, so the first request after the
database is back gets one), then fails with the attempt's own error. A
connection the pool returns works (Django's health check option makes the
pool check it first).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import PoolTimeout

# A thread waits for a connection in slices this long, and gives up after
# one in which the last attempt to open a connection failed (the pool's
# next attempt has had that long).
FAILING_WAIT_S = 0.25


class _Attempts:
    """The error of the last attempt to open a connection (made on the
    pool's threads), until one succeeds."""

    failed: psycopg.OperationalError | None = None


class _Connection(psycopg.Connection[Any]):
    """A connection whose opening tells ``_Attempts``."""

    @classmethod
    def connect(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            made = super().connect(*args, **kwargs)
        except psycopg.OperationalError as error:
            _Attempts.failed = error
            raise
        _Attempts.failed = None
        return made


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        options = self.settings_dict["OPTIONS"].get("pool")
        if options and options is not True and "connection_class" not in options:
            options["connection_class"] = _Connection
        return super().pool

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        pool.open()
        # In slices: an attempt that fails meanwhile ends the wait too.
        deadline = time.monotonic() + pool.timeout
        while True:
            try:
                return pool.getconn(timeout=FAILING_WAIT_S)
            except PoolTimeout:
                failed = _Attempts.failed
                if failed is not None:
                    raise psycopg.OperationalError(str(failed)) from None
                if time.monotonic() >= deadline:
                    raise PoolTimeout(
                        f"couldn't get a connection after {pool.timeout} sec"
                    ) from None
