"""What one ``fetch`` costs a hook run, in one process, with caches warm and cold.

    .venv/bin/python bench/fetch_cost.py [--calls 2000]

Starts ``upstream_server.mjs`` and measures, on this thread, the CPU time
(``time.thread_time``) of each call of: a GET of ``/now`` (answered at
once) on a kept connection, written and read on a raw socket, then by
libcurl (one handle, no options), then by the host (``egress.perform``);
the ``--slow-upstream`` bench's async Hook without its fetch
(``nofetch-f``) and with it (``now-f``), run by the in-process runtime. Each
is measured twice: back to back, each call after the same call ("in a
loop": its code and data still in the CPU's caches), and "cold", each call
after 32 MB of memory were written and a 3,000-entry dict was encoded to
JSON (outside the timing), as a server's other tokens leave the caches
between one token's fetch and the next. The upstream runs on the same
cores; its CPU is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pycurl

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from harness.tokens import wait_until_ready  # noqa: E402
from harness.upstream import fetching_script, running_upstream  # noqa: E402

from hooks.runtime import InProcessRuntime, Limits  # noqa: E402
from hooks.runtime.egress import EgressPolicy, FetchRequest, perform  # noqa: E402

ARG_NAMES = ("client", "scope", "audience", "context")
PAYLOAD = {
    "client": {"tenant": "bench", "id": "c", "name": "Bench", "metadata": {}},
    "scope": ["read:data"],
    "audience": "https://api.example.com/",
    "context": {"ip": "203.0.113.1", "body": {}},
}
EVICTED_BYTES = 32 << 20
BLOCK = 100  # calls of one case in a row, each way
_memory = bytearray(EVICTED_BYTES)
_document = {f"key{n}": [n, str(n) * 5, {"n": n}] for n in range(3000)}


def evict() -> None:
    """Leave the caches as other work would: write over 32 MB, run other code."""
    _memory[::64] = bytes(EVICTED_BYTES // 64)
    json.loads(json.dumps(_document))


def cases(upstream: str) -> dict[str, Callable[[], object]]:
    runtime = InProcessRuntime()
    policy = EgressPolicy.from_text(allow="127.0.0.1:*", owner="bench")
    limits = Limits()

    def hook(script: str) -> Callable[[], object]:
        return lambda: runtime.run(
            context_key=script,
            script=script,
            arg_names=ARG_NAMES,
            payload=PAYLOAD,
            secrets={},
            storage=None,
            limits=limits,
            egress=policy,
        )

    host, _, port = upstream.removeprefix("http://").partition(":")
    kept = socket.create_connection((host, int(port)))
    asked = f"GET /now HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    def raw() -> None:
        kept.sendall(asked)
        answer = b""
        while not answer.endswith(b"}"):  # the upstream's JSON body ends the answer
            answer += kept.recv(65536)

    curl = pycurl.Curl()
    curl.setopt(pycurl.URL, f"{upstream}/now")
    curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)

    return {
        "a raw socket": raw,
        "libcurl, no options": curl.perform,
        "the host's request (egress.perform)": lambda: perform(
            FetchRequest("GET", f"{upstream}/now", []), policy, time.monotonic() + 5
        ),
        "Hook without fetch (nofetch-f)": hook(fetching_script(None)),
        "Hook with one fetch (now-f)": hook(fetching_script(f"{upstream}/now")),
    }


def cpu_us(call: Callable[[], object]) -> float:
    started = time.thread_time()
    call()
    return (time.thread_time() - started) * 1e6


def measure(calls: int, upstream: str) -> dict[str, dict[str, float]]:
    """Median CPU µs per call of each case, in a loop and cold (interleaved)."""
    measured = cases(upstream)
    samples: dict[str, dict[str, list[float]]] = {
        name: {"loop": [], "cold": []} for name in measured
    }
    for call in measured.values():  # connections opened, hooks compiled
        for _ in range(100):
            call()
    for _ in range(max(calls // BLOCK, 1)):
        for name, call in measured.items():
            for _ in range(BLOCK):
                samples[name]["loop"].append(cpu_us(call))
            for _ in range(BLOCK):
                evict()
                samples[name]["cold"].append(cpu_us(call))
    return {
        name: {mode: statistics.median(values) for mode, values in modes.items()}
        for name, modes in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=2000, help=f"calls of each case, each way (by {BLOCK}s)"
    )
    options = parser.parse_args()
    load = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="fetch-cost-") as workdir,
        running_upstream(Path(workdir)) as (upstream, server),
    ):
        wait_until_ready(server, f"{upstream}/now", timeout=30)
        calls = max(options.calls // BLOCK, 1) * BLOCK
        medians = measure(calls, upstream)
    print(
        f"CPU µs per call, median of {calls} (this thread; the upstream not counted); "
        f"load average {load:.1f} on {os.cpu_count()} cores when it started"
    )
    print("| call | in a loop | cold |")
    print("|---|---:|---:|")
    for name, modes in medians.items():
        print(f"| {name} | {modes['loop']:.0f} | {modes['cold']:.0f} |")
    without = medians["Hook without fetch (nofetch-f)"]
    with_fetch = medians["Hook with one fetch (now-f)"]
    print(
        f"A fetch adds {with_fetch['loop'] - without['loop']:.0f} µs in a loop, "
        f"{with_fetch['cold'] - without['cold']:.0f} µs cold."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
