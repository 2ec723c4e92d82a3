"""Hooks run in the server process, on the calling thread.

The process keeps its idle warm sandboxes, keyed by the caller's context
key, so one tenant's hook version never sees another's globals. A run takes
an idle one of its key (the one used last) or makes one, and gives it back
when it is done: a sandbox is used by one run at a time, on whichever
thread that run is (QuickJS is told the thread's stack each time), so a
worker's 64 threads keep one warm copy of a hook per run going at once, not
one each. A sandbox made with other limits than the run's (memory or sizes;
time budgets are per run) is replaced; past ``max_contexts`` idle ones, or
when together they hold more memory than ``warm_mb``, the least recently
used are dropped. A sandbox whose run timed out while computing, ran out
of memory or crashed is thrown away; the next run of that hook starts from a
fresh one. One whose run timed out while it waited (on an upstream, a
timer) is kept: no JavaScript was running, and a new one costs a compile.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from . import engine, replies
from .egress import EgressPolicy, Network, SocketWait
from .errors import HookError
from .json_text import compact_encoder
from .npm import Packages
from .records import Limits, RunResult, StorageSnapshot

DEFAULT_MAX_CONTEXTS = 256
# What one thread's warm sandboxes may hold together (see engine.make_room).
DEFAULT_WARM_MB = 512
_forks = 0  # forks this process came through: a child's contexts are not its parent's


def _count_fork() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)


# The run's arguments as the prelude reads them.
_encode = compact_encoder(ascii_only=True)


class _Warm:
    """Idle sandboxes by context key, least recently used first; each key's
    list ends with the one used last."""

    def __init__(self) -> None:
        self.forks = _forks
        self.idle: OrderedDict[Hashable, list[engine.Sandbox]] = OrderedDict()
        self.count = 0
        self.held = 0  # their bytes after their last load or run


class InProcessRuntime:
    """Runs hooks on the caller's thread. Thread-safe: a sandbox is taken
    by one run at a time."""

    isolation = "inprocess"

    def __init__(
        self,
        *,
        max_contexts: int = DEFAULT_MAX_CONTEXTS,
        warm_mb: int = DEFAULT_WARM_MB,
        idle: Callable[[], AbstractContextManager[None]] | None = None,
        pause: Callable[[], AbstractContextManager[None]] | None = None,
        wait_sockets: SocketWait | None = None,
    ) -> None:
        """``idle``: entered while a run waits on its fetches
        (``Governor.waiting``); ``wait_sockets``: waits on the sockets of the
        one request a run waits on (``Governor.wait_sockets``); ``pause``:
        entered while it sleeps until its next timer (``Governor.pausing``)."""
        self._idle = idle
        self._pause = pause
        self._wait_sockets = wait_sockets
        self._max_contexts = max(1, max_contexts)
        self._warm_bytes = warm_mb << 20
        self._lock = threading.Lock()
        self._warm = _Warm()

    def run(
        self,
        *,
        context_key: Hashable,
        script: str,
        arg_names: Sequence[str],
        payload: Mapping[str, Any],
        secrets: Mapping[str, str],
        storage: StorageSnapshot | None,
        limits: Limits,
        cache: Mapping[str, Any] | None = None,
        egress: EgressPolicy | None = None,
        packages: Packages | None = None,
    ) -> RunResult:
        """Run the hook; raise a ``HookError`` on failure.

        A Hook is called as ``module.exports(...args, cb)`` with ``payload``'s
        values for ``arg_names``; an Action as ``onExecuteCredentialsExchange
        (event, api)``, with ``payload["event"]`` or else an event made from
        the Hook arguments, ``payload["request"]`` and (in a flow, what the
        earlier steps left) ``payload["accessToken"]``, and ``cache`` as
        ``api.cache``. ``context_key`` names the warm context: the caller makes
        it differ for every tenant and hook version that must not share globals.
        ``egress`` says where the run's ``fetch`` may go (None: nowhere),
        ``packages`` what its ``require`` loads besides the built-ins (the
        context key must differ for another lock).
        """
        request = request_json(arg_names, payload, secrets, storage, cache)
        started = time.monotonic()
        budget = engine.Budget.start(limits)
        sandbox = self._take(context_key, limits)
        self._make_room(limits)  # for this run, whatever the idle ones hold
        if sandbox is None:
            check_script_size(script, limits)
            sandbox = engine.Sandbox.open(script, limits, budget, packages)
            if sandbox.failed is not None:
                raise replies.failure(
                    sandbox.failed,
                    limits,
                    console=replies.console_of(sandbox.failed, limits),
                    duration_ms=(time.monotonic() - started) * 1000,
                )
        network = Network(egress, self._idle, self._pause, self._wait_sockets)
        reply, value = sandbox.run(request, budget, network)
        if sandbox.failed is None:
            self._give_back(context_key, sandbox)
        return replies.decode(
            reply,
            value,
            limits=limits,
            duration_ms=(time.monotonic() - started) * 1000,
            storage=storage,
        )

    def check(self, *, script: str, limits: Limits, packages: Packages | None = None) -> str:
        """Compile ``script`` and run its module body in a throwaway context
        (``require`` finds ``packages``); returns what it exports
        (``"hook"``); raises ``HookError`` otherwise."""
        check_script_size(script, limits)
        reply = engine.check(script, limits, packages)
        if reply["status"] != engine.OK:
            raise replies.failure(reply, limits, console=replies.console_of(reply, limits))
        return str(reply["kind"])

    def close(self) -> None:
        """Drop the idle sandboxes."""
        with self._lock:
            warm, self._warm = self._warm, _Warm()
        del warm  # freed here, not under the lock

    def _current(self) -> _Warm:
        """Under ``_lock``: the idle sandboxes (a forked child's are not its parent's)."""
        if self._warm.forks != _forks:
            self._warm = _Warm()
        return self._warm

    def _take(self, key: Hashable, limits: Limits) -> engine.Sandbox | None:
        """The idle sandbox of ``key`` used last, now this thread's; None if
        there is none made with these limits."""
        with self._lock:
            warm = self._current()
            idle = warm.idle.get(key)
            if not idle:
                return None
            sandbox = idle.pop()
            warm.count -= 1
            warm.held -= sandbox.held
            if not idle:
                del warm.idle[key]
        # Limits are memoised by the caller: the same object while unchanged.
        shape = limits.context_shape()
        if sandbox.limits is not limits and sandbox.limits.context_shape() != shape:
            return None  # made with other limits: dropped
        return sandbox if sandbox.adopt() else None

    def _give_back(self, key: Hashable, sandbox: engine.Sandbox) -> None:
        if not sandbox.movable:  # its stack cannot be moved: it serves one run only
            return
        with self._lock:
            warm = self._current()
            warm.idle.setdefault(key, []).append(sandbox)
            warm.idle.move_to_end(key)
            warm.count += 1
            warm.held += sandbox.held
            dropped = [self._drop_oldest(warm) for _ in range(warm.count - self._max_contexts)]
        del dropped  # freed here, not under the lock (a large heap takes a while)

    def _make_room(self, limits: Limits) -> None:
        """Drop the least recently used idle sandboxes until what they hold
        plus what a run may take fits in ``warm_mb``: each sandbox has its own
        limit, but they share the process's memory (``engine.make_room``)."""
        need = engine.room_for(limits)
        dropped = []
        with self._lock:
            warm = self._current()
            while warm.idle and warm.held + need > self._warm_bytes:
                dropped.append(self._drop_oldest(warm))
        del dropped  # freed here, not under the lock

    @staticmethod
    def _drop_oldest(warm: _Warm) -> engine.Sandbox:
        """Under ``_lock``: take the least recently used idle sandbox out."""
        key, idle = next(iter(warm.idle.items()))
        dropped = idle.pop(0)
        warm.count -= 1
        warm.held -= dropped.held
        if not idle:
            del warm.idle[key]
        return dropped


def check_script_size(script: str, limits: Limits) -> None:
    if len(script.encode(errors="surrogatepass")) > limits.max_script_bytes:
        raise HookError(
            f"the script is larger than {limits.max_script_bytes} bytes", name="RangeError"
        )


def request_json(
    arg_names: Sequence[str],
    payload: Mapping[str, Any],
    secrets: Mapping[str, str],
    storage: StorageSnapshot | None,
    cache: Mapping[str, Any] | None,
) -> str:
    """The run's arguments as the prelude reads them (ASCII JSON)."""
    values = dict(payload)
    return _encode(
        {
            "event": values.pop("event", None),
            "request": values.pop("request", None),
            "accessToken": values.pop("accessToken", None),
            "payload": values,
            "names": list(arg_names),
            "secrets": dict(secrets),
            "storage": None if storage is None else {"data": storage.data},
            "cache": dict(cache or {}),
        }
    )
