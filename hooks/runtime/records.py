"""The values that cross the runtime's interface: limits in, results out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Callers derive them from tenant settings."""

    timeout_ms: int = 5000  # wall clock; callers cap at 20000
    cpu_ms: int = 500  # CPU time a run may use, module body included
    memory_mb: int = 128  # the context's allocator limit
    max_script_bytes: int = 100_000
    max_result_bytes: int = 100_000  # JSON of the value passed to cb
    max_log_bytes: int = 16_384  # console output kept; the rest is cut and marked
    max_storage_bytes: int = 500_000

    def context_shape(self) -> tuple[int, ...]:
        """The limits a warm context is made with (memory and sizes); the time
        budgets are per run, so a context serves runs with any of them (a
        flow's later steps get what is left of its one deadline)."""
        return (
            self.memory_mb,
            self.max_script_bytes,
            self.max_result_bytes,
            self.max_log_bytes,
            self.max_storage_bytes,
        )


@dataclass(frozen=True)
class StorageSnapshot:
    """The hook's persistent storage as the caller loaded it."""

    data: Any
    etag: str | None


@dataclass(frozen=True)
class StorageWrite:
    """A ``storage.set`` the hook made; the caller persists it.

    Unless ``force`` is set, the caller must refuse the write when the stored
    etag no longer equals ``base_etag`` (someone else wrote in between).
    """

    data: Any
    force: bool
    base_etag: str | None


@dataclass
class RunResult:
    """A successful run."""

    value: Any  # JSON-decoded value given to cb (or returned by an async hook); None for none
    console: str  # captured console output, bounded by Limits.max_log_bytes
    duration_ms: float  # measured by the caller, from the call to the reply
    storage_write: StorageWrite | None
    kind: str = "hook"  # what ran: a Hook ("hook") or an Auth0 Action ("action")
    # An Action's api.cache changes: key -> {"value", "expires_at"} (ms), or None
    # for a delete. The caller applies them to the hook's shared cache.
    cache_writes: dict[str, Any] | None = None
    # The run's fetches, as logged: method, URL (secrets redacted), status or
    # error, duration_ms, bytes.
    fetches: list[dict[str, Any]] | None = None


def script_key(script: str) -> str:
    """Names a script's text: warm contexts are kept per key (with whatever
    else the caller adds to it)."""
    return hashlib.sha256(script.encode(errors="surrogatepass")).hexdigest()
