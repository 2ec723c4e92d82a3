"""Real servers for tests: the README's production granian command, on a
free loopback port."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

BIN = Path(sys.executable).parent
WSGI_APP = "tenant.site.wsgi:application"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def granian_command(port: int, *flags: str) -> list[str]:
    """``granian`` with the README's flags (two workers), then ``flags``."""
    return [
        str(BIN / "granian"),
        "--interface",
        "wsgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--blocking-threads",
        "64",
        "--runtime-mode",
        "st",
        "--no-ws",
        "--respawn-failed-workers",
        *flags,
        WSGI_APP,
    ]


@contextlib.contextmanager
def granian_server(port: int, env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """The README's granian on ``port`` (this checkout, ``env``), its output
    in ``log``; its whole process group is stopped on leaving, however the
    test went."""
    from django.conf import settings

    with log.open("w") as output:
        server = subprocess.Popen(  # noqa: S603 - granian, the README's command
            granian_command(port),
            cwd=settings.BASE_DIR,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):  # all of it already gone
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:  # no later test finds it still running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            raise


def server_env(**settings: str) -> dict[str, str]:
    """This process's environment without its Tessera settings, plus the
    site's settings module and ``settings``: what a server or command that
    the test starts as an operator would sees."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TESSERA_", "PROMETHEUS_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(DJANGO_SETTINGS_MODULE="tenant.site.settings", **settings)
    return env


class ScratchDatabase:
    """A database of its own for servers and commands a test starts as an
    operator would: beside the suite's on PostgreSQL (named for ``label``
    and this process), else a SQLite file in ``root``. ``drop()`` removes it."""

    def __init__(self, root: Path, label: str) -> None:
        from django.conf import settings

        configured = settings.DATABASES["default"]
        self.pg_name: str | None = None
        if configured["ENGINE"].endswith("postgresql"):
            host, port = configured["HOST"] or "127.0.0.1", int(configured["PORT"] or 5432)
            user = quote(configured["USER"] or "postgres", safe="")
            if configured.get("PASSWORD"):
                user += ":" + quote(configured["PASSWORD"], safe="")
            self.pg_name = f"{configured['NAME']}_{label}_{os.getpid()}"
            self.admin_url = f"postgresql://{user}@{host}:{port}/postgres"
            self.url = f"postgresql://{user}@{host}:{port}/{self.pg_name}"
            self._admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.pg_name}"')
        else:
            self.url = f"sqlite:///{root / 'db.sqlite3'}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as db:
            db.execute(sql)

    def drop(self) -> None:
        if self.pg_name is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
