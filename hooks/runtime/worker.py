"""The hook worker process, and the frame format it shares with the pool.

The pool starts this file by path, ``python -I worker.py --data-limit-mb N
--max-contexts N``, so it sees neither the project nor the parent's
environment. At module level it imports only the standard library (the parent
imports it for :func:`pack_frame`); ``py_mini_racer`` is imported after
``RLIMIT_DATA`` is set, so V8 starts under the limit.

Protocol: both directions carry frames ``>II`` (meta length, blob length),
then the meta JSON, then the blob. The worker first sends ``{"status":
"ready"}``, then answers each request with exactly one reply, one request at a
time.

- ``{"op": "run", "key", "script"|null, "timeout_ms", "memory_mb",
  "log_chars"}`` with the payload JSON as blob. Reply ``status`` is ``ok``
  (blob: the value's JSON), ``error``, ``syntax``, ``result``, ``timeout``,
  ``memory``, ``crash``, or ``missing`` (the key is not warm here and no script
  was sent: send it again with the script).
- ``{"op": "check", "script", "timeout_ms", "memory_mb"}``: compile only.

A reply may carry ``"exit": true``: a context could not be shut down in time,
and the worker exits after replying.

The event loop runs on the main thread and every ``MiniRacer`` is created on
it, so calls do not hop threads (FACTS.md). Every evaluation that can run user
code is cancelable and bounded by the request's deadline, and the result is
read back as a string the hook's JS produced, never by walking JS objects from
Python: a busy or looping isolate can delay a reply only until the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import struct
import sys
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    from py_mini_racer import MiniRacer

Meta = dict[str, Any]

FRAME_HEADER = struct.Struct(">II")

OK = "ok"
ERROR = "error"
SYNTAX = "syntax"
RESULT = "result"
TIMEOUT = "timeout"
MEMORY = "memory"
CRASH = "crash"
MISSING = "missing"
READY = "ready"

SANDBOX_JS = Path(__file__).with_name("sandbox.js")
# The module wrapper shares line 1 with the script, so line numbers match the
# user's file; only columns on line 1 move, by len(MODULE_PREFIX).
MODULE_PREFIX = "__tessera_host.load((function (exports, module) {"
MODULE_SUFFIX = "\n}))\n//# sourceURL=hook.js"
# For a compile-only check: the same wrapper, but the module body never runs.
CHECK_STUB = "var __tessera_host = { load: function () {} };"
COLLECT = "__tessera_host.collect()"
PENDING = "p"
# How long a context that is still running JS may take to shut down before the
# worker gives up on it and exits instead (the pool replaces the worker).
CLOSE_BUDGET_S = 0.2

_PARSE_HEADLINE = re.compile(r":(\d+): (\w*Error): ([^\n]*)")
_ALLOCATION_FAILURE = re.compile(r"allocat", re.IGNORECASE)


def pack_frame(meta: Meta, blob: bytes = b"") -> bytes:
    """Encode one protocol frame."""
    head = json.dumps(meta, separators=(",", ":")).encode()
    return FRAME_HEADER.pack(len(head), len(blob)) + head + blob


def _racer() -> ModuleType:
    import py_mini_racer

    return py_mini_racer


def _error(status: str, message: str, name: str, **extra: Any) -> Meta:
    return {"status": status, "error": {"name": name, "message": message, **extra}}


def _locate(error: Meta, script: str) -> Meta:
    """Turn a position in the wrapped module into one in the user's script."""
    line, column = error.get("line"), error.get("column")
    if isinstance(line, int) and isinstance(column, int):
        lines = script.split("\n")
        if line == 1:
            column -= len(MODULE_PREFIX)
        if line > len(lines):  # e.g. an unclosed brace reported at the wrapper's end
            line, column = len(lines), len(lines[-1]) + 1
        error["line"], error["column"] = line, max(column, 1)
    return error


def _syntax_error(exc: Exception, script: str) -> Meta:
    """Build a syntax reply from mini-racer's parse message.

    It reads ``<anonymous>:LINE: SyntaxError: MESSAGE``, then the source line,
    then carets under the offending token.
    """
    text = str(exc)
    match = _PARSE_HEADLINE.search(text)
    if match is None:
        return _error(SYNTAX, text.strip() or "syntax error", "SyntaxError")
    rows = text.split("\n")
    carets = rows[2] if len(rows) > 2 else ""
    column = carets.find("^") + 1 if "^" in carets else 1
    located = {"line": int(match.group(1)), "column": column}
    return _error(SYNTAX, match.group(3), match.group(2), **_locate(located, script))


class WarmContext:
    """One hook version's own V8 isolate and context, kept warm between runs."""

    def __init__(self, racer: MiniRacer, log_chars: int) -> None:
        self._racer: MiniRacer | None = racer
        self._log_chars = log_chars
        self.script = ""  # the loaded script, to turn error positions into the user's
        self._woken = asyncio.Event()
        self._notification = contextlib.ExitStack()
        self._log: memoryview | None = None

    @classmethod
    def open(cls, *, memory_mb: int, log_chars: int, prelude: str) -> WarmContext:
        """Create a context with the sandbox prelude installed (no user code yet)."""
        racer: MiniRacer = _racer().MiniRacer()
        racer.set_hard_memory_limit(memory_mb << 20)
        # mini-racer checks the hard limit after every GC, against a heap size
        # that still counts uncollected garbage (e.g. V8's compilation cache
        # keeps each run's source: every payload differs). Above half the
        # limit, V8 is told to collect under memory pressure, so that only
        # live data can fail a hook for memory.
        racer.set_soft_memory_limit(memory_mb << 19)
        context = cls(racer, log_chars)
        try:
            racer.eval(prelude)
            log = racer.eval(f"__tessera_host.init({int(log_chars)})")
            assert isinstance(log, memoryview)
            context._log = log
            # The wake-up call must not need the isolate on the Python side: a
            # hook may keep it busy right after calling back. mini-racer's
            # one-way notification only queues a Python callback (the public
            # wrap_py_function reads its arguments back through the isolate).
            engine = racer._ctx
            assert engine is not None
            js_notify = context._notification.enter_context(
                engine._register_js_notification(lambda _args: context._woken.set())
            )
            connect = racer.eval("(fn) => __tessera_host.connect(fn)")
            assert callable(connect)
            connect(js_notify)
        except BaseException:
            context.close()
            raise
        return context

    @property
    def racer(self) -> MiniRacer:
        assert self._racer is not None
        return self._racer

    async def load(self, script: str, deadline: float) -> Meta | None:
        """Compile and run the module body. None when loaded, else a reply."""
        self.script = script
        async with asyncio.timeout_at(deadline):
            try:
                status = await self.racer.eval_cancelable(MODULE_PREFIX + script + MODULE_SUFFIX)
            except _racer().JSParseException as exc:
                return _syntax_error(exc, script)
        if not status:
            return None
        assert isinstance(status, str)
        meta: Meta = json.loads(status)
        return {"status": ERROR, "error": _locate(meta["error"], script)}

    async def run(self, payload: str, deadline: float) -> str:
        """One invocation; returns the sandbox's envelope (meta, newline, value)."""
        self._woken.clear()
        racer = self.racer
        async with asyncio.timeout_at(deadline):
            await racer.eval_cancelable(f"__tessera_host.run({json.dumps(payload)})")
            # Queued behind the run and the microtasks it started: this also
            # proves nothing the hook left behind is still running.
            envelope = await racer.eval_cancelable(COLLECT)
            while envelope == PENDING:
                await self._woken.wait()
                self._woken.clear()
                envelope = await racer.eval_cancelable(COLLECT)
        assert isinstance(envelope, str)
        return envelope

    def memory_exhausted(self) -> bool:
        return self._racer is not None and self._racer.was_hard_memory_limit_reached()

    def console(self) -> tuple[str, bool]:
        """The console text of the current run and whether it was cut short.

        Read straight from the shared buffer, so this works while the isolate
        is still busy (e.g. after a timeout), but never after close().
        """
        log = self._log
        if log is None:
            return "", False
        used = min(int.from_bytes(log[0:4], "little"), self._log_chars)
        truncated = int.from_bytes(log[4:8], "little") != 0
        text = log[8 : 8 + 2 * used].tobytes().decode("utf-16-le", errors="replace")
        return text, truncated

    def close(self) -> None:
        """Stop any running JS and free the isolate. Idempotent."""
        self._log = None  # the buffer dies with the isolate
        racer, self._racer = self._racer, None
        self._notification.close()
        if racer is not None:
            racer.close()


class Worker:
    """Serves requests on the worker's stdin/stdout, one at a time."""

    def __init__(self, *, max_contexts: int, reply_fd: int) -> None:
        self._max_contexts = max_contexts
        self._reply_fd = reply_fd
        self._prelude = SANDBOX_JS.read_text(encoding="utf-8")
        self._contexts: OrderedDict[tuple[Any, ...], WarmContext] = OrderedDict()
        self._exit_after_reply = False

    def reply(self, meta: Meta, blob: bytes = b"") -> None:
        view = memoryview(pack_frame(meta, blob))
        while view:
            view = view[os.write(self._reply_fd, view) :]

    async def serve(self, reader: asyncio.StreamReader) -> None:
        # Starting V8 costs tens of milliseconds: pay it before saying ready.
        WarmContext.open(memory_mb=16, log_chars=1, prelude=self._prelude).close()
        self.reply({"status": READY, "pid": os.getpid()})
        while True:
            try:
                head = await reader.readexactly(FRAME_HEADER.size)
                meta_len, blob_len = FRAME_HEADER.unpack(head)
                request = json.loads(await reader.readexactly(meta_len))
                blob = await reader.readexactly(blob_len)
            except asyncio.IncompleteReadError:
                break  # the pool closed our stdin
            meta, value = await self.handle(request, blob)
            meta.setdefault("warm", False)  # is the request's key warm here now?
            if self._exit_after_reply:
                meta["exit"] = True
            self.reply(meta, value)
            if self._exit_after_reply:
                os._exit(0)
        for context in self._contexts.values():
            context.close()

    async def handle(self, request: Meta, blob: bytes) -> tuple[Meta, bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request["timeout_ms"] / 1000
        if request["op"] == "check":
            return await self.check(request, deadline), b""
        return await self.run(request, blob.decode(), deadline)

    async def check(self, request: Meta, deadline: float) -> Meta:
        racer: MiniRacer = _racer().MiniRacer()
        racer.set_hard_memory_limit(request["memory_mb"] << 20)
        script: str = request["script"]
        try:
            racer.eval(CHECK_STUB)
            async with asyncio.timeout_at(deadline):
                await racer.eval_cancelable(MODULE_PREFIX + script + MODULE_SUFFIX)
        except _racer().JSParseException as exc:
            return _syntax_error(exc, script)
        except TimeoutError:
            return _error(TIMEOUT, "the syntax check did not finish in time", "HookTimeout")
        except _racer().JSEvalException:
            pass  # compiled; only the throwaway stub misbehaved
        finally:
            await self.dispose(racer.close)
        return {"status": OK}

    async def run(self, request: Meta, payload: str, deadline: float) -> tuple[Meta, bytes]:
        key = tuple(request["key"])
        context = self._contexts.get(key)
        if context is not None:
            self._contexts.move_to_end(key)
        else:
            if request.get("script") is None:
                return {"status": MISSING}, b""
            context = WarmContext.open(
                memory_mb=request["memory_mb"],
                log_chars=request["log_chars"],
                prelude=self._prelude,
            )
            failure = await self.attempt(context, context.load(request["script"], deadline))
            if failure is not None:  # syntax error, top-level throw, timeout...
                if "console" not in failure:
                    failure["console"], failure["truncated"] = context.console()
                await self.dispose(context.close)
                return failure, b""
            self._contexts[key] = context
            while len(self._contexts) > self._max_contexts:
                self._contexts.popitem(last=False)[1].close()

        envelope_or_failure = await self.attempt(context, context.run(payload, deadline))
        if isinstance(envelope_or_failure, dict):
            self._contexts.pop(key, None)
            return envelope_or_failure, b""
        assert isinstance(envelope_or_failure, str)
        head, _, value = envelope_or_failure.partition("\n")
        try:
            outcome: Meta = json.loads(head)
        except ValueError:
            outcome = {"ok": False, "error": {"name": "HookCrashed", "kind": "protocol"}}
        console, truncated = context.console()
        meta: Meta = {"console": console, "truncated": truncated}
        if outcome.get("storage"):
            meta["storage"] = outcome["storage"]
        if outcome.get("ok") is True:
            meta["status"] = OK
            meta["warm"] = True
            return meta, value.encode()
        error: Meta = outcome.get("error") or {}
        meta["error"] = _locate(error, context.script)
        if error.get("kind") == "result":
            meta["status"] = RESULT
        elif error.get("kind") == "protocol":
            meta["status"] = CRASH
            error["message"] = "the hook sandbox returned a malformed outcome"
        elif error.get("name") == "RangeError" and _ALLOCATION_FAILURE.search(
            str(error.get("message", ""))
        ):
            meta["status"] = MEMORY
        else:
            # The hook chose to fail (cb(err), throw, rejection). Its context
            # stays warm: denials are a normal path, and recompiling on each
            # one would make them cost a context creation.
            meta["status"] = ERROR
            meta["warm"] = True
            return meta, b""
        self._contexts.pop(key, None)
        await self.dispose(context.close)
        return meta, b""

    async def attempt(self, context: WarmContext, work: Any) -> Any:
        """Await ``work``; on any failure dispose of the context, return a reply."""
        racer = _racer()
        try:
            return await work
        except TimeoutError:
            if context.memory_exhausted():
                failure = _error(MEMORY, "the hook exceeded its memory limit", "HookMemoryLimit")
            else:
                failure = _error(TIMEOUT, "the hook did not finish in time", "HookTimeout")
        except racer.JSOOMException:
            failure = _error(MEMORY, "the hook exceeded its memory limit", "HookMemoryLimit")
        except racer.JSEvalException as exc:
            failure = _error(CRASH, f"the hook sandbox failed: {exc}", "HookCrashed")
        console, truncated = context.console()
        failure.update(console=console, truncated=truncated)
        await self.dispose(context.close)
        return failure

    async def dispose(self, close: Any) -> None:
        """Close a context that may still be running JS, within CLOSE_BUDGET_S.

        Closing terminates the isolate's JS and joins its thread; a builtin
        that ignores termination (e.g. a huge Array.prototype.fill) could hold
        that join for seconds. Then the worker answers and exits instead.
        """
        loop = asyncio.get_running_loop()
        closing = loop.run_in_executor(None, close)
        try:
            await asyncio.wait_for(asyncio.shield(closing), CLOSE_BUDGET_S)
        except TimeoutError:
            self._exit_after_reply = True


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tessera hook worker (started by HookPool)")
    parser.add_argument("--data-limit-mb", type=int, default=1024)
    parser.add_argument("--max-contexts", type=int, default=32)
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace, request_fd: int, reply_fd: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(request_fd, "rb", buffering=0)
    )
    await Worker(max_contexts=args.max_contexts, reply_fd=reply_fd).serve(reader)


def main(argv: Sequence[str]) -> None:
    import resource
    import signal

    args = _parse_args(argv)
    # Before V8 starts: ArrayBuffers and WebAssembly memories live outside the
    # V8 heap limit, and this turns them into a clean RangeError.
    data_limit = args.data_limit_mb << 20
    resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
    # The pool stops workers by closing stdin; a terminal's Ctrl-C is for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol pipes private: anything printed goes to stderr.
    request_fd, reply_fd = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    _racer().init_mini_racer(ignore_duplicate_init=True)
    asyncio.run(_main(args, request_fd, reply_fd))


if __name__ == "__main__":
    main(sys.argv[1:])
