"""Set up and run Tessera as deployed: granian (or gunicorn), production settings, a
real database, and Redis as the shared cache (``REDIS_URL``), as the README's production
setup has it.

Only the project's documented CLI is used (manage.py ``migrate``, ``tenant``,
``api``, ``client``, ``wt``, ``hooks`` and ``actions`` commands), so the bench exercises
the same paths an operator does, and nothing here imports Django.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.node import BENCH_DIR
from harness.processes import ProcessError, Server, free_port, run_command, running_server
from harness.targets import AUDIENCE, Target
from harness.tokens import (
    TokenExpectation,
    TokenRequest,
    wait_for_valid_sample,
    wait_until_ready,
)

REPO_DIR = BENCH_DIR.parent
# Where Tessera's Django settings and WSGI application live: the only place
# the bench names them (manage.py, provision_tenants.py and the server).
TESSERA_SETTINGS = "tenant.site.settings"
TESSERA_WSGI_APP = "tenant.site.wsgi:application"
TENANT = "bench"
HOOK_NAME = "seed"
HOOK_FILE = BENCH_DIR / "seed_hook.js"
PROVISION_SCRIPT = BENCH_DIR / "provision_tenants.py"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Another name lets two benches share one PostgreSQL server (a shared machine).
POSTGRES_DATABASE = os.environ.get("TESSERA_BENCH_DATABASE", "tessera_bench")
MANAGE_TIMEOUT_SECONDS = 180
SAMPLE_TOKENS = 8


@dataclass(frozen=True)
class ClientCredentials:
    """The bench client's id and secret, as ``client create --json`` printed them."""

    client_id: str
    client_secret: str


@dataclass(frozen=True)
class TenantSpec:
    """One more tenant for ``provision_tenants.py``: its slug, hook script (or none)
    and how many clients it has."""

    slug: str
    script: str | None
    clients: int = 1


@dataclass(frozen=True)
class ProvisionedTenant:
    """A tenant made by ``provision_tenants.py``, with its clients' credentials."""

    slug: str
    clients: list[ClientCredentials]

    @property
    def client(self) -> ClientCredentials:
        return self.clients[0]


@dataclass(frozen=True)
class ServerConfig:
    """Which server runs Tessera, and how; recorded with the results."""

    server: str  # "granian" or "gunicorn"
    workers: int
    worker_class: str  # gunicorn only
    threads: int  # gunicorn gthread only
    blocking_threads: int = 64  # granian: threads running the WSGI app per worker

    def describe(self) -> str:
        plural = "s" if self.workers > 1 else ""
        if self.server == "granian":
            threads = f", {self.blocking_threads} threads each" if self.blocking_threads > 1 else ""
            return f"granian, {self.workers} worker{plural}{threads}"
        threads = f" ({self.threads} threads)" if self.worker_class == "gthread" else ""
        return f"gunicorn, {self.workers} {self.worker_class} worker{plural}{threads}"


class TesseraEnvironment:
    """Environment variables shared by manage.py commands and the server for one database."""

    def __init__(
        self,
        *,
        database_url: str,
        redis_url: str,
        port: int,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.public_url = f"http://127.0.0.1:{port}"
        self.issuer = f"{self.public_url}/{TENANT}/"
        env = {key: value for key, value in os.environ.items() if key != "DEBUG"}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": TESSERA_SETTINGS,
                "DATABASE_URL": database_url,
                # The shared cache carries the configuration generation: without
                # it a `hooks disable` never reaches the running workers.
                "REDIS_URL": redis_url,
                "SECRET_KEY": secrets.token_urlsafe(50),
                # A Fernet key: url-safe base64 of 32 random bytes.
                "TESSERA_KEK": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "PUBLIC_URL": self.public_url,
                "TESSERA_TOKEN_RATE_LIMIT": "",  # rate limit off
                "TESSERA_HOOK_ISOLATION": "inprocess",
                # Only read with TESSERA_HOOK_ISOLATION=process: one request at
                # a time per server worker (its compute gate) needs one hook
                # worker process.
                "TESSERA_HOOK_WORKERS": "1",
                # As the README deploys it: each worker on a CPU of its own.
                "TESSERA_PIN_WORKERS": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(settings or {})  # --isolation, --noisy-neighbour's rate limit
        self.variables: Mapping[str, str] = env

    def issuer_of(self, slug: str) -> str:
        return f"{self.public_url}/{slug}/"

    def manage(self, *args: str) -> str:
        """Run one manage.py command with this environment; return its stdout."""
        return run_command(
            [sys.executable, "manage.py", *args],
            env=self.variables,
            cwd=REPO_DIR,
            timeout=MANAGE_TIMEOUT_SECONDS,
        )


def check_repository() -> None:
    """Fail early, and clearly, if Tessera cannot be started from this checkout."""
    if not (REPO_DIR / "manage.py").exists():
        raise ProcessError(f"{REPO_DIR / 'manage.py'} does not exist (yet): Tessera cannot run")
    try:
        run_command(
            [sys.executable, "-c", "import django, granian, gunicorn, jwt"],
            env=os.environ,
            cwd=REPO_DIR,
            timeout=60,
        )
    except ProcessError as error:
        raise ProcessError(
            f"{sys.executable} lacks Django/granian/gunicorn/PyJWT: run the bench with the "
            f"project venv's python (.venv/bin/python)\n{error}"
        ) from None


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[str]:
    """A private, non-persistent redis-server on a 127.0.0.1 port; yields its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise ProcessError("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    command = [
        executable, "--bind", "127.0.0.1", "--port", str(port),
        "--save", "", "--appendonly", "no", "--dir", str(workdir),
    ]  # fmt: skip
    with running_server(
        "redis", command, env=os.environ, cwd=workdir, log_path=workdir / f"redis-{port}.log"
    ) as server:
        deadline = time.monotonic() + 15
        while not _redis_answers(port):
            server.check_alive()
            if time.monotonic() > deadline:
                raise ProcessError(f"redis-server not ready on port {port}\n{server.log_tail()}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def bench_database(kind: str) -> Iterator[str]:
    """A fresh, empty database of ``kind`` (postgres or sqlite); dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tessera-bench-sqlite-") as directory:
            yield f"sqlite:///{directory}/db.sqlite3"
    elif kind == "postgres":
        _postgres_execute(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)")
        _postgres_execute(f"CREATE DATABASE {POSTGRES_DATABASE}")
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{POSTGRES_DATABASE}"
        finally:
            _postgres_execute(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)")
    else:
        raise ValueError(f"unknown database {kind!r} (postgres or sqlite)")


def _postgres_execute(statement: str) -> None:
    """Run one statement as the postgres superuser (psycopg, or psql without it)."""
    try:
        import psycopg  # only the postgres runs need it
    except ImportError:
        run_command(
            ["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-c", statement],
            env=os.environ,
            cwd=REPO_DIR,
            timeout=60,
        )
        return
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=10) as connection:
        connection.execute(statement)


def provision(env: TesseraEnvironment, *, with_hook: bool) -> ClientCredentials:
    """Migrate, then create the demo tenant, its RS256 API, a client and the seed hook."""
    env.manage("migrate", "--noinput")
    env.manage("tenant", "create", TENANT, "--name", "Bench")
    env.manage(
        "api", "create", "-p", TENANT,
        "--identifier", AUDIENCE, "--name", "Bench API",
        "--scope", "read:data", "--scope", "write:data",
    )  # fmt: skip
    client_args = [
        "client", "create", "-p", TENANT,
        "--name", "bench-client", "--grant", f"{AUDIENCE}=read:data", "--json",
    ]  # fmt: skip
    client = _parse_json_object(env.manage(*client_args))
    if with_hook:
        _create_seed_hook(env)
    try:
        return ClientCredentials(str(client["client_id"]), str(client["client_secret"]))
    except KeyError as missing:
        raise ProcessError(f"client create --json printed no {missing}: {client!r}") from None


def provision_tenants(
    env: TesseraEnvironment, tenants: Sequence[TenantSpec], workdir: Path
) -> list[ProvisionedTenant]:
    """Create ``tenants`` (API, client, grant, hook) through the project's services,
    in one process (bench/provision_tenants.py); the CLI would take minutes."""
    if not tenants:
        return []
    spec_path = workdir / "tenants.json"
    spec = {
        "audience": AUDIENCE,
        "tenants": [
            {"slug": tenant.slug, "script": tenant.script, "clients": tenant.clients}
            for tenant in tenants
        ],
    }
    spec_path.write_text(json.dumps(spec))
    output = run_command(
        [sys.executable, str(PROVISION_SCRIPT), str(spec_path)],
        env=env.variables,
        cwd=REPO_DIR,
        timeout=MANAGE_TIMEOUT_SECONDS + 2 * len(tenants),
    )
    try:
        created = json.loads(output.strip().splitlines()[-1])
        return [
            ProvisionedTenant(
                slug=str(item["slug"]),
                clients=[
                    ClientCredentials(str(client["client_id"]), str(client["client_secret"]))
                    for client in item["clients"]
                ],
            )
            for item in created
        ]
    except (ValueError, IndexError, KeyError, TypeError):
        raise ProcessError(f"provision_tenants.py printed no list: {output[-1000:]!r}") from None


def _create_seed_hook(env: TesseraEnvironment) -> None:
    """Create (and so enable) the seed hook with ``wt create``."""
    env.manage(
        "wt", "create", str(HOOK_FILE), "-p", TENANT, "--name", HOOK_NAME,
        "--meta", "wt-compiler=auth0-ext-compilers/client-credentials-exchange",
        "--meta", "auth0-extension=runtime",
        "--meta", "auth0-extension-name=credentials-exchange",
    )  # fmt: skip


def _parse_json_object(output: str) -> dict[str, object]:
    """The JSON object a ``--json`` command printed (tolerating lines before it)."""
    start = output.find("{")
    if start < 0:
        raise ProcessError(f"expected a JSON object, got: {output[-1000:]!r}")
    try:
        parsed = json.loads(output[start:])
    except ValueError:
        raise ProcessError(f"expected a JSON object, got: {output[-1000:]!r}") from None
    if not isinstance(parsed, dict):
        raise ProcessError(f"expected a JSON object, got: {output[-1000:]!r}")
    return parsed


def tessera_token_request(
    env: TesseraEnvironment, client: ClientCredentials, *, slug: str = TENANT
) -> TokenRequest:
    """Tessera's token request (to tenant ``slug``): JSON body, as Auth0's docs show it."""
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "audience": AUDIENCE,
        }
    ).encode()
    issuer = env.issuer_of(slug)
    return TokenRequest(url=f"{issuer}oauth/token", content_type="application/json", body=body)


def tessera_expectation(
    env: TesseraEnvironment,
    *,
    with_hook: bool,
    slug: str = TENANT,
    claims: Mapping[str, str] | None = None,
) -> TokenExpectation:
    """What Tessera's tokens (from tenant ``slug``) must contain, with the seed
    hook on or off, and ``claims`` (those of its bound Actions)."""
    issuer = env.issuer_of(slug)
    return TokenExpectation(
        issuer=issuer,
        audience=AUDIENCE,
        jwks_url=f"{issuer}.well-known/jwks.json",
        with_hook=with_hook,
        claims=dict(claims or {}),
    )


def server_command(
    *, app: str, port: int, config: ServerConfig, interface: str = "wsgi"
) -> list[str]:
    """The server as deployed (README "Production"); no access log, so the bench
    measures the app, not log writes. The floor (harness/floor.py) runs with
    exactly the same command, only ``app`` differs; its ASGI case also has
    ``interface="asgi"`` (granian only)."""
    if config.server == "granian":
        bind = ["--host", "127.0.0.1", "--port", str(port)]
    else:
        bind = ["--bind", f"127.0.0.1:{port}"]
    return [
        sys.executable, "-m", config.server, app,
        *bind, "--workers", str(config.workers), *server_arguments(config, interface),
    ]  # fmt: skip


def server_arguments(config: ServerConfig, interface: str = "wsgi") -> list[str]:
    """The server's settings other than its address and worker count; the
    results print them as they are, so they say exactly what was measured.

    granian, as the README deploys it: Rust HTTP/1.1 with keep-alive, so no
    TCP handshake per token and no HTTP parsing in Python. 32 blocking
    threads per worker run the WSGI app, one token request computing at a
    time (Tessera's compute gate: the endpoint is CPU-bound, and Python
    threads computing side by side only contend for the GIL), the others
    waiting on upstreams their hooks call (``--slow-upstream``). ``--runtime-mode st``: one Rust I/O
    thread per worker, on 2 cores. ``--respawn-failed-workers``: as deployed,
    a worker that dies is replaced instead of taking the server down.

    gunicorn, for comparison (``--server gunicorn``): sync workers by default
    (gunicorn's default too). Each free worker accepts the next connection from
    the shared socket, which keeps the workers evenly loaded, but they close
    the connection after every response, so each token pays a loopback
    handshake that the peer (keep-alive) does not; loadgen.mjs measures that
    correctly. ``gthread`` keeps connections alive, but each stays with the
    worker that accepted it: with 2 workers it gave fewer tokens/s than sync
    at 10 and 50 connections.

    ``interface="asgi"`` (the floor's ASGI case): the same flags, except that
    an ASGI app runs on each worker's event loop, so there are no blocking
    threads to set.
    """
    if interface == "asgi":
        if config.server != "granian":
            raise ValueError("the ASGI case runs on granian only")
        return [
            "--interface", "asgi",
            "--runtime-mode", "st",
            "--no-ws",
            "--respawn-failed-workers",
            "--log-level", "warning",
        ]  # fmt: skip
    if config.server == "granian":
        return [
            "--interface", "wsgi",
            "--blocking-threads", str(config.blocking_threads),
            "--runtime-mode", "st",
            "--no-ws",
            "--respawn-failed-workers",
            "--log-level", "warning",
        ]  # fmt: skip
    arguments = [
        "--worker-class", config.worker_class,
        "--timeout", "30",
        "--graceful-timeout", "5",
        "--keep-alive", "5",
        "--backlog", "2048",
    ]  # fmt: skip
    if config.worker_class == "gthread":
        arguments += ["--threads", str(config.threads)]
    return arguments


@dataclass
class TesseraDeployment:
    """A provisioned Tessera database and the environment to serve it."""

    env: TesseraEnvironment
    client: ClientCredentials
    with_hook: bool
    tenants: list[ProvisionedTenant]

    def set_hook_enabled(self, enabled: bool) -> None:
        """Toggle the seed hook with the ``hooks`` command."""
        self.env.manage("hooks", "enable" if enabled else "disable", HOOK_NAME, "-p", TENANT)

    def target(self, label: str, server: Server, *, with_hook: bool) -> Target:
        """A Target for the running server, expecting the hook on or off."""
        return Target(
            label=label,
            server=server,
            token_request=tessera_token_request(self.env, self.client),
            expectation=tessera_expectation(self.env, with_hook=with_hook),
        )


@contextlib.contextmanager
def provisioned_tessera(
    database: str,
    *,
    with_hook: bool,
    workdir: Path,
    settings: Mapping[str, str] | None = None,
    tenants: Sequence[TenantSpec] = (),
) -> Iterator[TesseraDeployment]:
    """A fresh database of kind ``database`` (and a fresh Redis) with the bench tenant,
    API, client and, unless ``with_hook`` is false, the seed hook; then ``tenants``.
    ``settings``: environment variables for manage.py and the server."""
    with bench_database(database) as database_url, running_redis(workdir) as redis_url:
        env = TesseraEnvironment(
            database_url=database_url, redis_url=redis_url, port=free_port(), settings=settings
        )
        client = provision(env, with_hook=with_hook)
        extra = provision_tenants(env, tenants, workdir)
        yield TesseraDeployment(env=env, client=client, with_hook=with_hook, tenants=extra)


@contextlib.contextmanager
def running_tessera(
    deployment: TesseraDeployment, config: ServerConfig, workdir: Path
) -> Iterator[Target]:
    """Serve ``deployment``; yields a Target expecting its hook (if any)."""
    env = deployment.env
    with running_server(
        f"tessera ({config.describe()})",
        server_command(app=TESSERA_WSGI_APP, port=env.port, config=config),
        env=env.variables,
        cwd=REPO_DIR,
        log_path=workdir / f"{config.server}-{config.workers}w-{env.port}.log",
    ) as server:
        wait_until_ready(server, f"{env.issuer}.well-known/jwks.json", timeout=60)
        yield deployment.target("tessera", server, with_hook=deployment.with_hook)


def switch_hook(deployment: TesseraDeployment, target: Target, *, enabled: bool) -> Target:
    """Enable or disable the seed hook and wait until served tokens show it."""
    deployment.set_hook_enabled(enabled)
    switched = deployment.target(target.label, target.server, with_hook=enabled)
    wait_for_valid_sample(
        switched.token_request, switched.expectation, count=SAMPLE_TOKENS, timeout=30
    )
    return switched
