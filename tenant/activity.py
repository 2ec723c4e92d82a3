"""Counting token requests and hook runs for the landing page's charts.

A token request adds one to a counter in this process's memory: a dict
update under a lock, no database work and no wake-up of any thread. A
thread per process adds the counters to ``TokenActivity`` and
``HookActivity`` every ``TESSERA_ACTIVITY_FLUSH_SECONDS`` (10 by default),
one upsert per (tenant, minute, client, outcome) that adds to the stored
count, so every worker process of every server adds up. A process that
stops (atexit, or multiprocessing's exit for granian's workers) writes what
it holds; one killed outright loses at most its last interval's counts.
While the database is away the counts are kept, up to ``MAX_PENDING_KEYS``
keys, and written when it answers. Rows older than
``TESSERA_ACTIVITY_RETENTION_DAYS`` are pruned by the same thread.

With ``TESSERA_ACTIVITY_FLUSH_SECONDS = 0`` no thread runs and the counts are
written by ``flush()`` alone (the tests do this).
"""

import atexit
import bisect
import logging
import multiprocessing.util
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    IntegrityError,
    close_old_connections,
    connections,
    router,
    transaction,
)
from django.utils import timezone

from tenant import metrics
from tenant.models import HookActivity, Tenant, TokenActivity

logger = logging.getLogger(__name__)

# Upper bounds of the duration buckets, in milliseconds; one more bucket
# holds everything longer (a flow runs at most 20 s, the longest timeout).
DURATION_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
# Counter keys held while the database is away (each a few hundred bytes).
MAX_PENDING_KEYS = 200_000
PRUNE_EVERY_SECONDS = 3600.0

TokenKey = tuple[int, int, str, str]  # tenant id, minute (epoch s), client id, outcome
HookKey = tuple[int, int, bool, int]  # tenant id, minute (epoch s), failed, bucket


class _Tally:
    """This process's counts since the last flush."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[TokenKey, int] = {}
        self.hooks: dict[HookKey, int] = {}
        self.flusher: threading.Thread | None = None
        self.stopping = threading.Event()
        self.pruned_at = 0.0

    def take(self) -> tuple[dict[TokenKey, int], dict[HookKey, int]]:
        with self.lock:
            tokens, hooks = self.tokens, self.hooks
            self.tokens, self.hooks = {}, {}
        return tokens, hooks

    def give_back(self, tokens: dict[TokenKey, int], hooks: dict[HookKey, int]) -> None:
        """Counts that could not be written, kept for the next flush within
        ``MAX_PENDING_KEYS`` (the rest are dropped and counted)."""
        dropped = 0
        with self.lock:
            for token_key, count in tokens.items():
                if token_key in self.tokens or len(self.tokens) < MAX_PENDING_KEYS:
                    self.tokens[token_key] = self.tokens.get(token_key, 0) + count
                else:
                    dropped += count
            for hook_key, count in hooks.items():
                if hook_key in self.hooks or len(self.hooks) < MAX_PENDING_KEYS:
                    self.hooks[hook_key] = self.hooks.get(hook_key, 0) + count
                else:
                    dropped += count
        if dropped:
            metrics.ACTIVITY_DROPPED.inc(dropped)


_tally = _Tally()
_start_lock = threading.Lock()


def _forget_after_fork() -> None:
    global _tally, _start_lock
    _tally = _Tally()  # the parent's counts are the parent's to write
    _start_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _ensure_flusher(tally: _Tally) -> None:
    if tally.flusher is not None or settings.TESSERA_ACTIVITY_FLUSH_SECONDS <= 0:
        return
    with _start_lock:
        if tally.flusher is None:
            tally.flusher = threading.Thread(
                target=_flush_loop, args=(tally,), name="activity-flush", daemon=True
            )
            tally.flusher.start()
            # granian's workers are multiprocessing processes, which leave
            # through os._exit without atexit handlers, but run these.
            multiprocessing.util.Finalize(None, shutdown, exitpriority=10)


def count_token(*, tenant_id: int, client_id: str, outcome: str) -> None:
    """One token request of ``tenant_id`` answered with ``outcome`` ("ok" or
    the OAuth error code); ``client_id`` empty when no client of the tenant
    was identified."""
    tally = _tally
    key = (tenant_id, int(time.time()) // 60 * 60, client_id, outcome)
    with tally.lock:
        tally.tokens[key] = tally.tokens.get(key, 0) + 1
    if tally.flusher is None:
        _ensure_flusher(tally)


def count_hook_run(*, tenant_id: int, duration_ms: float, failed: bool) -> None:
    """One run of a tenant's credentials-exchange flow on the token path."""
    tally = _tally
    bucket = bisect.bisect_left(DURATION_BUCKETS_MS, duration_ms)
    key = (tenant_id, int(time.time()) // 60 * 60, failed, bucket)
    with tally.lock:
        tally.hooks[key] = tally.hooks.get(key, 0) + 1
    if tally.flusher is None:
        _ensure_flusher(tally)


def _upsert(
    model: type[TokenActivity] | type[HookActivity], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Add ``rows`` (key columns, then count) to ``model``'s counts."""
    connection = connections[router.db_for_write(model)]
    ops = connection.ops
    keys = (
        ["tenant_id", "minute", "client_id", "outcome"]
        if model is TokenActivity
        else ["tenant_id", "minute", "failed", "bucket"]
    )
    table = ops.quote_name(model._meta.db_table)
    count = ops.quote_name("count")
    columns = ", ".join(ops.quote_name(column) for column in [*keys, "count"])
    conflict = ", ".join(ops.quote_name(column) for column in keys)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * (len(keys) + 1))}) "  # noqa: S608
        f"ON CONFLICT ({conflict}) DO UPDATE SET {count} = {table}.{count} + EXCLUDED.{count}"
    )
    adapted = [(row[0], ops.adapt_datetimefield_value(row[1]), *row[2:]) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, adapted)


def _minute(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _write(tokens: dict[TokenKey, int], hooks: dict[HookKey, int]) -> None:
    """Add the counts to the database: all of them or, if it fails, none.
    A row of a tenant deleted meanwhile is dropped (it has nowhere to go)."""
    token_rows = [(t, _minute(m), c, o, n) for (t, m, c, o), n in tokens.items()]
    hook_rows = [(t, _minute(m), f, b, n) for (t, m, f, b), n in hooks.items()]
    try:
        with transaction.atomic(using=router.db_for_write(TokenActivity)):
            if token_rows:
                _upsert(TokenActivity, token_rows)
            if hook_rows:
                _upsert(HookActivity, hook_rows)
    except IntegrityError:
        alive = set(
            Tenant.objects.filter(pk__in={row[0] for row in token_rows + hook_rows}).values_list(
                "pk", flat=True
            )
        )
        token_rows = [row for row in token_rows if row[0] in alive]
        hook_rows = [row for row in hook_rows if row[0] in alive]
        with transaction.atomic(using=router.db_for_write(TokenActivity)):
            if token_rows:
                _upsert(TokenActivity, token_rows)
            if hook_rows:
                _upsert(HookActivity, hook_rows)


def flush() -> None:
    """Write this process's counts now; on a database error keep them for
    the next flush and raise."""
    tally = _tally
    tokens, hooks = tally.take()
    if not tokens and not hooks:
        return
    try:
        _write(tokens, hooks)
    except DatabaseError:
        tally.give_back(tokens, hooks)
        raise


def prune(*, now: datetime | None = None) -> int:
    """Delete counts older than ``TESSERA_ACTIVITY_RETENTION_DAYS``; returns how many rows."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TESSERA_ACTIVITY_RETENTION_DAYS)
    tokens, _ = TokenActivity.objects.filter(minute__lt=cutoff).delete()
    hooks, _ = HookActivity.objects.filter(minute__lt=cutoff).delete()
    return tokens + hooks


def _flush_loop(tally: _Tally) -> None:
    while not tally.stopping.wait(settings.TESSERA_ACTIVITY_FLUSH_SECONDS):
        try:
            flush()
            if time.monotonic() - tally.pruned_at >= PRUNE_EVERY_SECONDS:
                tally.pruned_at = time.monotonic()
                prune()
        except DatabaseError as error:
            connections.close_all()
            metrics.DEPENDENCY_ERRORS.labels(dependency="database").inc()
            logger.warning("Could not write activity counts (%s); kept for the next try", error)
        close_old_connections()  # a pooled connection goes back until the next flush
    connections.close_all()


def forget() -> None:
    """Drop this process's unwritten counts (each test starts from none)."""
    _tally.take()


@atexit.register
def shutdown() -> None:
    """Stop the thread and write what this process still holds."""
    tally = _tally
    tally.stopping.set()
    if tally.flusher is not None and tally.flusher is not threading.current_thread():
        tally.flusher.join(5.0)
    try:
        flush()
    except DatabaseError:
        logger.error("Stopping with the database away: activity counts of this process lost")
