"""Typed failures of a hook run.

Every failure is a :class:`HookError`; callers that only need "the hook failed,
here is why" catch that. The subclasses say who is to blame and how a caller
should report it:

- :class:`HookError` itself: the hook decided to fail, ``cb(err)``, ``throw``
  or a rejected promise. ``name`` is the error's class name (``Error``,
  ``InvalidScopeError``, ``InvalidRequestError``, ``ServerError``,
  ``TypeError``...), ``line``/``column`` point into the hook's own script.
- :class:`HookSyntaxError`: the script does not compile.
- :class:`HookResultError`: the hook finished, but its result cannot be used:
  not JSON-serialisable (BigInt, cycles, a throwing ``toJSON``) or larger than
  ``Limits.max_result_bytes``. A programming error in the hook, not a crash, so
  it is not a :class:`HookCrashed`.
- :class:`HookTimeout`: the wall-clock deadline passed, including a hook that
  never calls back or keeps running after it did.
- :class:`HookMemoryLimit`: the V8 heap limit, the worker's data limit, or an
  allocation failure (``RangeError: Array buffer allocation failed``).
- :class:`HookCrashed`: the worker process died or broke the protocol for a
  reason that could not be attributed to memory.
"""

from __future__ import annotations

from .records import StorageWrite


class HookError(Exception):
    """The hook failed. Base class of every runtime failure."""

    def __init__(
        self,
        message: str,
        *,
        name: str = "Error",
        line: int | None = None,
        column: int | None = None,
        console: str = "",
        duration_ms: float = 0.0,
        storage_write: StorageWrite | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.line = line
        self.column = column
        self.console = console
        self.duration_ms = duration_ms
        # A storage write made before the hook failed: webtask persists writes as
        # they happen, so the caller may persist it too.
        self.storage_write = storage_write

    def __str__(self) -> str:
        where = f" (hook.js:{self.line}:{self.column})" if self.line is not None else ""
        return f"{self.name}: {self.message}{where}"


class HookSyntaxError(HookError):
    """The script does not compile; ``line`` and ``column`` locate the problem."""


class HookResultError(HookError):
    """The hook's result is not JSON-serialisable or is too large."""


class HookTimeout(HookError):
    """The hook did not finish before its deadline."""


class HookMemoryLimit(HookError):
    """The hook ran out of memory (heap limit, data limit or allocation failure)."""


class HookCrashed(HookError):
    """The worker running the hook died or stopped speaking the protocol."""
