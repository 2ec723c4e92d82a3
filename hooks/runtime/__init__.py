"""The hook runtime: runs tenants' JavaScript hooks (Auth0 credentials-exchange
Hooks) in V8 through mini-racer. It knows nothing of Django; the token
pipeline and the test runner call it the same way.

Why processes. V8 inside the web process cannot be made safe: mini-racer's
``timeout_sec`` does not stop a loop in a promise callback or a timer, such a
loop blocks every later call into that context, and some allocations
(``new Array(3e8).fill(1.5)``) kill the whole process whatever the heap limit.
So hooks run in a small pool of worker processes (``python -I worker.py``,
started with only ``PATH`` and ``LANG`` in their environment, ``RLIMIT_DATA``
set before V8 starts so ArrayBuffer/WebAssembly bombs fail cleanly). They
speak length-prefixed JSON frames over stdin/stdout, one request at a time.

What the parent enforces. The wall-clock deadline: it polls the worker's
stdout until ``timeout_ms`` plus a short grace. The worker normally reports a
timeout itself, with the console output so far, because every evaluation
there is cancelable and bounded by the same deadline; if it does not, or dies,
or sends a malformed or oversized frame, the parent SIGKILLs it, swaps in a
warm spare, starts a new spare, and raises ``HookTimeout``,
``HookMemoryLimit`` or ``HookCrashed``. Every result and error carries the
parent-measured ``duration_ms``.

Context reuse. Each hook ``version`` gets its own ``MiniRacer`` (its own
isolate, so no globals or secrets are shared between hooks), kept warm in the
worker in an LRU of 32: a warm call is a couple of cancelable evaluations,
well under a millisecond. Arguments and secrets are JSON copies made per call.
A context is thrown away after a timeout, memory exhaustion, a crash, or an
unusable result; a run only counts as finished once a follow-up evaluation
has got through, i.e. once nothing the hook left behind (a promise loop after
``cb``) is still running, and timers of a finished run never fire. Hook
errors (``cb(err)``, ``throw``) keep the context: denials are a normal path.
Results come back as JSON text produced in JS with a size check, never by
reading JS objects from Python.
"""

from .errors import (
    HookCrashed,
    HookError,
    HookMemoryLimit,
    HookResultError,
    HookSyntaxError,
    HookTimeout,
)
from .pool import HookPool, default_pool
from .records import Limits, RunResult, StorageSnapshot, StorageWrite

__all__ = [
    "HookCrashed",
    "HookError",
    "HookMemoryLimit",
    "HookPool",
    "HookResultError",
    "HookSyntaxError",
    "HookTimeout",
    "Limits",
    "RunResult",
    "StorageSnapshot",
    "StorageWrite",
    "default_pool",
]
