"""Activity counts across server processes: the README's granian command
(two worker processes) serves real token requests, and every request is in
the database once the server has stopped, though no flush interval passed."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings

from tests.servers import ScratchDatabase, free_port, granian_server, server_env

AUDIENCE = "https://api.demo.test/"  # the demo's API
REQUESTS = 60


class Deployment:
    """A database of its own (PostgreSQL when the suite runs on it, else a
    SQLite file), driven by subprocesses as an operator would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.database = ScratchDatabase(root, "activity")
        self.url = self.database.url

    def drop(self) -> None:
        self.database.drop()

    def env(self, **more: str) -> dict[str, str]:
        return server_env(
            TESSERA_VAR_DIR=str(self.root / "var"),
            DATABASE_URL=self.url,
            TESSERA_HOOK_WORKERS="1",
            LOG_LEVEL="WARNING",
            **more,
        )

    def manage(self, *args: str) -> str:
        result = subprocess.run(  # noqa: S603 - this interpreter, our manage.py
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture
def deployment(tmp_path):
    deployment = Deployment(tmp_path)
    try:
        deployment.manage("migrate", "--noinput", "-v", "0")
        yield deployment
    finally:
        deployment.drop()


def token_request(port: int, client_id: str, secret: str) -> int:
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "audience": AUDIENCE,
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/demo/oauth/token", body, {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_every_worker_adds_its_counts_and_a_stopping_server_writes_what_it_holds(deployment):
    demo = deployment.manage("demo")
    client_id = re.search(r"client_id:\s+(\S+)", demo)[1]  # type: ignore[index]
    secret = re.search(r"client_secret:\s+(\S+)", demo)[1]  # type: ignore[index]
    port = free_port()
    log = deployment.root / "granian.log"
    # No flush interval passes during the test: what is written, the workers
    # wrote as they stopped.
    env = deployment.env(TESSERA_ACTIVITY_FLUSH_SECONDS="3600")
    with granian_server(port, env, log) as server:
        # The first request that is answered (a wrong secret: 401) says it is up.
        statuses: list[int] = []
        deadline = time.monotonic() + 90
        while not statuses:
            try:
                statuses.append(token_request(port, client_id, "wrong"))
            except OSError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        # Concurrent requests, so that both worker processes serve some.
        with ThreadPoolExecutor(8) as pool:
            statuses += list(
                pool.map(lambda _: token_request(port, client_id, secret), range(REQUESTS))
            )
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
    assert statuses.count(200) == REQUESTS, log.read_text()
    counted = deployment.manage(
        "shell",
        "-c",
        "from django.db.models import Sum; from tenant.models import TokenActivity, HookActivity; "
        "import json; "
        "print(json.dumps({'ok': TokenActivity.objects.filter(outcome='ok').aggregate(n=Sum('count'))['n'], "
        "'refused': TokenActivity.objects.exclude(outcome='ok').aggregate(n=Sum('count'))['n'], "
        "'runs': HookActivity.objects.aggregate(n=Sum('count'))['n']}))",
    )
    counts = json.loads(counted.strip().splitlines()[-1])
    refused = len(statuses) - REQUESTS
    assert counts == {"ok": REQUESTS, "refused": refused, "runs": REQUESTS}, log.read_text()
