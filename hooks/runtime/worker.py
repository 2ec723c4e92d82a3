"""The hook worker process (``TESSERA_HOOK_ISOLATION=process``), and the frame
format it shares with the pool.

The pool starts this file by path, ``python -I worker.py --data-limit-mb N
--max-contexts N``, with only ``PATH`` and ``LANG`` in its environment, so it
sees neither the project nor the server's secrets. It runs the same engine as
the in-process runtime (``engine.py``, imported by path below), one request at
a time, on its main thread.

Protocol: both directions carry frames ``>II`` (meta length, blob length),
then the meta JSON, then the blob. The worker first sends ``{"status":
"ready"}``, then answers each request with exactly one reply.

- ``{"op": "run", "key", "script"|null, "packages"|null, "limits"}`` with
  the request JSON as blob. The reply is the engine's (blob: the value's
  JSON), or ``missing``: the key is not warm here and no script was sent;
  send it again with it (and its packages: ``npm.Packages.to_meta()``).
- ``{"op": "check", "script", "packages", "limits"}``: load in a throwaway
  context.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

Meta = dict[str, Any]

FRAME_HEADER = struct.Struct(">II")
READY = "ready"
MISSING = "missing"


def pack_frame(meta: Meta, blob: bytes = b"") -> bytes:
    """Encode one protocol frame."""
    head = json.dumps(meta, separators=(",", ":")).encode()
    return FRAME_HEADER.pack(len(head), len(blob)) + head + blob


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


# Of the process's RLIMIT_DATA, what its warm sandboxes may hold together;
# the rest is Python's, the engine's code and the allocator's slack.
WARM_SHARE = 0.5


def serve(request_fd: int, reply_fd: int, *, max_contexts: int, warm_bytes: int) -> None:
    from hooks_runtime import engine  # type: ignore[import-not-found]
    from hooks_runtime.egress import EgressPolicy, Network  # type: ignore[import-not-found]
    from hooks_runtime.npm import Packages  # type: ignore[import-not-found]
    from hooks_runtime.records import Limits  # type: ignore[import-not-found]

    sandboxes: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def reply(meta: Meta, blob: bytes = b"") -> None:
        view = memoryview(pack_frame(meta, blob))
        while view:
            view = view[os.write(reply_fd, view) :]

    reply({"status": READY, "pid": os.getpid()})
    while True:
        head = _read_exactly(request_fd, FRAME_HEADER.size)
        if head is None:
            return  # the pool closed our stdin
        meta_len, blob_len = FRAME_HEADER.unpack(head)
        request = json.loads(_read_exactly(request_fd, meta_len) or b"{}")
        blob = _read_exactly(request_fd, blob_len) or b""
        limits = Limits(**request["limits"])
        packages = Packages.from_meta(request["packages"]) if request.get("packages") else None
        if request["op"] == "check":
            reply(engine.check(request["script"], limits, packages))
            continue
        key = (*request["key"], *limits.context_shape())
        budget = engine.Budget.start(limits)
        engine.make_room(sandboxes, key, limits, warm_bytes)
        sandbox = sandboxes.get(key)
        if sandbox is None:
            if request.get("script") is None:
                reply({"status": MISSING})
                continue
            sandbox = engine.Sandbox.open(request["script"], limits, budget, packages)
            if sandbox.failed is not None:
                reply(sandbox.failed)
                continue
            sandboxes[key] = sandbox
            while len(sandboxes) > max_contexts:
                sandboxes.popitem(last=False)
        else:
            sandboxes.move_to_end(key)
        egress = request.get("egress")
        network = Network(None if egress is None else EgressPolicy.from_meta(egress))
        result, value = sandbox.run(blob.decode(), budget, network)
        warm = sandbox.failed is None
        if not warm:
            sandboxes.pop(key, None)
        reply({**result, "warm": warm}, value.encode())


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tessera hook worker (started by HookPool)")
    parser.add_argument("--data-limit-mb", type=int, default=1024)
    parser.add_argument("--max-contexts", type=int, default=256)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> None:
    import importlib.util
    import resource
    import signal

    args = _parse_args(argv)
    # Defence in depth under each context's own memory limit.
    data_limit = args.data_limit_mb << 20
    resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
    # The pool stops workers by closing stdin; a terminal's Ctrl-C is for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol pipes private: anything printed goes to stderr.
    request_fd, reply_fd = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    # The runtime package, by path: this process must not import Django or
    # the project (it runs isolated, -I, with no project on sys.path).
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "hooks_runtime", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["hooks_runtime"] = package
    spec.loader.exec_module(package)
    serve(
        request_fd,
        reply_fd,
        max_contexts=args.max_contexts,
        warm_bytes=int(data_limit * WARM_SHARE),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
