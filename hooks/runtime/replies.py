"""From an engine reply to a ``RunResult`` or a typed ``HookError``: one
decoding for both isolation modes."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from . import engine
from .errors import (
    HookCpuLimit,
    HookCrashed,
    HookError,
    HookMemoryLimit,
    HookResultError,
    HookStalled,
    HookSyntaxError,
    HookTimeout,
)
from .records import Limits, RunResult, StorageSnapshot, StorageWrite

_FAILURES: dict[str, type[HookError]] = {
    engine.ERROR: HookError,
    engine.SYNTAX: HookSyntaxError,
    engine.RESULT: HookResultError,
    engine.TIMEOUT: HookTimeout,
    engine.STALLED: HookStalled,
    engine.MEMORY: HookMemoryLimit,
    engine.CRASH: HookCrashed,
}


def decode(
    reply: Mapping[str, Any],
    value: str,
    *,
    limits: Limits,
    duration_ms: float,
    storage: StorageSnapshot | None,
) -> RunResult:
    """The run's result; raises the ``HookError`` the reply describes."""
    console = console_of(reply, limits)
    if reply.get("status") != engine.OK:
        raise failure(reply, limits, console=console, duration_ms=duration_ms)
    try:
        decoded = _value_of(value) if value else None
    except ValueError:
        raise HookCrashed(
            "the hook sandbox returned a malformed result",
            name="HookCrashed",
            console=console,
            duration_ms=duration_ms,
        ) from None
    return RunResult(
        value=decoded,
        console=console,
        duration_ms=duration_ms,
        storage_write=storage_write_of(reply, storage),
        kind=str(reply.get("kind") or engine.HOOK),
        cache_writes=reply.get("cache"),
        fetches=reply.get("fetches"),
    )


# The C scanner behind json.loads, minus its two Python frames: the value is
# the prelude's own JSON.stringify output, with no whitespace around it.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _value_of(text: str) -> Any:
    """The hook's value from its JSON text; ``ValueError`` if malformed."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:  # no value where one starts
        raise ValueError("no JSON value") from None
    if end != len(text):
        raise ValueError("data after the JSON value")
    return value


def console_of(reply: Mapping[str, Any], limits: Limits) -> str:
    console = str(reply.get("console") or "")
    truncated = bool(reply.get("truncated"))
    if not (console or truncated):
        return ""
    encoded = console.encode(errors="replace")
    if len(encoded) > limits.max_log_bytes:
        console = encoded[: limits.max_log_bytes].decode(errors="ignore")
        truncated = True
    if truncated:
        console += "\n[console output truncated]\n"
    return console


def storage_write_of(
    reply: Mapping[str, Any], storage: StorageSnapshot | None
) -> StorageWrite | None:
    write = reply.get("storage")
    if not write:
        return None
    return StorageWrite(
        data=json.loads(write["json"]),
        force=bool(write.get("force")),
        base_etag=None if storage is None else storage.etag,
    )


def failure(
    reply: Mapping[str, Any], limits: Limits, *, console: str = "", duration_ms: float = 0.0
) -> HookError:
    """The typed error a failed reply describes, with the limit it hit named."""
    error = reply.get("error") or {}
    cls = _FAILURES.get(str(reply.get("status")), HookCrashed)
    line, column = error.get("line"), error.get("column")
    message = str(error.get("message") or "the hook failed")
    if cls is HookTimeout and error.get("cpu"):
        cls, message = HookCpuLimit, f"the hook used up its CPU budget of {limits.cpu_ms} ms"
    elif cls is HookTimeout:
        message = f"the hook did not finish within {limits.timeout_ms} ms"
    elif cls is HookMemoryLimit:
        message = f"the hook exceeded its memory limit ({limits.memory_mb} MB)"
    return cls(
        message,
        name=str(error.get("name") or "Error"),
        line=line if isinstance(line, int) else None,
        column=column if isinstance(column, int) else None,
        console=console,
        duration_ms=duration_ms,
        fetches=reply.get("fetches"),
    )
