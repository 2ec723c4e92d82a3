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
  ``Limits.max_result_bytes``.
- :class:`HookTimeout`: the wall-clock deadline or (:class:`HookCpuLimit`)
  the CPU budget ran out; :class:`HookStalled`, a kind of timeout that
  needs no waiting: the hook
  returned, nothing it started is left to run, and it never called back.
- :class:`HookMemoryLimit`: the context's memory limit.
- :class:`HookCrashed`: the engine or the worker process failed for a reason
  that could not be attributed to the hook's time or memory.
- :class:`HookRefused`: the hook was not run at all: its tenant already has
  as many runs going as it may (:class:`HookBusy`), or it kept timing out and
  its breaker is open for a cool-down (:class:`HookSuspended`).
"""

from __future__ import annotations

from typing import Any


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
        fetches: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.line = line
        self.column = column
        self.console = console
        self.duration_ms = duration_ms
        self.fetches = fetches  # the run's requests, as RunResult.fetches

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        return f"{self.name}: {self.message}{where}"


class HookSyntaxError(HookError):
    """The script does not compile; ``line`` and ``column`` locate the problem."""


class HookResultError(HookError):
    """The hook's result is not JSON-serialisable or is too large."""


class HookTimeout(HookError):
    """The hook did not finish within its wall-clock deadline or CPU budget."""


class HookCpuLimit(HookTimeout):
    """The hook used up its CPU budget: a loop, or work no token needs."""


class HookStalled(HookTimeout):
    """The hook returned without calling back, and nothing is left that could."""


class HookMemoryLimit(HookError):
    """The hook ran out of memory."""


class HookCrashed(HookError):
    """The engine or the worker running the hook failed."""


class HookRefused(HookError):
    """The hook was not run; the caller may try again later."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, name=type(self).__name__)
        self.retry_after_s = retry_after_s


class HookBusy(HookRefused):
    """The tenant already has as many hook runs going as it may."""


class HookSuspended(HookRefused):
    """The hook's breaker is open after repeated timeouts or memory failures."""
