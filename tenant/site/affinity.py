"""Each server worker on a CPU of its own (``TESSERA_PIN_WORKERS``).

A worker computes one token request at a time (its compute gate) on many
threads, so that a hook waiting on its upstream holds up nobody else. Left
to the scheduler, those threads wake each other on whichever CPU is free,
and each hand-over (the gate, the GIL) goes from one CPU to the other: on
the bench's 2 cores a token cost 15-20 % more CPU with 32 threads than with
one. Pinned, every thread of a worker shares its CPU's caches and the
hand-overs stay on it (bench/RESULTS.md, "Slow upstream").

A worker claims a CPU by binding an abstract Unix socket named after the
server (its parent process) and the CPU: the kernel lets one process hold a
name and frees it when that process ends, so a respawned worker takes the
CPU its predecessor left, and a worker that finds every CPU taken (more
workers than CPUs) is not pinned at all.
"""

from __future__ import annotations

import contextlib
import os
import socket

_claims: list[socket.socket] = []  # held for the life of the process


def pin_to_a_cpu_of_its_own() -> int | None:
    """Pin every thread of this process (and those it starts later) to the
    first CPU no sibling worker holds; that CPU, or None."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    server = os.getppid()
    for cpu in allowed:
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(f"\0tessera-server-{server}-cpu-{cpu}")
        except OSError:
            claim.close()
            continue
        _claims.append(claim)
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setaffinity(int(task), {cpu})
        return cpu
    return None
