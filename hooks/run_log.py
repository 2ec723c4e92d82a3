"""Recording hook runs without holding up the token response.

Token requests hand their run record to a per-process writer thread that
inserts in batches, in order, holding them through a database outage (up to
``TESSERA_HOOK_RUN_LOG_BUFFER`` records); the dashboard's test runs and the tests write at once
(``TESSERA_HOOK_RUN_LOG_ASYNC = False``). Runs older than the retention are
pruned by the writer now and then, and by ``manage.py hooks prune-runs``.
The writer also keeps the token requests' recorded inputs
(``hooks.recorded_inputs``), pruned with the runs.
"""

import atexit
import logging
import os
import threading
import time
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    close_old_connections,
    connections,
    router,
    transaction,
)
from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone

from hooks.models import HookRun
from hooks.recorded_inputs import InputRecord, prune_inputs, unremember, write_inputs
from tenant import metrics

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_LINGER_SECONDS = 0.2
PRUNE_EVERY_BATCHES = 500
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 5.0
DROP_LOG_EVERY_SECONDS = 10.0


class RunRecord(NamedTuple):
    tenant_id: int
    hook_id: int | None
    hook_version: int | None
    source: str
    started_at: datetime
    duration_ms: float
    outcome: str
    console: str
    error: str
    # A flow of Actions: its execution id and one result per Action run.
    execution_id: str = ""
    results: list[dict[str, Any]] | None = None


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
    "execution_id",
    "results",
)


def _text(value: str) -> str:
    """Text the database can store: PostgreSQL text holds no NUL, and no
    database takes a lone UTF-16 surrogate (a hook may print either)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _texts(value: Any) -> Any:
    """``value`` with every string in it made storable (see ``_text``)."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(str(key)): _texts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_texts(item) for item in value]
    return value


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
        record.execution_id,
        None if record.results is None else ops.adapt_json_value(_texts(record.results), None),
    )


def _write(records: list[RunRecord]) -> None:
    """Write the records in one statement, without a model instance each
    (``bulk_create`` took about 50 µs of the web worker's CPU per record):
    a batch is a COPY on PostgreSQL, elsewhere an INSERT run per record in
    one transaction; a single record is one INSERT."""
    connection = connections[router.db_for_write(HookRun)]
    ops = connection.ops
    table = ops.quote_name(HookRun._meta.db_table)
    columns = ", ".join(ops.quote_name(column) for column in _COLUMNS)
    rows = [_row(record, ops) for record in records]
    slots = ", ".join(["%s"] * len(_COLUMNS))
    insert = f"INSERT INTO {table} ({columns}) VALUES ({slots})"  # noqa: S608
    with connection.cursor() as cursor:
        if len(rows) == 1:
            cursor.execute(insert, rows[0])
        elif connection.vendor == "postgresql":
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            with transaction.atomic(using=connection.alias):  # all of the batch or none
                cursor.executemany(insert, rows)


def _count(records: list[RunRecord]) -> None:
    """The runs' metrics, counted off the request path."""
    for outcome, runs in Counter(record.outcome for record in records).items():
        metrics.HOOK_RUNS.labels(outcome=outcome).inc(runs)
    for record in records:
        metrics.HOOK_DURATION.observe(record.duration_ms / 1000)


def prune_runs(*, now: datetime | None = None) -> int:
    """Delete runs older than ``TESSERA_HOOK_RUN_RETENTION_DAYS``, and the
    recorded inputs last seen before then; returns how many runs."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TESSERA_HOOK_RUN_RETENTION_DAYS)
    deleted, _ = HookRun.objects.filter(started_at__lt=cutoff).delete()
    prune_inputs(cutoff=cutoff)
    return deleted


class _Writer:
    """A bounded buffer of records and the thread that writes them in order.

    A token request only appends to the buffer: no lock, no wake-up (a
    wake-up per record is a GIL hand-off per token). The thread gathers for
    ``BATCH_LINGER_SECONDS``, then writes what is there in batches. When the
    database does not answer, the batch in hand is kept and retried (with a
    growing pause, at most ``RETRY_MAX_SECONDS``) before anything newer is
    written; the buffer holds ``TESSERA_HOOK_RUN_LOG_BUFFER`` records, and
    records beyond it are dropped, counted (``tessera_hook_run_log_dropped``)
    and logged.
    """

    def __init__(self) -> None:
        self.buffer: deque[RunRecord] = deque()
        self.inputs: deque[InputRecord] = deque()
        self.limit = settings.TESSERA_HOOK_RUN_LOG_BUFFER
        self.stopping = threading.Event()
        self.batches = 0
        self.dropped = 0
        self.dropped_logged_at = 0.0
        self.thread = threading.Thread(target=self._loop, name="hook-run-log", daemon=True)
        self.thread.start()

    def put(self, record: RunRecord) -> None:
        if len(self.buffer) >= self.limit:  # the database is far behind: shed logs, never tokens
            _count([record])
            self._dropped(f"buffer full ({self.limit} records)")
        else:
            self.buffer.append(record)

    def put_input(self, record: InputRecord) -> None:
        if len(self.inputs) < self.limit:  # else recorded by a later request
            self.inputs.append(record)
        else:
            unremember([record])

    def _write_inputs(self) -> None:
        """Write the recorded inputs waiting; on a database error they are
        forgotten, and the next request of each records it again."""
        records: list[InputRecord] = []
        while self.inputs:
            records.append(self.inputs.popleft())
        if not records:
            return
        try:
            close_old_connections()
            write_inputs(records)
        except DatabaseError:
            unremember(records)
            logger.warning("Could not keep %d recorded hook inputs", len(records), exc_info=True)

    def _dropped(self, reason: str) -> None:
        self.dropped += 1
        metrics.RUN_LOG_DROPPED.inc()
        now = time.monotonic()
        if now - self.dropped_logged_at >= DROP_LOG_EVERY_SECONDS:
            self.dropped_logged_at = now
            logger.error("Hook run log: %s; %d run records dropped so far", reason, self.dropped)

    def _take(self) -> list[RunRecord]:
        """Up to a batch of the oldest buffered records."""
        records: list[RunRecord] = []
        buffer = self.buffer
        while buffer and len(records) < BATCH_SIZE:
            records.append(buffer.popleft())
        return records

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
                # What piled up behind the batch in hand, while the outage lasts.
                metrics.RUN_LOG_BUFFERED.set(len(self.buffer) + len(records))
                logger.warning(
                    "Could not record %d hook runs (%s); %d more waiting, retrying in %.1f s",
                    len(records),
                    error.__class__.__name__,
                    len(self.buffer),
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
        stopping = False
        while not stopping:
            if len(self.buffer) < BATCH_SIZE:
                # Gather for a moment: a write per record would cost each
                # token request a database round trip on this thread.
                self.stopping.wait(BATCH_LINGER_SECONDS)
            stopping = self.stopping.is_set()
            # When stopping, write everything; otherwise a full batch at most
            # and gather again, unless a full batch is already waiting.
            while records := self._take():
                _count(records)
                metrics.RUN_LOG_BUFFERED.set(len(self.buffer) + len(records))
                if not self._write_until_done(records, stopping):
                    lost = len(records) + len(self.buffer)
                    logger.error("Stopping with the database away: %d run records lost", lost)
                    break
                self.batches += 1
                if self.batches % PRUNE_EVERY_BATCHES == 0:
                    try:
                        prune_runs()
                    except DatabaseError:
                        logger.warning("Could not prune old hook runs", exc_info=True)
                if not stopping:
                    break
            self._write_inputs()
            metrics.RUN_LOG_BUFFERED.set(len(self.buffer))
            close_old_connections()  # a pooled connection goes back while it gathers
        connections.close_all()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.thread.join(timeout)


_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _forget_writer_after_fork() -> None:
    global _writer, _writer_lock
    _writer = None  # its thread did not survive the fork
    _writer_lock = threading.Lock()  # a fork may have copied it held


os.register_at_fork(after_in_child=_forget_writer_after_fork)


def _get_writer() -> _Writer:
    global _writer
    writer = _writer
    if writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = _Writer()
            writer = _writer
    return writer


def record_run(record: RunRecord, *, now: bool = False) -> None:
    """Record a run: in the background unless ``now`` or async logging is off."""
    if now or not settings.TESSERA_HOOK_RUN_LOG_ASYNC:
        _count([record])
        _write([record])
    else:
        _get_writer().put(record)


def record_input(record: InputRecord) -> None:
    """Keep a token request's recorded input: with the run records, in the
    background, unless async logging is off."""
    if not settings.TESSERA_HOOK_RUN_LOG_ASYNC:
        write_inputs([record])
    else:
        _get_writer().put_input(record)


@atexit.register
def shutdown(timeout: float = 5.0) -> None:
    """Write what is queued, then stop the writer and close its connection."""
    global _writer
    with _writer_lock:
        writer, _writer = _writer, None
    if writer is not None:
        writer.stop(timeout)
