"""Keeping one tenant's hostile hook from costing anyone else anything.

A :class:`Governor` sits in front of a runtime, per server process:

- a cap on concurrent runs per tenant, so a tenant whose hook loops holds
  at most that many of the server's cores; a run over the cap waits
  ``queue_s`` for a slot (a tenant's ordinary runs take a fraction of a
  millisecond, so they only ever wait for each other that long) before it
  is refused, and at most ``MAX_QUEUED_PER_TENANT`` wait at once (more are
  refused at once: each holds a server thread);
- a run waiting on an upstream (its ``fetch``) computes nothing: inside
  :meth:`Governor.waiting` it gives its tenant's slot back and holds one of
  the tenant's ``max_waiting_per_tenant`` waiting places instead (when those
  are taken, it keeps its slot and waits all the same); when the wait is
  over it takes a slot again before it runs on, ahead of new runs. So a
  tenant whose upstream answers in 2 s holds at most ``max_concurrent +
  max_waiting`` of the server's threads, and a tenant whose upstream answers
  in 20 ms is not held to one run at a time;
- with a :class:`ComputeGate`, every wait of the governor's (a slot, an
  upstream) is made with the gate released, so that a waiting request
  never keeps the server's other requests from computing; a run waiting on
  its own request's sockets (:meth:`Governor.wait_sockets`) is woken once,
  when its answer and its turn at the gate are both there;
- a cap on concurrent test runs (the dashboard's Run button) per process, so
  test runs can never occupy every thread;
- a breaker per hook version: after ``breaker_failures`` timeouts or memory
  failures in a row, or at once when a run burns its whole CPU budget (a
  loop: the next run would do the same), it fails the hook fast for
  ``breaker_cooldown_s``; one
  more failure after the cool-down opens it again at once, for twice as long
  (up to ``MAX_COOLDOWN_DOUBLINGS`` times); a success closes it.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .egress import poll_sockets
from .errors import (
    HookBusy,
    HookCpuLimit,
    HookError,
    HookMemoryLimit,
    HookStalled,
    HookSuspended,
    HookTimeout,
)

T = TypeVar("T")

# Breakers of hooks that failed recently; older ones are forgotten first.
MAX_BREAKERS = 10_000
# Runs of one tenant that may queue for its slot at once; more are refused at
# once. Each holds a server thread while it waits: without a bound, a tenant
# whose runs wait on a slow upstream would queue on every thread there is.
MAX_QUEUED_PER_TENANT = 4
MAX_COOLDOWN_DOUBLINGS = 4


# What a socket waiter parked at the gate is told when it wakes.
_PARKED, _YOURS, _FREE, _LATE = "parked", "yours", "free", "late"


@dataclass(eq=False)
class _Parked:
    """A request waiting on its sockets (fd -> poll events) while others
    hold the gate."""

    key: Hashable
    sockets: tuple[int, ...]
    turn: threading.Lock = field(default_factory=threading.Lock)
    state: str = _PARKED
    ready: list[tuple[int, int]] = field(default_factory=list)


class ComputeGate:
    """One token request computes at a time in this process; a request
    waiting (on an upstream, or for its tenant's slot) lets the next one in.

    A server with many threads, so that waits do not hold it up, would
    otherwise run as many requests at once as it has threads, each taking
    the GIL from the others every few milliseconds: more CPU per token and
    longer runs, which hold their tenant's slot longer. Held for a whole
    token request (``tenant.site.wsgi``).

    Handed over in turn between the keys (tenants) that have requests
    waiting, first come, first served within each: with one queue for all,
    a tenant whose clients send their second's worth of requests at once
    (as a rate limit allows) made every other tenant's requests wait behind
    the whole burst. A plain lock would also let the thread that just let
    it go take it again ahead of those waiting.

    A request waiting on its sockets (:meth:`wait_sockets`) while the gate
    is busy is parked: whoever hands the gate over first looks at the
    parked sockets (one ``epoll`` call) and queues the requests whose
    answer came, ahead of their key's new ones. Such a request wakes once,
    with its answer and its turn, where waiting on its sockets by itself
    it woke for its answer, then slept again in the gate's queue (a thread
    switch and a cold start more per fetch). When the gate goes free, the
    parked requests wait on their sockets by themselves."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._busy = False
        # Waiting requests by key, the key whose turn is next first.
        self._queues: OrderedDict[Hashable, deque[threading.Lock]] = OrderedDict()
        self._held = threading.local()
        self._parked: dict[int, _Parked] = {}  # by socket
        self._epoll: select.epoll | None = None  # the parked sockets, made on first use

    @contextlib.contextmanager
    def hold(self, key: Hashable = None) -> Iterator[None]:
        self.enter(key)
        try:
            yield
        finally:
            self.leave()

    def enter(self, key: Hashable = None) -> None:
        """Wait for the gate (a token request of tenant ``key``, as it starts)."""
        mutex = self._mutex
        mutex.acquire()
        if self._busy:
            turn = threading.Lock()
            turn.acquire()
            self._queue(key).append(turn)
            mutex.release()
            turn.acquire()  # released by the holder that hands the gate over
        else:
            self._busy = True
            mutex.release()
        self._held.yes = True
        self._held.key = key

    def _queue(self, key: Hashable) -> deque[threading.Lock]:
        """Under ``_mutex``: ``key``'s queue (a new one's turn comes after the others')."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        return queue

    def leave(self) -> None:
        """Hand the gate to the next key's first request (as a token request ends)."""
        self._held.yes = False
        with self._mutex:
            self._hand_over()

    def _hand_over(self) -> bool:
        """Under ``_mutex``: give the gate to the next request waiting for
        it, if any (whether one was); else it is free, and the parked
        requests are sent to wait on their sockets by themselves."""
        if self._parked:
            self._queue_answered()
        if self._queues:
            key, queue = next(iter(self._queues.items()))
            turn = queue.popleft()
            if queue:
                self._queues.move_to_end(key)  # its next request waits its turn
            else:
                del self._queues[key]
            turn.release()  # still busy: it is theirs now
            return True
        self._busy = False
        for parked in set(self._parked.values()):
            self._unpark(parked, _FREE)
            parked.turn.release()
        return False

    def _queue_answered(self) -> None:
        """Under ``_mutex``: queue the parked requests with a ready socket."""
        assert self._epoll is not None
        answered: dict[Hashable, list[threading.Lock]] = {}
        for fd, events in self._epoll.poll(0):
            parked = self._parked.get(fd)  # None: a second socket of one just queued
            if parked is not None:
                parked.ready.append((fd, events))
                self._unpark(parked, _YOURS)
                answered.setdefault(parked.key, []).append(parked.turn)
        for key, turns in answered.items():
            self._queue(key).extendleft(reversed(turns))  # back before new runs, in order

    def _park(self, key: Hashable, sockets: Mapping[int, int]) -> _Parked | None:
        """Under ``_mutex``: a parked waiter on ``sockets``; None if epoll
        will not watch one of them (then the caller waits on them alone)."""
        if self._epoll is None:
            self._epoll = select.epoll()
        parked = _Parked(key=key, sockets=tuple(sockets))
        parked.turn.acquire()
        for fd, events in sockets.items():
            try:
                self._epoll.register(fd, events)
            except OSError:
                parked.sockets = tuple(f for f in parked.sockets if self._parked.get(f) is parked)
                self._unpark(parked, _FREE)
                return None
            self._parked[fd] = parked
        return parked

    def _unpark(self, parked: _Parked, state: str) -> None:
        assert self._epoll is not None
        parked.state = state
        for fd in parked.sockets:
            del self._parked[fd]
            with contextlib.suppress(OSError):  # closed meanwhile: epoll forgot it
                self._epoll.unregister(fd)

    def wait_sockets(self, sockets: Mapping[int, int], timeout_s: float) -> list[tuple[int, int]]:
        """Let the gate go until one of ``sockets`` (fd -> poll events) is
        ready or ``timeout_s`` passes, then take it back in the turn of the
        key it was held for: the ready ``(fd, events)``. Called holding it."""
        key = getattr(self._held, "key", None)
        end = time.monotonic() + timeout_s
        self._held.yes = False
        parked: _Parked | None = None
        with self._mutex:
            if self._hand_over():  # busy: park
                parked = self._park(key, sockets)
        if parked is not None:
            if not parked.turn.acquire(timeout=max(timeout_s, 0)):
                with self._mutex:
                    if parked.state == _PARKED:
                        self._unpark(parked, _LATE)
                if parked.state != _LATE:
                    parked.turn.acquire()  # handed over as the time ran out
            if parked.state == _YOURS:
                self._held.yes = True
                self._held.key = key
                return parked.ready
            if parked.state == _LATE:
                self.enter(key)
                return []
        ready = poll_sockets(sockets, end - time.monotonic())  # the gate is free: wait alone
        self.enter(key)
        return ready

    def held(self) -> bool:
        """Whether this thread holds the gate."""
        return bool(getattr(self._held, "yes", False))

    def step_out(self) -> bool:
        """Let another request in, if this thread holds the gate; whether it did."""
        if not self.held():
            return False
        self.leave()
        return True

    def step_in(self) -> None:
        """Take the gate back after ``step_out`` (never while holding another
        lock), in the turn of the key it was held for."""
        self.enter(getattr(self._held, "key", None))


@dataclass
class _Breaker:
    failures: int = 0
    trips: int = 0
    open_until: float = 0.0


class Governor:
    """Admission for hook runs. Thread-safe; state is per process."""

    def __init__(
        self,
        *,
        max_concurrent_per_tenant: int = 1,
        max_waiting_per_tenant: int = 0,
        queue_s: float = 0.1,
        max_queued_per_tenant: int = MAX_QUEUED_PER_TENANT,
        max_concurrent_tests: int = 2,
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 30.0,
        gate: ComputeGate | None = None,
        before_wait: Callable[[], None] | None = None,
    ) -> None:
        self.max_concurrent_per_tenant = max(1, max_concurrent_per_tenant)
        self.max_waiting_per_tenant = max(0, max_waiting_per_tenant)
        self.queue_s = max(0.0, queue_s)
        self.max_queued_per_tenant = max(0, max_queued_per_tenant)
        self.max_concurrent_tests = max(1, max_concurrent_tests)
        self.breaker_failures = max(1, breaker_failures)
        self.breaker_cooldown_s = breaker_cooldown_s
        self.gate = gate or ComputeGate()
        # Called on the run's thread before each of its waits (what the
        # thread holds that others need meanwhile: its database connection).
        self._before_wait = before_wait or _nothing
        self._lock = threading.Lock()
        # Per tenant, while some of its runs wait for a slot (_take_turn): a
        # slot freed wakes only its own tenant's runs, never everyone's.
        self._freed: dict[Hashable, tuple[threading.Condition, int]] = {}
        self._running: dict[Hashable, int] = {}
        self._on_upstream: dict[Hashable, int] = {}  # runs waiting on an upstream, per tenant
        self._returning: dict[Hashable, int] = {}  # runs back from one, waiting for a slot
        self._queued: dict[Hashable, int] = {}  # new runs waiting for a slot, per tenant
        self._held = threading.local()  # .tenant: the tenant of the run on this thread
        self._tests = 0
        self._breakers: OrderedDict[Hashable, _Breaker] = OrderedDict()

    def run(self, *, tenant: Hashable, hook: Hashable, test: bool, call: Callable[[], T]) -> T:
        """``call()`` if the tenant and the hook may run now; raises
        ``HookBusy`` or ``HookSuspended`` (without calling) otherwise."""
        self._admit(tenant=tenant, hook=hook, test=test)
        self._held.tenant = tenant
        try:
            result = call()
        except (HookTimeout, HookMemoryLimit) as error:
            if isinstance(error, HookCpuLimit):
                self._failed(hook, self.breaker_failures)
            elif not isinstance(error, HookStalled):  # a stalled hook cost nothing
                self._failed(hook, 1)
            raise
        except HookError:
            self._succeeded(hook)  # the hook ran and chose to fail: it is healthy
            raise
        finally:
            self._held.tenant = None
            self._release(tenant=tenant, test=test)
        self._succeeded(hook)
        return result

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a wait on an upstream by the run on this thread: the gate
        and its tenant's slot (if a waiting place is free) are let go
        meanwhile; then it takes its turn at the gate, and the slot back,
        ahead of new runs, before it computes again."""
        self._before_wait()
        gated = self.gate.step_out()
        tenant = getattr(self._held, "tenant", None)
        stepped = tenant is not None and self._step_out(tenant)
        try:
            yield
        finally:
            if stepped:  # the wait is over: its place is free at once
                with self._lock:
                    _decrement(self._on_upstream, tenant)
            if gated:
                self.gate.step_in()
            if stepped:
                self._take_back(tenant)

    def wait_sockets(self, sockets: Mapping[int, int], timeout_s: float) -> list[tuple[int, int]]:
        """The ready ``(fd, events)`` of ``sockets`` (fd -> poll events) once
        one is, or none after ``timeout_s``: a wait on the run's own request,
        made as :meth:`waiting` makes one, except that with the gate held
        the run is woken only once its answer and its turn are both there
        (:meth:`ComputeGate.wait_sockets`)."""
        self._before_wait()
        tenant = getattr(self._held, "tenant", None)
        stepped = tenant is not None and self._step_out(tenant)
        try:
            if self.gate.held():
                return self.gate.wait_sockets(sockets, timeout_s)
            return poll_sockets(sockets, timeout_s)
        finally:
            if stepped:
                with self._lock:
                    _decrement(self._on_upstream, tenant)
                self._take_back(tenant)

    @contextlib.contextmanager
    def pausing(self) -> Iterator[None]:
        """Around a run's sleep until its next timer: the gate is free
        meanwhile (the tenant keeps its slot, as a timer is the hook's own
        pacing)."""
        self._before_wait()
        gated = self.gate.step_out()
        try:
            yield
        finally:
            if gated:
                self.gate.step_in()

    def _step_out(self, tenant: Hashable) -> bool:
        with self._lock:
            waiting = self._on_upstream.get(tenant, 0)
            if waiting >= self.max_waiting_per_tenant:
                return False
            self._on_upstream[tenant] = waiting + 1
            _decrement(self._running, tenant)
            self._notify(tenant)
            return True

    def _take_back(self, tenant: Hashable) -> None:
        self._take_turn(tenant, give_up=None, returning=True)

    def suspended_for(self, hook: Hashable) -> float:
        """Seconds left of the hook's cool-down (0 when it may run)."""
        with self._lock:
            breaker = self._breakers.get(hook)
            return max(0.0, breaker.open_until - time.monotonic()) if breaker else 0.0

    def _admit(self, *, tenant: Hashable, hook: Hashable, test: bool) -> None:
        with self._lock:
            breaker = self._breakers.get(hook)
            if breaker is not None and breaker.open_until > (now := time.monotonic()):
                wait = breaker.open_until - now
                raise HookSuspended(
                    f"the hook is suspended for {wait:.0f} s after "
                    f"{self.breaker_failures} timeouts or memory failures in a row",
                    retry_after_s=wait,
                )
            if test and self._tests >= self.max_concurrent_tests:
                raise HookBusy("too many test runs on this server; try again", retry_after_s=1)
            self._tests += test  # given back by _release, or below if refused
            if self._slot_free(tenant, returning=False):
                self._running[tenant] = self._running.get(tenant, 0) + 1
                return
            queued = self._queued.get(tenant, 0)
            if queued >= self.max_queued_per_tenant:
                self._tests -= test
                raise HookBusy(
                    f"this tenant already has {queued} hook runs waiting for a turn on this server",
                    retry_after_s=1,
                )
            self._queued[tenant] = queued + 1
        try:
            self._take_turn(tenant, give_up=time.monotonic() + self.queue_s, returning=False)
        except HookBusy:
            with self._lock:
                self._tests -= test
            raise
        finally:
            with self._lock:
                _decrement(self._queued, tenant)

    def _slot_free(self, tenant: Hashable, *, returning: bool) -> bool:
        """Under ``_lock``: whether a run may take one of the tenant's slots
        now (a new run only if none is back from an upstream and waiting)."""
        return self._running.get(tenant, 0) < self.max_concurrent_per_tenant and (
            returning or not self._returning.get(tenant)
        )

    def _take_turn(self, tenant: Hashable, *, give_up: float | None, returning: bool) -> None:
        """Take one of the tenant's slots, waiting for it without the gate and
        taking it only with the gate held: a run never holds a slot while it
        queues at the gate (its tenant's next run would find the slot taken
        by a run that is not computing). ``HookBusy`` once ``give_up`` passes;
        the gate is held again either way."""
        self._before_wait()
        while True:
            gated = False
            try:
                with self._lock:
                    if self._slot_free(tenant, returning=returning):
                        self._running[tenant] = self._running.get(tenant, 0) + 1
                        return
                    gated = self.gate.step_out()
                    freed, waiters = self._freed.get(tenant) or (threading.Condition(self._lock), 0)
                    self._freed[tenant] = (freed, waiters + 1)
                    if returning:
                        self._returning[tenant] = self._returning.get(tenant, 0) + 1
                    try:
                        while not self._slot_free(tenant, returning=returning):
                            left = None if give_up is None else give_up - time.monotonic()
                            if left is not None and left <= 0:
                                running = self._running.get(tenant, 0)
                                raise HookBusy(
                                    f"this tenant already has {running} hook runs going "
                                    "on this server",
                                    retry_after_s=1,
                                )
                            # The tenant's own runs hold the slots, each for at
                            # most its deadline.
                            freed.wait(left)
                    finally:
                        freed, waiters = self._freed[tenant]
                        if waiters > 1:
                            self._freed[tenant] = (freed, waiters - 1)
                        else:
                            del self._freed[tenant]
                        if returning:
                            _decrement(self._returning, tenant)
                    if not gated:  # no gate to queue at: take it now
                        self._running[tenant] = self._running.get(tenant, 0) + 1
                        return
            finally:
                if gated:
                    self.gate.step_in()
            # The gate is ours again: take the slot if it is still free.

    def _release(self, *, tenant: Hashable, test: bool) -> None:
        with self._lock:
            _decrement(self._running, tenant)
            self._tests -= test
            self._notify(tenant)

    def _notify(self, tenant: Hashable) -> None:
        """Under ``_lock``: wake the tenant's runs waiting for a slot."""
        waiting = self._freed.get(tenant)
        if waiting is not None:
            waiting[0].notify_all()

    def _failed(self, hook: Hashable, weight: int) -> None:
        with self._lock:
            breaker = self._breakers.pop(hook, None) or _Breaker()
            breaker.failures += weight
            if breaker.failures >= self.breaker_failures:
                doublings = min(breaker.trips, MAX_COOLDOWN_DOUBLINGS)
                breaker.open_until = time.monotonic() + self.breaker_cooldown_s * 2**doublings
                breaker.trips += 1
                breaker.failures = self.breaker_failures - 1  # half open after the cool-down
            self._breakers[hook] = breaker
            while len(self._breakers) > MAX_BREAKERS:
                self._breakers.popitem(last=False)

    def _succeeded(self, hook: Hashable) -> None:
        if hook in self._breakers:
            with self._lock:
                self._breakers.pop(hook, None)


def _decrement(counts: dict[Hashable, int], key: Hashable) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _nothing() -> None:
    pass
