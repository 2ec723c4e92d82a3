"""One hook version's QuickJS context, and the loop that drives a run.

This module is the only one that touches the engine (the ``quickjs-ng``
package). It is shared by both isolation modes: the in-process runtime calls
it on the request's thread, a worker process calls it for the pool. Either way
it answers with a *reply*: a dict whose ``status`` is one of the constants
below, plus the value's JSON text. ``replies.decode`` turns a reply into a
``RunResult`` or a typed ``HookError``, in one place for both modes.

The host drives everything that runs, and a run ends when the first of its
two budgets is spent: the wall-clock deadline or the CPU budget (this
thread's CPU time). Inside a call into the engine, QuickJS asks an interrupt
handler every few thousand operations whether to stop; ours checks both
clocks. The wrapper does not expose custom handlers, so it is installed
through the library's exported ``JS_SetInterruptHandler`` on the runtime
pointer, which is first verified (the wrapper registers each context as its
runtime's opaque); if that check ever fails, the wrapper's own limit on the
process's CPU clock is used instead. Between calls the host checks both
clocks, so microtask loops and self-rescheduling timers end at the deadline
too. When nothing is left to run and the hook has not called back, it never
will: the run ends at once instead of waiting for the deadline.

The engine releases the GIL while JavaScript runs, so a busy hook does not
stop the server's other threads. A context is used only by the thread that
created it (the wrapper warns that sharing a runtime across threads can
crash); callers keep that promise.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _quickjs

from .egress import Network
from .npm import ModuleTree, Packages, builtins_lock, default_store
from .records import Limits
from .web_host import crypto_host, module_host, url_host

Reply = dict[str, Any]

OK = "ok"
ERROR = "error"
SYNTAX = "syntax"
RESULT = "result"
TIMEOUT = "timeout"
STALLED = "stalled"
MEMORY = "memory"
CRASH = "crash"
THREW_NULL = "the hook threw null"

PRELUDE = Path(__file__).with_name("sandbox.js").read_text(encoding="utf-8")
WEB = Path(__file__).with_name("web.js").read_text(encoding="utf-8")
MODULES = Path(__file__).with_name("modules.js").read_text(encoding="utf-8")
BUILTIN = "builtin:"
STACK_BYTES = 512 * 1024
# After an interrupted run, reading its console output may take this long.
CONSOLE_ALLOWANCE_S = 0.05
PENDING = "p"
# What a module exports: a function (an Auth0 Hook), or onExecuteCredentialsExchange (an Action).
HOOK = "hook"
ACTION = "action"


class _OutOfTime(Exception):
    """The run's budget is spent (wall clock or CPU)."""

    def __init__(self, cpu: bool) -> None:
        super().__init__("cpu" if cpu else "wall")
        self.cpu = cpu


class _OutOfTimeWaiting(_OutOfTime):
    """The deadline passed while the run waited (on its fetches or a timer):
    no JavaScript was running and no job was queued, so the sandbox is as
    the run left it, and the next run's start forgets that run's timers and
    fetches. It is kept: making another costs a compile with the gate held,
    each time a tenant's upstream hangs."""

    def __init__(self) -> None:
        super().__init__(cpu=False)


class _Stalled(Exception):
    """Nothing is left to run and the hook has not called back."""


class _OutOfMemory(Exception):
    """The context hit its memory limit."""


class _ThrewNull(Exception):
    """A bare null reached the host with the heap within its limit: the hook's own throw."""


class _EngineFault(Exception):
    """The engine's wrapper could not hand a value across (a crash, not the hook's)."""


@dataclass
class Budget:
    """What a run may still spend: wall-clock and CPU seconds."""

    wall_end: float
    cpu_end: float

    @classmethod
    def start(cls, limits: Limits) -> Budget:
        return cls(
            wall_end=time.monotonic() + limits.timeout_ms / 1000,
            cpu_end=time.thread_time() + limits.cpu_ms / 1000,
        )

    def remaining(self) -> float:
        """Seconds left; raises ``_OutOfTime`` when none are."""
        wall = self.wall_end - time.monotonic()
        cpu = self.cpu_end - time.thread_time()
        if cpu <= 0:
            raise _OutOfTime(cpu=True)
        if wall <= 0:
            raise _OutOfTime(cpu=False)
        return min(wall, cpu)

    def spent(self) -> bool:
        return time.monotonic() >= self.wall_end or time.thread_time() >= self.cpu_end


# ---- the interrupt handler ----------------------------------------------------------

# .budget: the budget of the call this thread is in; .heap: (runtime pointer,
# ceiling in bytes) of that call's sandbox, or None; .over: the handler found
# the heap above its ceiling during this thread's current run.
_running = threading.local()
_InterruptHandler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


@_InterruptHandler
def _interrupt(_runtime: int | None, _opaque: int | None) -> int:
    budget: Budget | None = getattr(_running, "budget", None)
    if budget is None:
        return 0
    if budget.spent():
        return 1
    heap: tuple[int, int] | None = getattr(_running, "heap", None)
    if heap is not None and _heap_bytes(heap[0]) > heap[1]:
        _running.over = True
        return 1
    return 0


def _load_library() -> Any:
    library = ctypes.CDLL(_quickjs.__file__)
    library.JS_GetRuntimeOpaque.argtypes = [ctypes.c_void_p]
    library.JS_GetRuntimeOpaque.restype = ctypes.c_void_p
    library.JS_SetInterruptHandler.argtypes = [ctypes.c_void_p, _InterruptHandler, ctypes.c_void_p]
    library.JS_SetInterruptHandler.restype = None
    library.JS_GetGCThreshold.argtypes = [ctypes.c_void_p]
    library.JS_GetGCThreshold.restype = ctypes.c_size_t
    library.JS_SetGCThreshold.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    library.JS_SetGCThreshold.restype = None
    library.JS_UpdateStackTop.argtypes = [ctypes.c_void_p]
    library.JS_UpdateStackTop.restype = None
    return library


_library = _load_library()
# The wrapper's context object starts with PyObject_HEAD, then its JSRuntime*.
_RUNTIME_OFFSET = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
# A JSRuntime starts with its five allocator functions, then JSMallocState:
# malloc_count, malloc_size (the bytes the limit counts), malloc_limit.
_MALLOC_SIZE_OFFSET = 6 * ctypes.sizeof(ctypes.c_void_p)
_MALLOC_LIMIT_OFFSET = _MALLOC_SIZE_OFFSET + ctypes.sizeof(ctypes.c_size_t)


def _heap_bytes(runtime: int) -> int:
    return ctypes.c_size_t.from_address(runtime + _MALLOC_SIZE_OFFSET).value


def _runtime_of(context: Any) -> int | None:
    """The context's verified JSRuntime pointer, or None."""
    runtime = ctypes.c_void_p.from_address(id(context) + _RUNTIME_OFFSET).value
    if not runtime or _library.JS_GetRuntimeOpaque(runtime) != id(context):
        return None
    return int(runtime)


def _install_interrupt_handler(runtime: int | None) -> bool:
    """Point the runtime at ``_interrupt``; False if its pointer could not be
    verified (then the caller uses the wrapper's limit)."""
    if runtime is None:
        return False
    _library.JS_SetInterruptHandler(runtime, _interrupt, None)
    return True


def heap_reserve(limit: int) -> int:
    """What the engine may allocate beyond ``limit`` in one native operation.

    QuickJS throws a bare ``null`` instead of its ``InternalError`` when it
    cannot even allocate that error, exactly what a hook's ``throw null``
    throws. So the engine's own limit is set this much higher, and the hook's
    limit is enforced by the interrupt handler, which reads the runtime's
    byte count every few thousand operations and ends the run once it is over
    (uncatchably, as for time). A heap that grows in small steps is stopped
    there, with its memory still allocated; the engine's limit only stops a
    single native operation that allocates more than the reserve (a huge
    array or string), which leaves room for the InternalError, or many small
    objects (``JSON.parse``), which may not. For those the GC threshold is
    the witness: it is kept at most at the limit when a run starts, and the
    engine sets it to 1.5 times the heap it keeps after each collection, so
    it is above the limit after a run whose heap went over it (or kept more
    than two thirds of it). A bare null is the hook's own otherwise.
    """
    return max(1 << 20, limit // 8)


class Sandbox:
    """A QuickJS runtime and context with the prelude and one hook loaded.

    Create with :meth:`open`; raises nothing: a script that does not load
    leaves the sandbox ``failed`` with the reply that says why.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._context: Any = _quickjs.Context()
        self._limit = limits.memory_mb << 20
        self._context.set_max_stack_size(STACK_BYTES)
        runtime = _runtime_of(self._context)
        self._runtime = runtime
        self._own_interrupts = _install_interrupt_handler(runtime)
        # (runtime, limit) when the heap can be read: then the interrupt
        # handler enforces the limit and the engine's is set above it.
        self._heap: tuple[int, int] | None = None
        if runtime is not None:
            ceiling = self._limit + heap_reserve(self._limit)
            self._context.set_memory_limit(ceiling)
            limit_at = ctypes.c_size_t.from_address(runtime + _MALLOC_LIMIT_OFFSET).value
            if limit_at == ceiling:
                self._heap = (runtime, self._limit)
        if self._heap is None:
            self._context.set_memory_limit(self._limit)
        self.held = 0  # the heap's bytes after the last load or run (make_room)
        self._host: Any = None
        self.failed: Reply | None = None
        self.kind = ""  # what the module exports: HOOK or ACTION

    @classmethod
    def open(
        cls, script: str, limits: Limits, budget: Budget, packages: Packages | None = None
    ) -> Sandbox:
        """Install the prelude and run the module body within ``budget``;
        ``require`` finds Node's built-ins and ``packages``."""
        sandbox = cls(limits)
        context = sandbox._context
        sandbox._start_run()
        try:
            sandbox._arm(budget)
            factory = context.eval(PRELUDE)
            config = context.parse_json(
                json.dumps(
                    {
                        "result": limits.max_result_bytes,
                        "storage": limits.max_storage_bytes,
                        "log": limits.max_log_bytes,
                    }
                )
            )
            sandbox._host = factory(context.globalThis, config)
            # web.js and modules.js take these off the global object.
            context.add_callable("__tessera_url", url_host)
            context.eval(WEB)(context.globalThis, sandbox._host)
            context.add_callable("__tessera_module", module_host(_trees(packages)))
            context.add_callable("__tessera_crypto", crypto_host)
            context.eval(MODULES)(context.globalThis, sandbox._host)
            loaded = sandbox._call("load", json.dumps(script), budget)
        except (_OutOfTime, _OutOfMemory, _ThrewNull, _EngineFault, _quickjs.JSException) as error:
            sandbox.failed = sandbox._failure(error)
            return sandbox
        if loaded in (HOOK, ACTION):
            sandbox.kind = loaded
            sandbox.held = sandbox.heap_bytes()
        else:
            meta, _, _ = loaded.partition("\n")
            sandbox.failed = _classify(json.loads(meta), sandbox._over_limit())
        return sandbox

    @property
    def movable(self) -> bool:
        """Whether another thread may run it (its runtime can be told so)."""
        return self._runtime is not None and self.failed is None

    def adopt(self) -> bool:
        """Make the calling thread's stack the one QuickJS measures (its
        overflow check compares against the stack of the thread that last
        adopted it); False if it cannot be moved."""
        if not self.movable:
            return False
        _library.JS_UpdateStackTop(self._runtime)
        return True

    def heap_bytes(self) -> int:
        """The bytes the engine holds for this sandbox now (0 if unknown)."""
        return _heap_bytes(self._heap[0]) if self._heap is not None else 0

    def _over_limit(self) -> bool:
        """Whether the heap went over the hook's limit in this run: a bare
        ``null`` is then the engine's out-of-memory, else the hook's throw.
        Without a readable heap, a bare null is taken for out-of-memory."""
        if self._heap is None:
            return True
        return (
            bool(getattr(_running, "over", False))
            or self.heap_bytes() > self._limit
            or _library.JS_GetGCThreshold(self._heap[0]) > self._limit
        )

    def _start_run(self) -> None:
        """Clear what ``_over_limit`` reads for a new run."""
        _running.over = False
        if self._heap is not None and _library.JS_GetGCThreshold(self._heap[0]) > self._limit:
            _library.JS_SetGCThreshold(self._heap[0], self._limit)

    def run(
        self, payload_json: str, budget: Budget, network: Network | None = None
    ) -> tuple[Reply, str]:
        """One invocation. Returns the reply and the value's JSON text.
        ``network`` performs the run's fetches (none: each one fails)."""
        assert self.failed is None, "run() on a sandbox whose script did not load"
        network = network or Network()
        self._start_run()
        try:
            envelope = self._call("run", payload_json, budget)
            while envelope.startswith(PENDING):
                self._drain_jobs(budget)
                envelope = self._call("poll", "", budget)
                if not envelope.startswith(PENDING):
                    break
                network.start(json.loads(self._call("outbox", "", budget)), budget.wall_end)
                wait_ms = int(envelope[1:])
                if network.waiting():
                    timer_s = wait_ms / 1000 if wait_ms >= 0 else None
                    finished = network.wait(timer_s, budget.wall_end)
                    if finished:
                        envelope = self._call("deliver", json.dumps(finished), budget)
                        continue
                    if time.monotonic() >= budget.wall_end:
                        raise _OutOfTimeWaiting()
                elif wait_ms < 0:
                    raise _Stalled()
                else:
                    with network.paused():
                        self._sleep(wait_ms / 1000, budget)
                envelope = self._call("fire", "", budget)
            # A run is over once nothing it started is still running: a promise
            # loop left behind after cb must not eat the next run's budget.
            self._drain_jobs(budget)
        except (
            _OutOfTime,
            _OutOfMemory,
            _ThrewNull,
            _Stalled,
            _EngineFault,
            _quickjs.JSException,
        ) as error:
            reply = self._failure(error)
            reply["fetches"] = network.log
            if not isinstance(error, _OutOfTimeWaiting) or self.heap_bytes() > self._limit:
                self.failed = reply  # left mid-step, or holding too much: start afresh next time
            return reply, ""
        finally:
            network.abandon()
            # Only its own runs change a sandbox's heap: make_room reads this.
            self.held = self.heap_bytes()
        meta_text, _, value = envelope.partition("\n")
        if not meta_text and not network.log:  # a quiet success
            return {"status": OK, "console": "", "truncated": False, "kind": self.kind}, value
        reply = _classify(json.loads(meta_text) if meta_text else {"ok": True}, self._over_limit())
        reply["kind"] = self.kind
        if network.log:
            reply["fetches"] = network.log
        if reply["status"] not in (OK, ERROR) or self.heap_bytes() > self._limit:
            # memory, an unusable result, or a heap kept above the limit
            # (grown in one native step): start afresh next time
            self.failed = reply
        return reply, value

    # ---- engine calls ---------------------------------------------------------------

    def _arm(self, budget: Budget) -> None:
        """Bound the next engine call by ``budget``: our interrupt handler
        reads it, so arming reads no clock; the wrapper's own limit is set to
        what is left (raises if nothing is)."""
        _running.heap = self._heap
        if self._own_interrupts:
            _running.budget = budget
        else:
            self._context.set_time_limit(budget.remaining())

    def _call(self, op: str, text: str, budget: Budget) -> str:
        self._arm(budget)
        try:
            result = self._host(op, text)
        except _quickjs.JSException as error:
            raise _engine_error(error, budget, self._over_limit()) from None
        except (TypeError, ValueError) as error:
            raise _EngineFault(str(error)) from None
        return str(result)

    def _drain_jobs(self, budget: Budget) -> None:
        context = self._context
        self._arm(budget)
        while True:
            try:
                if not context.execute_pending_job():
                    return
            except _quickjs.JSException as error:
                raise _engine_error(error, budget, self._over_limit()) from None
            budget.remaining()  # raises once spent: jobs queueing jobs end at the deadline too
            self._arm(budget)

    @staticmethod
    def _sleep(seconds: float, budget: Budget) -> None:
        wall_left = budget.wall_end - time.monotonic()
        if seconds >= wall_left:
            time.sleep(max(wall_left, 0))
            raise _OutOfTimeWaiting()
        if seconds > 0:
            time.sleep(seconds)

    def _console(self) -> tuple[str, bool]:
        """The current run's console output, read after it was cut short."""
        try:
            self._arm(Budget(time.monotonic() + CONSOLE_ALLOWANCE_S, float("inf")))
            text, truncated = json.loads(str(self._host("console", "")))
            return str(text), bool(truncated)
        except (_quickjs.JSException, ValueError, TypeError):  # out of memory or time: lost
            return "", False

    def _failure(self, error: Exception) -> Reply:
        if isinstance(error, _OutOfTime):
            reply = _reply(
                TIMEOUT,
                "HookTimeout",
                "the hook used up its CPU budget"
                if error.cpu
                else "the hook did not finish in time",
                cpu=error.cpu,
            )
        elif isinstance(error, _Stalled):
            reply = _reply(STALLED, "HookTimeout", "the hook returned without calling back")
        elif isinstance(error, _OutOfMemory):
            reply = _reply(MEMORY, "HookMemoryLimit", "the hook exceeded its memory limit")
        elif isinstance(error, _ThrewNull):
            reply = _reply(ERROR, "Error", THREW_NULL)
        else:
            reply = _reply(CRASH, "HookCrashed", f"the hook sandbox failed: {error}")
        if self._host is not None and not isinstance(error, _OutOfMemory):
            reply["console"], reply["truncated"] = self._console()
        return reply


def make_room(
    sandboxes: OrderedDict[Hashable, Sandbox], keep: Hashable, limits: Limits, budget: int
) -> None:
    """Drop the least recently used warm sandboxes (not ``keep``) until what
    the others hold plus what this run may take fits in ``budget`` bytes.

    Each sandbox has its own limit, but they share their process's memory (a
    worker's RLIMIT_DATA): warm versions each keeping a large global would
    otherwise leave a new one-line hook no memory at all, and it would fail
    as if it had gone over its own limit.
    """
    need = room_for(limits)
    # The sizes after each sandbox's last load or run (reading every heap
    # live costs about 1.7 µs a sandbox, per request); the common case, all
    # fitting, is one pass over the cache.
    if sum(sandbox.held for sandbox in sandboxes.values()) + need <= budget:
        return
    held = {key: sandbox.held for key, sandbox in sandboxes.items() if key != keep}
    total = sum(held.values())
    for key, size in held.items():  # oldest first
        if total + need <= budget:
            return
        del sandboxes[key]
        total -= size


def room_for(limits: Limits) -> int:
    """The bytes a run with ``limits`` may take at most (its limit and the
    engine's reserve above it)."""
    limit = limits.memory_mb << 20
    return limit + heap_reserve(limit)


def _trees(packages: Packages | None) -> Any:
    """Which tree holds a path ``require`` asks for: the built-ins' or the hook's."""
    store = Path(packages.store) if packages is not None else default_store()
    builtins = ModuleTree(store, builtins_lock())
    own = ModuleTree(store, list(packages.lock) if packages is not None else [])

    def tree_for(path: str) -> tuple[ModuleTree, str]:
        if path.startswith(BUILTIN):
            return builtins, path[len(BUILTIN) :]
        return own, path

    return tree_for


def check(script: str, limits: Limits, packages: Packages | None = None) -> Reply:
    """Load ``script`` in a throwaway sandbox: compile it and run the module
    body within ``limits`` (``require`` finds ``packages``). The reply is
    ``ok`` with the export ``kind``."""
    sandbox = Sandbox.open(script, limits, Budget.start(limits), packages)
    if sandbox.failed is not None:
        return sandbox.failed
    return {"status": OK, "kind": sandbox.kind}


def _engine_error(error: _quickjs.JSException, budget: Budget, over_limit: bool) -> Exception:
    """What a failed engine call means: the interrupt handler, memory, a
    hook's ``throw null`` that escaped the prelude, or a crash."""
    text = str(error)
    head = text.split("\n", 1)[0]
    if "interrupted" in head and getattr(_running, "over", False):
        return _OutOfMemory()
    if "interrupted" in head:
        try:
            budget.remaining()
        except _OutOfTime as out:
            return out
        # Interrupted by the process's CPU clock, which other threads push
        # ahead of this one's: the budget is spent all the same.
        return _OutOfTime(cpu=True)
    if "out of memory" in head or (head.strip() == "null" and over_limit):
        return _OutOfMemory()
    if head.strip() == "null":
        return _ThrewNull()
    return error


def _reply(status: str, name: str, message: str, **extra: Any) -> Reply:
    return {"status": status, "error": {"name": name, "message": message, **extra}}


def _classify(meta: dict[str, Any], over_limit: bool) -> Reply:
    """A reply from the prelude's outcome meta; ``over_limit``: the heap went
    over the hook's limit (a bare null is then the engine's out-of-memory)."""
    reply: Reply = {
        "console": meta.get("console", ""),
        "truncated": bool(meta.get("truncated")),
    }
    if meta.get("storage"):
        reply["storage"] = meta["storage"]
    if meta.get("cache"):
        reply["cache"] = meta["cache"]
    if meta.get("ok") is True:
        reply["status"] = OK
        return reply
    error: dict[str, Any] = meta.get("error") or {}
    reply["error"] = error
    name, message = error.get("name"), str(error.get("message", ""))
    if error.get("kind") == "result":
        reply["status"] = RESULT
    elif (name == "InternalError" and "out of memory" in message) or (
        error.get("bare") and over_limit
    ):
        reply["status"] = MEMORY
        error.update(name="HookMemoryLimit", message="the hook exceeded its memory limit")
    elif error.pop("bare", False):
        reply["status"] = ERROR
        error.update(name="Error", message=THREW_NULL)
    elif error.get("kind") == "syntax":
        reply["status"] = SYNTAX
    else:
        # The hook chose to fail (cb(err), throw, rejection): a normal path.
        reply["status"] = ERROR
    return reply
