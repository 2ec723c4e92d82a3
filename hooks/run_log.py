"""Recording hook runs without holding up the token response.

Token requests hand their run record to a per-process writer thread that
inserts in batches; the dashboard's test runs and the tests write at once
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

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from hooks.models import HookRun

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_LINGER_SECONDS = 0.2
PRUNE_EVERY_BATCHES = 500


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


def _write(records: list[RunRecord]) -> None:
    HookRun.objects.bulk_create([HookRun(**record.__dict__) for record in records])


def prune_runs(*, now: datetime | None = None) -> int:
    """Delete runs older than ``TESSERA_HOOK_RUN_RETENTION_DAYS``; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TESSERA_HOOK_RUN_RETENTION_DAYS)
    deleted, _ = HookRun.objects.filter(started_at__lt=cutoff).delete()
    return deleted


class _Writer:
    def __init__(self) -> None:
        # None is the sentinel that stops the thread.
        self.queue: queue.Queue[RunRecord | None] = queue.Queue(maxsize=10_000)
        self.pid = os.getpid()
        self.batches = 0
        self.thread = threading.Thread(target=self._loop, name="hook-run-log", daemon=True)
        self.thread.start()

    def put(self, record: RunRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:  # the database is far behind: shed logs, never tokens
            logger.warning("Hook run log queue full; dropping a run record")

    def _drain(self, batch: list[RunRecord | None]) -> None:
        """Take what is queued, up to a full batch or the stop sentinel."""
        while len(batch) < BATCH_SIZE and batch[-1] is not None:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                return

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
            try:
                close_old_connections()
                if records:
                    _write(records)
                self.batches += 1
                if self.batches % PRUNE_EVERY_BATCHES == 0:
                    prune_runs()
            except Exception:
                logger.exception("Could not record %d hook runs", len(records))
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


def _get_writer() -> _Writer:
    global _writer
    with _writer_lock:
        if _writer is None or _writer.pid != os.getpid():  # new after a fork
            _writer = _Writer()
        return _writer


def record_run(record: RunRecord, *, now: bool = False) -> None:
    """Record a run: in the background unless ``now`` or async logging is off."""
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
