"""Two granian servers, one database, one Redis, faults injected, as an
operator runs Tessera (README, "Operating a fleet").

Everything is real: the servers are ``granian`` processes started with the
README's flags, configuration changes are made with ``manage.py`` in separate
processes, Redis is a private ``redis-server`` this module starts, kills and
restarts, and on PostgreSQL the servers reach the database through a TCP
proxy in this process that can refuse connections.
"""

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import jwt
import pytest
from django.conf import settings

from tests.servers import free_port, granian_command, server_env

BOUND = 1.0  # TESSERA_CONFIG_MAX_STALENESS of the servers
# Time for the probe itself: an HTTP round trip on a busy 2-core machine.
PROBE_SLACK = 0.5
METRICS_TOKEN = "fleet-metrics-token"
AUD = "https://api.fleet.test/"
CLAIM = "https://fleet.test/hooked"
HOOK = (
    "module.exports = function(client, scope, audience, context, cb) {"
    f" cb(null, {{'{CLAIM}': true}}); }};"
)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

pytestmark = pytest.mark.fleet


def wait_for(predicate, timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(interval)


class TcpProxy:
    """Forwards a local port to PostgreSQL; ``stop`` refuses connections
    (and cuts the open ones), ``start`` lets them through again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                if self.listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self.listener is not None:
            # shutdown, not just close: it wakes the accept() in progress and
            # stops listening at once (a close alone leaves it accepting).
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            conns, self.conns = self.conns, []
        for sock in conns:
            try:
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                sock.close()
            except OSError:
                pass


@dataclass
class Redis:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - Debian's redis-server
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--dbfilename",
                "dump.rdb",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: self.cli("PING") == "PONG", 10)

    def cli(self, *args: str) -> str:
        result = subprocess.run(  # noqa: S603 - Debian's redis-cli
            [REDIS_CLI, "-p", str(self.port), *args], capture_output=True, text=True, timeout=5
        )
        return result.stdout.strip()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log: Path

    def request(self, method: str, path: str, body: dict | None = None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            payload = json.dumps(body) if body is not None else None
            conn.request(
                method,
                path,
                payload,
                {"content-type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            headers = {name.lower(): value for name, value in response.getheaders()}
            return response.status, headers, response.read()
        finally:
            conn.close()

    def readyz(self) -> tuple[int, dict]:
        status, _, body = self.request(
            "GET", "/readyz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        return status, json.loads(body)

    def workers(self) -> list[int]:
        """The granian worker processes (children of the main process)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and fields[0] != "Z":
                children.append(int(stat.parent.name))
        return children


class Fleet:
    """Granian servers started with the README's flags on a database of
    their own (named after ``name`` on PostgreSQL), set up with ``manage``."""

    def __init__(self, root: Path, name: str = "fleet") -> None:
        self.root = root
        self.var = root / "var"
        self.redis = Redis(root / "redis")
        self.redis.directory.mkdir(parents=True)
        self.proxy: TcpProxy | None = None
        self.servers: list[Server] = []
        self.pg_admin_url = ""
        self.pg_name: str | None = None
        self.sqlite_path: Path | None = None
        self.tenant = Tenant("", "", "", "")
        configured = settings.DATABASES["default"]
        if configured["ENGINE"].endswith("postgresql"):
            host, port = configured["HOST"] or "127.0.0.1", int(configured["PORT"] or 5432)
            user = quote(configured["USER"] or "postgres", safe="")
            if configured.get("PASSWORD"):
                user += ":" + quote(configured["PASSWORD"], safe="")
            self.pg_name = f"{configured['NAME']}_{name}_{os.getpid()}"
            self.pg_admin_url = f"postgresql://{user}@{host}:{port}/postgres"
            self.direct_url = f"postgresql://{user}@{host}:{port}/{self.pg_name}"
            self.proxy = TcpProxy((host, port))
            self.server_url = f"postgresql://{user}@127.0.0.1:{self.proxy.port}/{self.pg_name}"
        else:
            self.sqlite_path = root / f"{name}.sqlite3"
            self.direct_url = self.server_url = f"sqlite:///{self.sqlite_path}"

    # --- the operator's tools ---------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = server_env(
            TESSERA_VAR_DIR=str(self.var),
            DATABASE_URL=self.direct_url,
            REDIS_URL=self.redis.url,
            TESSERA_TOKEN_RATE_LIMIT="",
            LOG_LEVEL="WARNING",
        )
        env.update(extra)
        return env

    def manage(self, *args: str, timeout: float = 60, **env: str) -> str:
        result = subprocess.run(  # noqa: S603 - this interpreter, our manage.py
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    def ensure_granted(self, client_id: str) -> None:
        """Grant ``client_id`` the API unless it holds the grant already."""
        try:
            self.manage("client", "grant", "-p", "acme", client_id, AUD, "--scope", "read:data")
        except AssertionError as error:
            assert "already has a grant" in str(error)

    def hook_runs(self) -> int:
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path, timeout=30) as db:
                return int(db.execute("SELECT count(*) FROM hooks_hookrun").fetchone()[0])
        import psycopg

        with psycopg.connect(self.direct_url) as db:
            row = db.execute("SELECT count(*) FROM hooks_hookrun").fetchone()
            assert row is not None
            return int(row[0])

    # --- life cycle ------------------------------------------------------------
    def create_database(self) -> None:
        if self.pg_name is None:
            return
        import psycopg

        with psycopg.connect(self.pg_admin_url, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            db.execute(f'CREATE DATABASE "{self.pg_name}"')

    def drop_database(self) -> None:
        if self.pg_name is None:
            return
        import psycopg

        with psycopg.connect(self.pg_admin_url, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def start_server(
        self,
        name: str,
        database_url: str | None = None,
        tls: tuple[Path, Path] | None = None,
        **env: str,
    ) -> Server:
        """A granian server; with ``tls`` (certificate, key) it serves HTTPS."""
        port = free_port()
        scheme, tls_flags = "http", []
        if tls is not None:
            scheme = "https"
            tls_flags = ["--ssl-certificate", str(tls[0]), "--ssl-keyfile", str(tls[1])]
        metrics_dir = self.root / f"metrics-{name}"
        metrics_dir.mkdir()
        log = self.root / f"{name}.log"
        process = subprocess.Popen(  # noqa: S603 - granian, the README's command
            granian_command(port, "--respawn-interval", "0.5", *tls_flags),
            cwd=settings.BASE_DIR,
            env=self.env(
                DATABASE_URL=database_url or self.server_url,
                TESSERA_HOOK_WORKERS="1",
                TESSERA_METRICS_TOKEN=METRICS_TOKEN,
                PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                PUBLIC_URL=f"{scheme}://127.0.0.1:{port}",
                **env,
            ),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Server(name, port, process, log)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGTERM)
        for server in self.servers:
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()
        if self.redis.process is not None and self.redis.process.poll() is None:
            self.redis.process.send_signal(signal.SIGCONT)
            self.redis.kill()
        if self.proxy is not None:
            self.proxy.stop()


@dataclass
class Tenant:
    client_id: str
    secret: str
    rotating_id: str
    rotating_secret: str


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is required (apt-get install redis-server)")
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    fleet.create_database()
    try:
        if fleet.proxy is not None:
            fleet.proxy.start()
        fleet.redis.start()
        fleet.manage("migrate", "--noinput", "-v", "0")
        fleet.manage("tenant", "create", "acme")
        fleet.manage(
            "api",
            "create",
            "-p",
            "acme",
            "--identifier",
            AUD,
            "--name",
            "Fleet API",
            "--scope",
            "read:data",
        )
        one = json.loads(
            fleet.manage(
                "client",
                "create",
                "-p",
                "acme",
                "--name",
                "one",
                "--grant",
                f"{AUD}=read:data",
                "--json",
            )
        )
        two = json.loads(
            fleet.manage(
                "client",
                "create",
                "-p",
                "acme",
                "--name",
                "two",
                "--grant",
                f"{AUD}=read:data",
                "--json",
            )
        )
        script = fleet.root / "hook.js"
        script.write_text(HOOK)
        fleet.manage(
            "hooks",
            "create",
            "-t",
            "credentials-exchange",
            "-n",
            "claim",
            "-p",
            "acme",
            str(script),
        )
        fleet.manage("hooks", "enable", "claim", "-p", "acme")
        fleet.tenant = Tenant(
            one["client_id"], one["client_secret"], two["client_id"], two["client_secret"]
        )
        for name in ("a", "b"):
            fleet.start_server(name)
        for server in fleet.servers:
            wait_for(lambda server=server: _ready(server), 60, interval=0.2)
        yield fleet
    finally:
        fleet.stop()
        fleet.drop_database()


def _ready(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server {server.name} exited:\n{server.log.read_text()[-3000:]}")
    try:
        return server.readyz()[0] == 200
    except OSError:
        return False


def token(server: Server, client_id: str, secret: str, timeout: float = 10):
    status, headers, body = server.request(
        "POST",
        "/acme/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "audience": AUD,
        },
        timeout=timeout,
    )
    return status, headers, json.loads(body)


def claims(body: dict) -> dict:
    return jwt.decode(body["access_token"], options={"verify_signature": False})


def reflected_everywhere(fleet: Fleet, check) -> float:
    """Seconds until every server reflects the change (called just after it);
    then, once the bound has passed, confirms it on enough further requests
    that both workers of each server answered. Before the bound, one worker
    of a server may reflect it while the other does not yet."""
    changed = time.monotonic()
    elapsed = max(wait_for(lambda s=server: check(s), BOUND + 5) for server in fleet.servers)
    time.sleep(max(0.0, changed + BOUND - time.monotonic()))
    for server in fleet.servers:
        for _ in range(12):
            assert check(server), f"server {server.name} served the old configuration again"
    return elapsed


class Load:
    """Token requests from a few threads, to both servers, recording outcomes."""

    def __init__(self, fleet: Fleet, threads: int = 3) -> None:
        self.fleet = fleet
        self.stopping = threading.Event()
        self.results: list[tuple[float, int, bool, float]] = []  # at, status, json, seconds
        self.lock = threading.Lock()
        self.samples: dict[int, bytes] = {}  # a body of each non-JSON answer
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, n: int) -> None:
        tenant = self.fleet.tenant
        while not self.stopping.is_set():
            server = self.fleet.servers[n % len(self.fleet.servers)]
            n += 1
            started = time.monotonic()
            try:
                status, headers, body = server.request(
                    "POST",
                    "/acme/oauth/token",
                    {
                        "grant_type": "client_credentials",
                        "client_id": tenant.client_id,
                        "client_secret": tenant.secret,
                        "audience": AUD,
                    },
                    timeout=15,
                )
                try:
                    json.loads(body)["access_token" if status == 200 else "error"]
                    is_json = headers.get("content-type", "").startswith("application/json")
                except (ValueError, KeyError):
                    is_json = False
                if status == 503:
                    is_json = is_json and "retry-after" in headers
                if not is_json:
                    self.samples.setdefault(status, body[:300])
            except OSError as error:
                status, is_json = 0, False
                self.samples.setdefault(status, repr(error).encode())
            with self.lock:
                self.results.append((started, status, is_json, time.monotonic() - started))
            time.sleep(0.01)  # leave CPU to the servers on a shared machine

    def between(self, start: float, end: float) -> list[tuple[float, int, bool, float]]:
        with self.lock:
            return [r for r in self.results if start <= r[0] < end]


def test_changes_reach_both_servers_within_the_bound(fleet):
    tenant = fleet.tenant
    for server in fleet.servers:
        status, _, body = token(server, tenant.client_id, tenant.secret)
        assert status == 200 and claims(body)[CLAIM] is True

    fleet.manage("hooks", "disable", "claim", "-p", "acme")
    elapsed = reflected_everywhere(
        fleet, lambda s: CLAIM not in claims(token(s, tenant.client_id, tenant.secret)[2])
    )
    assert elapsed <= BOUND + PROBE_SLACK
    fleet.manage("hooks", "enable", "claim", "-p", "acme")
    reflected_everywhere(
        fleet, lambda s: CLAIM in claims(token(s, tenant.client_id, tenant.secret)[2])
    )

    new = json.loads(
        fleet.manage("client", "rotate-secret", "-p", "acme", tenant.rotating_id, "--json")
    )["client_secret"]
    elapsed = reflected_everywhere(
        fleet, lambda s: token(s, tenant.rotating_id, tenant.rotating_secret)[0] == 401
    )
    assert elapsed <= BOUND + PROBE_SLACK
    for server in fleet.servers:
        assert token(server, tenant.rotating_id, new)[0] == 200
    tenant.rotating_secret = new

    fleet.manage("client", "grant", "-p", "acme", tenant.rotating_id, AUD, "--revoke")
    elapsed = reflected_everywhere(
        fleet, lambda s: token(s, tenant.rotating_id, tenant.rotating_secret)[0] == 403
    )
    assert elapsed <= BOUND + PROBE_SLACK


def test_old_redis_snapshot_and_failed_notification_cannot_extend_staleness(fleet):
    tenant = fleet.tenant
    fleet.ensure_granted(tenant.rotating_id)
    reflected_everywhere(
        fleet, lambda s: token(s, tenant.rotating_id, tenant.rotating_secret)[0] == 200
    )
    assert fleet.redis.cli("SAVE") == "OK"  # the snapshot, before the changes below

    fleet.manage("hooks", "disable", "claim", "-p", "acme")
    reflected_everywhere(
        fleet, lambda s: CLAIM not in claims(token(s, tenant.client_id, tenant.secret)[2])
    )
    fleet.redis.kill()
    fleet.redis.start()  # from the snapshot taken before the hook was disabled
    # Every worker holds the grant, memoised under the current generation.
    reflected_everywhere(
        fleet, lambda s: token(s, tenant.rotating_id, tenant.rotating_secret)[0] == 200
    )

    # A change whose after-commit notification fails: the CLI says so, exits 0.
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    fleet.manage(
        "client", "grant", "-p", "acme", tenant.rotating_id, AUD, "--revoke", REDIS_URL=dead_redis
    )
    elapsed = reflected_everywhere(
        fleet, lambda s: token(s, tenant.rotating_id, tenant.rotating_secret)[0] == 403
    )
    assert elapsed <= BOUND + PROBE_SLACK
    for server in fleet.servers:  # the change made before the restore still holds
        for _ in range(8):
            assert CLAIM not in claims(token(server, tenant.client_id, tenant.secret)[2])
    fleet.manage("hooks", "enable", "claim", "-p", "acme")


def test_redis_down_or_frozen_under_load(fleet):
    tenant = fleet.tenant
    pids = [server.process.pid for server in fleet.servers]
    with Load(fleet) as load:
        time.sleep(1)
        fleet.redis.process.send_signal(signal.SIGSTOP)  # frozen: accepts, never answers
        frozen = time.monotonic()
        time.sleep(3)
        fleet.redis.process.send_signal(signal.SIGCONT)
        fleet.redis.kill()  # then down
        down = time.monotonic()
        fleet.manage("hooks", "disable", "claim", "-p", "acme")  # writes work
        elapsed = reflected_everywhere(
            fleet, lambda s: CLAIM not in claims(token(s, tenant.client_id, tenant.secret)[2])
        )
        assert elapsed <= BOUND + PROBE_SLACK
        time.sleep(2)
        fleet.redis.start()  # empty: no snapshot
        back = time.monotonic()
        fleet.manage("hooks", "enable", "claim", "-p", "acme")
        reflected_everywhere(
            fleet, lambda s: CLAIM in claims(token(s, tenant.client_id, tenant.secret)[2])
        )
        time.sleep(1)
    during_frozen = load.between(frozen, down)
    during_down = load.between(down, back)
    after = load.between(back + 1, time.monotonic())
    for phase in (during_frozen, during_down, after):
        assert phase, "no requests were made"
        assert all(is_json for _, status, is_json, _ in phase if status != 200), load.samples
        assert Counter(status for _, status, _, _ in phase)[200] >= 0.9 * len(phase)
    # A frozen Redis costs at most its sub-second timeout, never seconds.
    assert max(seconds for *_, seconds in during_frozen) < 2.0
    assert [server.process.pid for server in fleet.servers] == pids  # no restart needed
    for server in fleet.servers:
        status, body = server.readyz()
        assert status == 200 and body["checks"]["redis"] == "ok"


def test_a_killed_worker_is_replaced_and_the_server_keeps_serving(fleet):
    server = fleet.servers[0]
    workers = server.workers()
    assert len(workers) == 2
    with Load(fleet) as load:
        time.sleep(0.5)
        os.kill(workers[0], signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: len(server.workers()) == 2 and workers[0] not in server.workers(), 20)
        time.sleep(1)
    assert server.process.poll() is None
    results = load.between(killed, time.monotonic())
    failed = [r for r in results if r[1] != 200]
    # Only requests in flight on the killed worker may fail.
    assert len(failed) <= len(load.threads), Counter(r[1] for r in failed)
    assert all(
        token(server, fleet.tenant.client_id, fleet.tenant.secret)[0] == 200 for _ in range(10)
    )


def test_database_refused_for_30_s_under_load(fleet):
    if fleet.proxy is None:
        pytest.skip(
            "SQLite is a file each process opens itself: there is no connection to refuse. "
            "The same test runs on PostgreSQL."
        )
    tenant = fleet.tenant
    time.sleep(1)  # earlier tests' runs leave the writers' buffers
    before = fleet.hook_runs()
    with Load(fleet) as load:
        time.sleep(1)
        fleet.proxy.stop()
        refused = time.monotonic()
        for server in fleet.servers:
            wait_for(lambda s=server: s.readyz()[0] == 503, BOUND + 5)
            _, body = server.readyz()
            assert body["status"] == "not_ready" and body["checks"]["database"] == "unavailable"
        # What truly needs the database answers 503 + Retry-After: JSON on API
        # paths, a short page in the dashboard; never a 500.
        server = fleet.servers[0]
        status, headers, body = server.request("GET", "/acme/.well-known/jwks.json")
        assert status == 503 and "retry-after" in headers
        assert json.loads(body)["error"] == "temporarily_unavailable"
        status, headers, body = server.request(
            "GET", "/admin/", headers={"Cookie": "sessionid=a-signed-in-admin"}
        )
        assert status == 503 and "retry-after" in headers
        assert headers["content-type"].startswith("text/html")
        assert b"Temporarily unavailable" in body
        time.sleep(30 - (time.monotonic() - refused))
        fleet.proxy.start()
        restored = time.monotonic()
        for server in fleet.servers:
            wait_for(lambda s=server: s.readyz()[0] == 200, 15)
        time.sleep(1)
    during = load.between(refused, restored)
    outcomes = Counter(status for _, status, _, _ in during)
    # Configuration a worker holds keeps issuing tokens (and running the hook);
    # a worker that never loaded this client answers JSON 503 + Retry-After.
    assert set(outcomes) <= {200, 503}, (outcomes, load.samples)
    assert all(is_json for _, status, is_json, _ in during if status != 200), load.samples
    assert outcomes[200] >= 100, outcomes
    issued = sum(1 for _, status, _, _ in load.results if status == 200)
    errors = sum(1 for _, status, _, _ in load.results if status == 0)
    # Every token issued ran the hook; every run is recorded once the database is back.
    wait_for(lambda: fleet.hook_runs() - before >= issued, 30, interval=0.5)
    assert fleet.hook_runs() - before <= issued + errors
    for server in fleet.servers:
        assert token(server, tenant.client_id, tenant.secret)[0] == 200


def test_metrics_add_up_the_workers_and_leak_nothing(fleet):
    server = fleet.servers[0]
    status, _, body = server.request(
        "GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert status == 200
    text = body.decode()
    assert 'tessera_token_requests_total{outcome="ok"}' in text
    assert "tessera_hook_runs_total" in text
    assert "tessera_config_invalidations_total" in text
    for secret in (fleet.tenant.secret, fleet.tenant.client_id, "acme"):
        assert secret not in text
    assert server.request("GET", "/metrics")[0] == 401


def test_a_server_whose_database_is_unreachable_is_alive_but_not_ready(fleet):
    """It starts and listens, but a load balancer sends it nothing."""
    server = fleet.start_server("nowhere", database_url="sqlite:////nonexistent/dir/db.sqlite3")
    try:
        wait_for(lambda: _answers(server), 60, interval=0.2)
        status, _, body = server.request("GET", "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        status, body_json = server.readyz()
        assert status == 503 and body_json["checks"]["database"] == "unavailable"
        status, headers, body = token(server, fleet.tenant.client_id, fleet.tenant.secret)[:3]
        assert status == 503 and "retry-after" in headers
        assert body["error"] == "temporarily_unavailable"
    finally:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(10)
        fleet.servers.remove(server)


def _answers(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server {server.name} exited:\n{server.log.read_text()[-3000:]}")
    try:
        return server.request("GET", "/healthz")[0] == 200
    except OSError:
        return False
