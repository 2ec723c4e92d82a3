"""Hooks run in the server process, on the calling thread.

Each thread keeps its own LRU of warm sandboxes (a QuickJS runtime is never
used from two threads), keyed by the caller's context key, so one tenant's
hook version never sees another's globals; a sandbox made with other limits
than the run's (memory or sizes; time budgets are per run) is replaced, and
the oldest are dropped when together they hold more memory than ``warm_mb``.
A sandbox whose run timed out, ran out of memory or crashed is thrown away;
the next run of that hook starts from a fresh one.
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
from .egress import EgressPolicy, Network
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


class _ThreadCache(threading.local):
    def __init__(self) -> None:
        self.forks = _forks
        self.sandboxes: OrderedDict[Hashable, engine.Sandbox] = OrderedDict()


class InProcessRuntime:
    """Runs hooks on the caller's thread. Thread-safe: nothing is shared."""

    isolation = "inprocess"

    def __init__(
        self,
        *,
        max_contexts: int = DEFAULT_MAX_CONTEXTS,
        warm_mb: int = DEFAULT_WARM_MB,
        idle: Callable[[], AbstractContextManager[None]] | None = None,
        pause: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        """``idle``: entered while a run waits on its fetches
        (``Governor.waiting``); ``pause``: while it sleeps until its next timer
        (``Governor.pausing``)."""
        self._idle = idle
        self._pause = pause
        self._max_contexts = max(1, max_contexts)
        self._warm_bytes = warm_mb << 20
        self._local = _ThreadCache()

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
        sandboxes = self._sandboxes()
        engine.make_room(sandboxes, context_key, limits, self._warm_bytes)
        sandbox = sandboxes.get(context_key)
        # Limits are memoised by the caller: the same object while unchanged.
        if sandbox is None or (
            sandbox.limits is not limits
            and sandbox.limits.context_shape() != limits.context_shape()
        ):
            check_script_size(script, limits)
            sandbox = engine.Sandbox.open(script, limits, budget, packages)
            if sandbox.failed is not None:
                raise replies.failure(
                    sandbox.failed,
                    limits,
                    console=replies.console_of(sandbox.failed, limits),
                    duration_ms=(time.monotonic() - started) * 1000,
                )
            sandboxes[context_key] = sandbox
            sandboxes.move_to_end(context_key)  # it may replace one made with other limits
            while len(sandboxes) > self._max_contexts:
                sandboxes.popitem(last=False)
        else:
            sandboxes.move_to_end(context_key)
        reply, value = sandbox.run(request, budget, Network(egress, self._idle, self._pause))
        if sandbox.failed is not None:
            sandboxes.pop(context_key, None)
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
        """Drop the calling thread's sandboxes."""
        self._sandboxes().clear()

    def _sandboxes(self) -> OrderedDict[Hashable, engine.Sandbox]:
        local = self._local
        if local.forks != _forks:  # a forked child: its parent's contexts are not its own
            local.forks = _forks
            local.sandboxes = OrderedDict()
        return local.sandboxes


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
