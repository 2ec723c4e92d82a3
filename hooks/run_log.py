"""Recording hook runs without holding up the token response.

Token requests hand their run record to a per-process writer thread that
inserts in batches, in order, holding them through a database outage (up to
``TESSERA_HOOK_RUN_LOG_BUFFER`` records); the dashboard's test runs and the tests write at once
(``TESSERA_HOOK_RUN_LOG_ASYNC = False``). Runs older than the retention are
pruned by the writer now and then, and by ``manage.py hooks prune-runs``.
"""

import atexit
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    close_old_connections,
    connections,
    router,
)
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone

from hooks.models import HookRun
from tenant import metrics

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_LINGER_SECONDS = 0.2
PRUNE_EVERY_BATCHES = 500
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
DROP_LOG_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class RunRecord:
    tenant_id: int
    hook_id: int | None
    hook_version: int | None
    source: str
    started_at: datetime
    duration_ms: float
    outcome: str
    console: str
    error: str


# HookRun's columns, in the order _row gives them.
_COLUMNS = (
    "tenant_id",
    "hook_id",
    "hook_version",
    "source",
    "started_at",
    "duration_ms",
    "outcome",
    "console",
    "error",
)


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, which a hook may print."""
    return value.replace("\x00", "\ufffd")


def _row(record: RunRecord, ops: BaseDatabaseOperations) -> tuple[Any, ...]:
    return (
        record.tenant_id,
        record.hook_id,
        record.hook_version,
        record.source,
        ops.adapt_datetimefield_value(record.started_at),
        record.duration_ms,
        record.outcome,
        _text(record.console),
        _text(record.error),
    )


def _write(records: list[RunRecord]) -> None:
    """One INSERT of every record, without a model instance each:
    ``bulk_create`` took about 50 µs of the web worker's CPU per record on
    PostgreSQL, and held the GIL for about 10 ms per batch."""
    connection = connections[router.db_for_write(HookRun)]
    ops = connection.ops
    table = ops.quote_name(HookRun._meta.db_table)
    columns = ", ".join(ops.quote_name(column) for column in _COLUMNS)
    row = f"({', '.join(['%s'] * len(_COLUMNS))})"
    sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(records))}"  # noqa: S608
    params: list[Any] = [value for record in records for value in _row(record, ops)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def prune_runs(*, now: datetime | None = None) -> int:
    """Delete runs older than ``TESSERA_HOOK_RUN_RETENTION_DAYS``; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TESSERA_HOOK_RUN_RETENTION_DAYS)
    deleted, _ = HookRun.objects.filter(started_at__lt=cutoff).delete()
    return deleted


class _Writer:
    """A bounded buffer of records and the thread that writes them in order.

    When the database does not answer, the batch in hand is kept and retried
    (with a growing pause, at most ``RETRY_MAX_SECONDS``) before anything
    newer is written; the buffer holds ``TESSERA_HOOK_RUN_LOG_BUFFER`` records,
    and records beyond it are dropped, counted (``tessera_hook_run_log_dropped``)
    and logged.
    """

    def __init__(self) -> None:
        # None is the sentinel that stops the thread.
        self.queue: queue.Queue[RunRecord | None] = queue.Queue(
            maxsize=settings.TESSERA_HOOK_RUN_LOG_BUFFER
        )
        self.pid = os.getpid()
        self.batches = 0
        self.dropped = 0
        self.dropped_logged_at = 0.0
        self.thread = threading.Thread(target=self._loop, name="hook-run-log", daemon=True)
        self.thread.start()

    def put(self, record: RunRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:  # the database is far behind: shed logs, never tokens
            self._dropped(f"buffer full ({self.queue.maxsize} records)")

    def _dropped(self, reason: str) -> None:
        self.dropped += 1
        metrics.RUN_LOG_DROPPED.inc()
        now = time.monotonic()
        if now - self.dropped_logged_at >= DROP_LOG_EVERY_SECONDS:
            self.dropped_logged_at = now
            logger.error("Hook run log: %s; %d run records dropped so far", reason, self.dropped)

    def _drain(self, batch: list[RunRecord | None]) -> None:
        """Take what is queued, up to a full batch or the stop sentinel."""
        while len(batch) < BATCH_SIZE and batch[-1] is not None:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                return

    def _write_until_done(self, records: list[RunRecord], stopping: bool) -> bool:
        """Write ``records``, retrying while the database is away; False if
        stopping made it give up."""
        pause = RETRY_FIRST_SECONDS
        while records:
            try:
                close_old_connections()
                _write(records)
                return True
            except (DataError, IntegrityError):
                # Not an outage: some record can never be stored (its hook was
                # deleted meanwhile). Retrying the batch would stall the log.
                records = self._write_each(records)
                continue
            except DatabaseError as error:
                connections.close_all()
                metrics.DEPENDENCY_ERRORS.labels(dependency="database").inc()
                logger.warning(
                    "Could not record %d hook runs (%s); %d more waiting, retrying in %.1f s",
                    len(records),
                    error.__class__.__name__,
                    self.queue.qsize(),
                    pause,
                )
            if stopping:
                return False
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_SECONDS)
        return True

    def _write_each(self, records: list[RunRecord]) -> list[RunRecord]:
        """Write records one at a time, dropping those the database refuses;
        returns the ones left unwritten if the database goes away meanwhile."""
        for index, record in enumerate(records):
            try:
                _write([record])
            except (DataError, IntegrityError) as error:
                self._dropped(f"a run record was refused ({error.__class__.__name__})")
            except DatabaseError:
                return records[index:]
        return []

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            self._drain(batch)
            if len(batch) < BATCH_SIZE and batch[-1] is not None:
                # Gather for a moment: one INSERT per record would cost each
                # token request an ORM round trip on this thread. Sleeping
                # rather than waiting on the queue, so that a put() wakes
                # nobody: a wake-up per record is a GIL hand-off per token.
                time.sleep(BATCH_LINGER_SECONDS)
                self._drain(batch)
            stopping = batch[-1] is None
            records = [record for record in batch if record is not None]
            metrics.RUN_LOG_BUFFERED.set(self.queue.qsize() + len(records))
            if records and not self._write_until_done(records, stopping):
                logger.error("Stopping with the database away: %d run records lost", len(records))
            self.batches += 1
            if self.batches % PRUNE_EVERY_BATCHES == 0:
                try:
                    prune_runs()
                except DatabaseError:
                    logger.warning("Could not prune old hook runs", exc_info=True)
            metrics.RUN_LOG_BUFFERED.set(self.queue.qsize())
            if stopping:
                connections.close_all()
                return

    def stop(self, timeout: float) -> None:
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return  # the writer is stuck; it is a daemon and dies with the process
        self.thread.join(timeout)


_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _new_lock_after_fork() -> None:
    global _writer_lock
    _writer_lock = threading.Lock()  # a fork may have copied it held


os.register_at_fork(after_in_child=_new_lock_after_fork)


def _get_writer() -> _Writer:
    global _writer
    with _writer_lock:
        if _writer is None or _writer.pid != os.getpid():  # new after a fork
            _writer = _Writer()
        return _writer


def record_run(record: RunRecord, *, now: bool = False) -> None:
    """Record a run: in the background unless ``now`` or async logging is off."""
    metrics.HOOK_RUNS.labels(outcome=record.outcome).inc()
    metrics.HOOK_DURATION.observe(record.duration_ms / 1000)
    if now or not settings.TESSERA_HOOK_RUN_LOG_ASYNC:
        _write([record])
    else:
        _get_writer().put(record)


@atexit.register
def shutdown(timeout: float = 5.0) -> None:
    """Write what is queued, then stop the writer and close its connection."""
    global _writer
    with _writer_lock:
        writer, _writer = _writer, None
    if writer is not None and writer.pid == os.getpid():
        writer.stop(timeout)
