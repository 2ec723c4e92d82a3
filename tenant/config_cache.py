"""Per-process memo of tenant configuration, with bounded, monotonic staleness.

Token requests outnumber configuration changes by orders of magnitude, so the
lookups of a token request (tenant, client, API, grant, enabled hook, signing
key) are memoised in each server process, each entry tagged with the
configuration *generation* it was loaded under and served only while the
process still holds that generation.

The generation lives in the database (``tenant.ConfigChange``): a change
inserts a row in its own transaction, so the generation moves exactly when the
change commits. Each server process keeps the generation it last read, and a
background thread (started lazily in each process, so after granian forks its
workers) re-reads it every ``TESSERA_CONFIG_MAX_STALENESS / 2`` seconds and at
once when Redis says something changed. A request compares in-memory values
only: no network round trip when nothing changed. Redis only makes servers
notice sooner; losing it, or restoring it from an old snapshot, cannot make a
server serve a change's old configuration longer than the bound, because the
bound rests on the database alone.

If the database cannot be read, the process keeps serving what it holds for
``TESSERA_CONFIG_OUTAGE_GRACE`` seconds (nobody can commit a change through
that database meanwhile, and ``/readyz`` says not ready); after that,
requests that need configuration fail with ``ConfigUnavailable`` (503).
"""

import contextlib
import contextvars
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, Sum
from django.db.models.signals import m2m_changed, post_delete, post_save

from tenant import metrics
from tenant.redis_client import redis_client

T = TypeVar("T")
logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "tessera:config-changed"
MAX_ENTRIES = 50_000
# Health and metrics answer even when the configuration cannot be vouched for.
UNGATED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Fold old ConfigChange rows once there are this many.
COMPACT_ABOVE_ROWS = 1_000
COMPACT_EVERY_CHECKS = 600

_request_generation: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "tessera_config_generation", default=None
)


class ConfigUnavailable(Exception):
    """The database has not answered for longer than the outage grace: this
    process can no longer vouch for the configuration it holds."""


class _State:
    """What this process knows of the generation. Replaced after a fork."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.generation: int | None = None
        # Monotonic time at which the read that gave ``generation`` started:
        # every change committed before then is in it.
        self.checked_at = -math.inf
        self.applied_start = -math.inf
        # A change was made in this process: re-read before the next request.
        self.dirty = False
        # The watcher's last read failed: the database is away, and the
        # watcher (not every request) finds out when it is back.
        self.watcher_failing = False
        # One request at a time reads inline, and not again at once after a failure.
        self.check_lock = threading.Lock()
        self.next_inline_check = -math.inf
        self.watcher: threading.Thread | None = None
        self.wake = threading.Event()
        self.entries: dict[Hashable, tuple[int, Any]] = {}
        self.last_error_logged = -math.inf


_state = _State()


def _reset_after_fork() -> None:
    global _state
    _state = _State()


os.register_at_fork(after_in_child=_reset_after_fork)


def read_generation() -> int:
    """The committed configuration generation, from the database."""
    from tenant.models import ConfigChange

    total = ConfigChange.objects.aggregate(total=Sum("weight"))["total"]
    return int(total or 0)


def _apply(generation: int, started: float) -> None:
    state = _state
    with state.lock:
        if started <= state.applied_start:
            return  # a read that started later was applied already
        state.applied_start = started
        if state.generation is not None and generation != state.generation:
            metrics.CONFIG_INVALIDATIONS.inc()
        state.generation = generation
        state.checked_at = started


def check_now() -> int:
    """Read the generation from the database and adopt it. Raises
    ``DatabaseError`` when the database does not answer."""
    started = time.monotonic()
    try:
        generation = read_generation()
    except DatabaseError:
        metrics.DEPENDENCY_ERRORS.labels(dependency="database").inc()
        raise
    _apply(generation, started)
    return generation


def config_age() -> float:
    """Seconds since the start of the last successful generation read."""
    return time.monotonic() - _state.checked_at


def _log_error(message: str, error: Exception) -> None:
    state = _state
    now = time.monotonic()
    if now - state.last_error_logged >= 10:
        state.last_error_logged = now
        logger.warning("%s: %s", message, error.__class__.__name__)


def compact() -> int:
    """Fold committed change rows into the oldest one (the sum, so the
    generation, is unchanged); returns how many rows were folded."""
    from tenant.models import ConfigChange

    with transaction.atomic():
        rows = ConfigChange.objects.order_by("pk").values_list("pk", flat=True)
        base = rows.first()
        last = rows.last()
        if base is None or last is None or last - base < COMPACT_ABOVE_ROWS:
            return 0
        folded = ConfigChange.objects.filter(pk__gt=base, pk__lte=last)
        weight = folded.aggregate(total=Sum("weight"))["total"] or 0
        count, _ = folded.delete()
        ConfigChange.objects.filter(pk=base).update(weight=F("weight") + weight)
    return count


def _watch(state: _State) -> None:
    """Re-read the generation every half bound, and at once on a notification."""
    interval = max(settings.TESSERA_CONFIG_MAX_STALENESS / 2, 0.05)
    pubsub: Any = None
    checks = 0
    while state is _state and state.pid == os.getpid():
        client = redis_client()
        if client is not None:
            try:
                if pubsub is None:
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(NOTIFY_CHANNEL)
                pubsub.get_message(timeout=interval)
            except Exception as error:  # any Redis failure: fall back to polling
                metrics.DEPENDENCY_ERRORS.labels(dependency="redis").inc()
                _log_error("Configuration notifications unavailable (Redis)", error)
                pubsub = None
                state.wake.wait(interval)
        else:
            state.wake.wait(interval)
        state.wake.clear()
        try:
            close_old_connections()
            check_now()
            state.watcher_failing = False
            checks += 1
            if checks % COMPACT_EVERY_CHECKS == 0:
                compact()
        except DatabaseError as error:
            state.watcher_failing = True
            _log_error("Cannot read the configuration generation (database)", error)
            connection.close()
        close_old_connections()  # a pooled connection goes back until the next check
        metrics.CONFIG_AGE.set(config_age())


def _ensure_watcher() -> bool:
    """Start this process's watcher if it is not running; True if just started."""
    state = _state
    if state.watcher is not None and state.watcher.is_alive():
        return False
    if not settings.TESSERA_CONFIG_WATCH:
        return False
    with state.lock:
        if state.watcher is not None and state.watcher.is_alive():
            return False
        state.watcher = threading.Thread(
            target=_watch, args=(state,), name="config-watcher", daemon=True
        )
        state.watcher.start()
    return True


def is_watching() -> bool:
    """Whether this process's watcher thread is running."""
    watcher = _state.watcher
    return watcher is not None and watcher.is_alive()


def request_generation() -> int:
    """The generation a request works under: from memory while it is within
    the bound (the watcher keeps it so); past the bound, read inline, unless
    the watcher already knows the database is away (then the grace applies)."""
    state = _state
    _ensure_watcher()
    bound = settings.TESSERA_CONFIG_MAX_STALENESS
    age = time.monotonic() - state.checked_at
    outage_known = state.watcher_failing and is_watching()
    if state.dirty or (age > bound and not outage_known):
        inline = state.dirty or time.monotonic() >= state.next_inline_check
        if inline and state.check_lock.acquire(blocking=False):
            try:
                state.dirty = False
                return check_now()
            except DatabaseError as error:
                state.next_inline_check = time.monotonic() + bound / 2
                _log_error("Cannot read the configuration generation (database)", error)
                connection.close()
            finally:
                state.check_lock.release()
        age = time.monotonic() - state.checked_at
    if state.generation is None:
        raise ConfigUnavailable("The configuration has never been read.")
    if age > bound and age > settings.TESSERA_CONFIG_OUTAGE_GRACE:
        raise ConfigUnavailable(f"The configuration was last read {age:.0f} s ago.")
    return state.generation


def memoized(key: Hashable, loader: Callable[[], T], *, remember_missing: bool = True) -> T:
    """``loader()``, memoised for requests of the same generation. Outside a
    request (commands, services) it always loads.

    Lookups keyed by what a stranger sends (a client id, a tenant slug, a
    host, an audience) pass ``remember_missing=False``: a ``None`` result is
    not kept, so unauthenticated input costs no memory.
    """
    generation = _request_generation.get()
    if generation is None:
        return loader()
    state = _state
    entry = state.entries.get(key)
    if entry is not None and entry[0] == generation:
        return entry[1]  # type: ignore[no-any-return]
    value = loader()
    if value is None and not remember_missing:
        state.entries.pop(key, None)
        return value
    with state.lock:
        if len(state.entries) >= MAX_ENTRIES:
            state.entries.clear()
        state.entries[key] = (generation, value)
    return value


def memo_size() -> int:
    """How many entries this process's memo holds."""
    return len(_state.entries)


def forget() -> None:
    """Drop the memo and the generation held (tests; after a database restore)."""
    global _state
    previous = _state
    _state = _State()
    previous.wake.set()  # its watcher, if any, sees it is no longer current and stops


@contextlib.contextmanager
def request_scope(generation: int | None = None) -> Iterator[int]:
    """Serve ``memoized`` lookups from the memo inside the block (requests, warm-up)."""
    if generation is None:
        generation = request_generation()
    token = _request_generation.set(generation)
    try:
        yield generation
    finally:
        _request_generation.reset(token)


def _notify() -> None:
    """After commit: adopt the change here, and tell the other servers."""
    try:
        check_now()
    except DatabaseError as error:
        _log_error("Cannot read the configuration generation (database)", error)
        _state.dirty = True
    client = redis_client()
    if client is None:
        return
    try:
        client.publish(NOTIFY_CHANNEL, "1")
    except Exception as error:  # servers still notice within the bound
        metrics.DEPENDENCY_ERRORS.labels(dependency="redis").inc()
        logger.warning(
            "Could not notify servers of a configuration change (Redis: %s); "
            "they notice it within %s s.",
            error.__class__.__name__,
            settings.TESSERA_CONFIG_MAX_STALENESS,
        )


def invalidate() -> None:
    """Configuration changed: move the generation forward in the current
    transaction, and notify the servers once it commits."""
    from tenant.models import ConfigChange

    ConfigChange.objects.create()
    # Before the next request of this process, re-read (a request of this same
    # transaction, as in tests, then sees the change; others see the old value).
    _state.dirty = True
    # One notification per transaction: a bulk write (an import of 1,000
    # clients) would otherwise re-read the generation thousands of times at
    # commit. A callback still queued outlives this change: Django drops it
    # only with a savepoint that encloses this change too.
    connection = transaction.get_connection()
    if not any(entry[1] is _notify for entry in connection.run_on_commit):
        transaction.on_commit(_notify)


class ConfigGenerationMiddleware:
    """Establishes the generation once per request for ``memoized`` lookups."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        from tenant.dependencies import unavailable_response

        if request.path in UNGATED_PATHS:
            return self.get_response(request)  # they report the state themselves
        try:
            generation = request_generation()
        except ConfigUnavailable:
            return unavailable_response(request, dependency="database")
        with request_scope(generation):
            return self.get_response(request)


def _on_change(**kwargs: Any) -> None:
    if str(kwargs.get("action", "post_")).startswith("pre_"):
        return  # m2m_changed fires before and after; one change row is enough
    invalidate()


def watch_config_models(*labels: str) -> None:
    """Invalidate on every save and delete of these models (``app.Model``,
    or ``app.Model.field`` for a many-to-many field's rows): each app names,
    from its ``AppConfig.ready()``, the models whose rows a token request
    reads. The change row is written inside the transaction that makes the
    change (QuerySet.update bypasses signals: services that use it call
    ``invalidate`` themselves)."""
    for label in labels:
        app_label, model_name, *field = label.split(".")
        model = apps.get_model(app_label, model_name)
        if field:
            through = getattr(model, field[0]).through
            m2m_changed.connect(_on_change, sender=through, dispatch_uid=f"config-m2m-{label}")
            continue
        post_save.connect(_on_change, sender=model, dispatch_uid=f"config-save-{label}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"config-delete-{label}")
