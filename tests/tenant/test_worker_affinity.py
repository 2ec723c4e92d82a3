"""TESSERA_PIN_WORKERS: the README's granian command (two workers), each
worker with every one of its threads on a CPU of its own; a worker that
dies is replaced on the CPU it left; without the setting, nothing is pinned."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.servers import ScratchDatabase, free_port, granian_command, server_env

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


def serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)


def start(tmp_path: Path, database: ScratchDatabase, **more: str):
    port = free_port()
    log = tmp_path / "granian.log"
    server = subprocess.Popen(  # noqa: S603 - granian, the README's command
        granian_command(port),
        cwd=settings.BASE_DIR,
        env=server_env(DATABASE_URL=database.url, TESSERA_VAR_DIR=str(tmp_path / "var"), **more),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: serving(port) and len(workers(server)) == 2, log)
    except BaseException:  # a server that never came up is stopped all the same
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(60)
        raise
    # Each worker answers at least once: its threads exist by then.
    for _ in range(20):
        serving(port)
    return server, port, log


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
    server, port, log = start(tmp_path, database, TESSERA_PIN_WORKERS="1")
    try:
        first, second = workers(server)
        mine, theirs = cpus_of_threads(first), cpus_of_threads(second)
        assert len(mine) == 1 and len(theirs) == 1, (mine, theirs)
        assert mine != theirs
        assert len(os.listdir(f"/proc/{first}/task")) > 2  # granian's threads too

        os.kill(first, signal.SIGKILL)
        wait_for(lambda: first not in workers(server) and len(workers(server)) == 2, log)
        wait_for(lambda: serving(port), log)
        (successor,) = set(workers(server)) - {second}
        wait_for(lambda: len(os.listdir(f"/proc/{successor}/task")) > 2, log)

        assert cpus_of_threads(successor) == mine
        assert cpus_of_threads(second) == theirs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def test_without_the_setting_no_worker_is_pinned(tmp_path, database):
    server, _, _ = start(tmp_path, database)
    everywhere = {frozenset(os.sched_getaffinity(0))}
    try:
        for worker in workers(server):
            assert cpus_of_threads(worker) == everywhere
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
