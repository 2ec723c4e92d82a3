"""Hooks run in worker processes (``TESSERA_HOOK_ISOLATION=process``).

For operators who host tenants they do not trust: the workers run the same
engine as the in-process runtime, but hold none of the server's secrets (their
environment is ``PATH`` and ``LANG`` only) and a crash of the engine costs a
worker, not the server. The pool owns the deadline: it writes a request,
polls the worker's stdout until ``timeout_ms`` plus a short grace (the worker
normally reports a timeout itself, with the console output so far), and on
overrun, death or a broken frame it SIGKILLs the worker, puts a warm spare in
its place, starts a new spare, and raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import engine, replies
from . import worker as protocol
from .egress import EgressPolicy
from .errors import HookCrashed, HookError, HookMemoryLimit, HookTimeout
from .inprocess import check_script_size, request_json
from .npm import Packages, default_store
from .records import Limits, RunResult, StorageSnapshot

WORKER_SCRIPT = Path(protocol.__file__)
# After the deadline, how long the worker gets to report the timeout itself
# (it only has to read back the console output of the interrupted run).
GRACE_S = 0.5
STARTUP_TIMEOUT_S = 30.0
MAX_CONTEXTS = 256
STDERR_KEPT = 8192


class _WorkerLost(Exception):
    """The worker died, overran its deadline, or broke the protocol."""

    def __init__(self, error: HookError) -> None:
        super().__init__(error.message)
        self.error = error


class _Worker:
    """One worker process; used by one thread at a time (``busy``)."""

    def __init__(self, *, data_limit_mb: int) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 -- our own interpreter and file, no shell
            [
                sys.executable,
                "-I",
                str(WORKER_SCRIPT),
                "--data-limit-mb",
                str(data_limit_mb),
                "--max-contexts",
                str(MAX_CONTEXTS),
            ],
            # Nothing of the web process's environment (SECRET_KEY, DATABASE_URL...).
            env={
                "PATH": os.environ.get("PATH", os.defpath),
                "LANG": os.environ.get("LANG", "C.UTF-8"),
                # Where require() reads npm packages (not a secret).
                "TESSERA_NPM_STORE": str(default_store()),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        self._err = self.proc.stderr.fileno()
        for fd in (self._in, self._out, self._err):
            os.set_blocking(fd, False)
        self._poll = select.poll()
        self._poll.register(self._out, select.POLLIN)
        self._poll.register(self._err, select.POLLIN)
        self._buffer = bytearray()
        self._stderr: deque[bytes] = deque()
        self._stderr_size = 0
        self.ready = False
        self.busy = False
        # Mirrors the worker's warm-context LRU so scripts are sent only when
        # the worker lacks them; a wrong guess costs one "missing" round trip.
        self.warm: OrderedDict[tuple[Any, ...], None] = OrderedDict()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def poll_ready(self, timeout_s: float) -> bool:
        """Consume the worker's ready frame if it arrives within ``timeout_s``."""
        if not self.ready:
            meta, _ = self._receive(time.monotonic() + timeout_s, limit=1 << 16, quiet=True)
            if meta is not None:
                self.ready = meta.get("status") == protocol.READY
                if not self.ready:
                    raise self._lost(HookCrashed("the hook worker did not start properly"))
        return self.ready

    def call(
        self, meta: dict[str, Any], blob: bytes, deadline: float, limit: int
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request and return the reply; raises ``_WorkerLost``."""
        self._send(protocol.pack_frame(meta, blob), deadline)
        reply, value = self._receive(deadline, limit=limit, quiet=False)
        assert reply is not None
        return reply, value

    def _send(self, frame: bytes, deadline: float) -> None:
        view = memoryview(frame)
        while view:
            try:
                view = view[os.write(self._in, view) :]
            except BlockingIOError:
                self._wait(deadline, select.POLLOUT, self._in)
            except BrokenPipeError:
                raise self._lost(None) from None

    def _wait(self, deadline: float, events: int, fd: int) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._lost(HookTimeout("the hook did not finish in time", name="HookTimeout"))
        poller = select.poll()
        poller.register(fd, events)
        poller.poll(remaining * 1000)

    def _receive(
        self, deadline: float, *, limit: int, quiet: bool
    ) -> tuple[dict[str, Any] | None, bytes]:
        """Read one frame. With ``quiet``, a passed deadline returns (None, b"")."""
        header = protocol.FRAME_HEADER
        while True:
            buffer = self._buffer
            if len(buffer) >= header.size:
                meta_len, blob_len = header.unpack_from(buffer)
                if meta_len + blob_len > limit:
                    raise self._lost(HookCrashed("the hook worker sent an oversized reply"))
                end = header.size + meta_len + blob_len
                if len(buffer) >= end:
                    try:
                        meta = json.loads(buffer[header.size : header.size + meta_len])
                    except ValueError:
                        raise self._lost(
                            HookCrashed("the hook worker sent a malformed reply")
                        ) from None
                    blob = bytes(buffer[header.size + meta_len : end])
                    del buffer[:end]
                    return meta, blob
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if quiet:
                    return None, b""
                raise self._lost(HookTimeout("the hook did not finish in time", name="HookTimeout"))
            for fd, _ in self._poll.poll(remaining * 1000):
                try:
                    chunk = os.read(fd, 1 << 20)
                except BlockingIOError:
                    continue  # spurious wake-up
                if fd == self._err:
                    self._keep_stderr(chunk)
                elif chunk:
                    buffer += chunk
                else:
                    raise self._lost(None)

    def _keep_stderr(self, chunk: bytes) -> None:
        if not chunk:
            self._poll.unregister(self._err)
            return
        self._stderr.append(chunk)
        self._stderr_size += len(chunk)
        while self._stderr_size - len(self._stderr[0]) >= STDERR_KEPT:
            self._stderr_size -= len(self._stderr.popleft())

    def _lost(self, error: HookError | None) -> _WorkerLost:
        """Kill the worker; explain its end (``error`` None: it died by itself)."""
        if error is None:
            # It closed its pipe: dead or dying. Once it is gone, stderr is complete.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=2)
            with contextlib.suppress(OSError):
                self._keep_stderr(os.read(self._err, 1 << 16))
            if b"out of memory" in b"".join(self._stderr).lower():
                error = HookMemoryLimit(
                    "the hook exhausted the worker's memory", name="HookMemoryLimit"
                )
            else:
                error = HookCrashed(
                    f"the hook worker exited unexpectedly (code {self.proc.returncode})",
                    name="HookCrashed",
                )
        self.kill()
        return _WorkerLost(error)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # unkillable (D state): leave it
            self.proc.wait(timeout=5)
        self._close_pipes()

    def stop(self) -> None:
        """Ask the worker to exit (EOF on stdin); kill it if it lingers."""
        self._close_pipes()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def forget(self) -> None:
        """After fork: the process belongs to our parent. Drop our pipe copies."""
        self._close_pipes()
        self.proc.returncode = 0  # not our child: never wait for it


class HookPool:
    """Runs hooks in ``size`` worker processes. Thread-safe and fork-safe.

    Creating a pool starts nothing; workers start on first use.
    """

    def __init__(self, size: int = 2, *, data_limit_mb: int = 1024) -> None:
        self._size = max(1, size)
        self._data_limit_mb = data_limit_mb
        self._reset()
        _pools.add(self)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._workers: list[_Worker] = []
        self._spare: _Worker | None = None

    def _after_fork(self) -> None:
        for worker in [*self._workers, *([self._spare] if self._spare else [])]:
            worker.forget()
        self._reset()

    # ---- public interface -------------------------------------------------

    isolation = "process"

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
        """As ``InProcessRuntime.run``, in a worker, which also makes the run's
        requests. ``context_key`` must be a tuple of JSON scalars (it crosses
        the pipe)."""
        check_script_size(script, limits)
        request = request_json(arg_names, payload, secrets, storage, cache).encode()
        key = tuple(context_key) if isinstance(context_key, tuple) else (context_key,)
        warm_key = (*key, limits.context_shape())
        meta = {
            "op": "run",
            "key": list(key),
            "script": None,
            "packages": None,
            "limits": _limits_meta(limits),
            "egress": None if egress is None else egress.to_meta(),
        }
        reply, value, duration_ms = self._call(
            meta, request, limits, key=warm_key, script=script, packages=packages
        )
        return replies.decode(
            reply, value.decode(), limits=limits, duration_ms=duration_ms, storage=storage
        )

    def check(self, *, script: str, limits: Limits, packages: Packages | None = None) -> str:
        """As ``InProcessRuntime.check``, in a worker."""
        check_script_size(script, limits)
        meta = {
            "op": "check",
            "script": script,
            "packages": None if packages is None else packages.to_meta(),
            "limits": _limits_meta(limits),
        }
        reply, _, duration_ms = self._call(meta, b"", limits, key=None, script=script)
        if reply.get("status") != engine.OK:
            raise replies.failure(
                reply,
                limits,
                console=replies.console_of(reply, limits),
                duration_ms=duration_ms,
            )
        return str(reply["kind"])

    def close(self) -> None:
        """Stop all workers. The pool starts new ones if it is used again."""
        with self._cond:
            workers = [*self._workers, *([self._spare] if self._spare else [])]
            self._workers, self._spare = [], None
            # A worker still serving another thread is stopped when released.
            idle = [worker for worker in workers if not worker.busy]
        for worker in idle:
            worker.stop()

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for operations and tests)."""
        with self._cond:
            return [worker.pid for worker in self._workers]

    # ---- internals ------------------------------------------------------------

    def _call(
        self,
        meta: dict[str, Any],
        blob: bytes,
        limits: Limits,
        *,
        key: tuple[Any, ...] | None,
        script: str,
        packages: Packages | None = None,
    ) -> tuple[dict[str, Any], bytes, float]:
        timeout_s = limits.timeout_ms / 1000
        reply_limit = (
            limits.max_result_bytes
            + 6 * (limits.max_log_bytes + limits.max_storage_bytes)
            + (1 << 20)
        )
        worker = self._acquire(key, timeout_s)
        healthy = False
        start = time.monotonic()
        try:
            if not worker.poll_ready(STARTUP_TIMEOUT_S):
                raise HookCrashed("the hook worker did not start in time", name="HookCrashed")
            start = time.monotonic()
            deadline = start + timeout_s + GRACE_S
            # The script and its packages go only to a worker that lacks the context.
            packages_meta = None if packages is None else packages.to_meta()
            if key is not None and key not in worker.warm:
                meta["script"], meta["packages"] = script, packages_meta
            reply, value = worker.call(meta, blob, deadline, reply_limit)
            if reply.get("status") == protocol.MISSING:
                meta["script"], meta["packages"] = script, packages_meta
                reply, value = worker.call(meta, blob, deadline, reply_limit)
            duration_ms = (time.monotonic() - start) * 1000
            if key is not None:
                _remember(worker, key, warm=bool(reply.get("warm")))
            healthy = not reply.get("exit")
            return reply, value, duration_ms
        except _WorkerLost as lost:
            error = lost.error
            if isinstance(error, HookTimeout):
                error.message = f"the hook did not finish within {limits.timeout_ms} ms"
            elif isinstance(error, HookMemoryLimit):
                error.message = f"the hook exceeded its memory limit ({limits.memory_mb} MB)"
            error.args = (error.message,)
            error.duration_ms = (time.monotonic() - start) * 1000
            raise error from None
        finally:
            self._release(worker, healthy)

    def _acquire(self, key: tuple[Any, ...] | None, wait_s: float) -> _Worker:
        if self._pid != os.getpid():  # forked without os.fork (no at-fork hook ran)
            self._after_fork()
        give_up = time.monotonic() + wait_s
        with self._cond:
            while len(self._workers) < self._size:
                self._workers.append(self._spawn())
            while True:
                for index, worker in enumerate(self._workers):
                    if not worker.busy and not worker.alive():  # died while idle
                        worker.kill()
                        self._workers[index] = self._replacement()
                idle = [worker for worker in self._workers if not worker.busy]
                if idle:
                    chosen = max(idle, key=lambda worker: _preference(worker, key))
                    chosen.busy = True
                    return chosen
                remaining = give_up - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    raise HookTimeout("every hook worker is busy", name="HookTimeout")

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            worker.kill()
        with self._cond:
            worker.busy = False
            retired = worker not in self._workers  # the pool was closed meanwhile
            if not healthy and not retired:
                # If no replacement starts now, _acquire finds the dead one and retries.
                with contextlib.suppress(HookCrashed):
                    self._workers[self._workers.index(worker)] = self._replacement()
            self._cond.notify()
        if healthy and retired:
            worker.stop()

    def _replacement(self) -> _Worker:
        """The warm spare if there is one; then start a new spare, so the next
        failure does not wait for a start-up either."""
        spare, self._spare = self._spare, None
        if spare is not None and not spare.alive():
            spare.kill()
            spare = None
        replacement = spare or self._spawn()
        with contextlib.suppress(HookCrashed):
            self._spare = self._spawn()
        return replacement

    def _spawn(self) -> _Worker:
        try:
            return _Worker(data_limit_mb=self._data_limit_mb)
        except OSError as error:  # e.g. out of file descriptors or processes
            raise HookCrashed(
                f"could not start a hook worker: {error}", name="HookCrashed"
            ) from None


def _preference(worker: _Worker, key: tuple[Any, ...] | None) -> tuple[bool, bool]:
    """Prefer a started worker that has this hook warm."""
    try:
        ready = worker.poll_ready(0)
    except _WorkerLost:
        ready = False  # dead before it started; the caller will find out and replace it
    return ready, key is not None and key in worker.warm


def _remember(worker: _Worker, key: tuple[Any, ...], *, warm: bool) -> None:
    """Mirror the worker's warm-context LRU (same size, same order of events)."""
    if warm:
        worker.warm[key] = None
        worker.warm.move_to_end(key)
        while len(worker.warm) > MAX_CONTEXTS:
            worker.warm.popitem(last=False)
    else:
        worker.warm.pop(key, None)


def _limits_meta(limits: Limits) -> dict[str, Any]:
    return dataclasses.asdict(limits)


_pools: weakref.WeakSet[HookPool] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for pool in list(_pools):
        pool._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
