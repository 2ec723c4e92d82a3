"""TESSERA_PIN_WORKERS: the README's granian command (two workers), each
worker with every one of its threads on a CPU of its own; a worker that
dies is replaced on the CPU it left; without the setting, nothing is pinned."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.servers import ScratchDatabase, free_port, granian_server, server_env

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs to choose from"
)


def workers(server: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
    return sorted(int(pid) for pid in children.split())


def cpus_of_threads(pid: int) -> set[frozenset[int]]:
    """Each thread's allowed CPUs, once each."""
    allowed = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                allowed.add(cpu_list(line.split(":", 1)[1].strip()))
    return allowed


def cpu_list(text: str) -> frozenset[int]:
    """``0-3,6`` as /proc writes it."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


def wait_for(condition, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)


@contextlib.contextmanager
def started(tmp_path: Path, database: ScratchDatabase, **more: str):
    """The README's granian, both workers serving; stopped on leaving."""
    port = free_port()
    log = tmp_path / "granian.log"
    env = server_env(DATABASE_URL=database.url, TESSERA_VAR_DIR=str(tmp_path / "var"), **more)
    with granian_server(port, env, log) as server:
        wait_for(lambda: len(workers(server)) == 2 and started_workers(log) == 2, log)
        yield server, log


def started_workers(log: Path) -> int:
    """How many workers granian has said are serving: until then a worker
    has not its threads nor its own handler for the SIGTERM that stops the
    server (a worker stopped before it is lives on, and the server with it)."""
    return len(re.findall(r"Started worker-\d+ runtime-\d+$", log.read_text(), re.MULTILINE))


@pytest.fixture
def database(tmp_path):
    database = ScratchDatabase(tmp_path, "affinity")
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=settings.BASE_DIR,
            env=server_env(DATABASE_URL=database.url, TESSERA_VAR_DIR=str(tmp_path / "var")),
            check=True,
            timeout=180,
        )
        yield database
    finally:
        database.drop()


def test_each_worker_has_a_cpu_of_its_own_and_its_successor_takes_it(tmp_path, database):
    with started(tmp_path, database, TESSERA_PIN_WORKERS="1") as (server, log):
        first, second = workers(server)
        mine, theirs = cpus_of_threads(first), cpus_of_threads(second)
        assert len(mine) == 1 and len(theirs) == 1, (mine, theirs)
        assert mine != theirs
        assert len(os.listdir(f"/proc/{first}/task")) > 2  # granian's threads too

        os.kill(first, signal.SIGKILL)
        wait_for(lambda: first not in workers(server) and started_workers(log) == 3, log)
        (successor,) = set(workers(server)) - {second}

        assert cpus_of_threads(successor) == mine
        assert cpus_of_threads(second) == theirs


def test_without_the_setting_no_worker_is_pinned(tmp_path, database):
    everywhere = {frozenset(os.sched_getaffinity(0))}
    with started(tmp_path, database) as (server, _):
        for worker in workers(server):
            assert cpus_of_threads(worker) == everywhere
