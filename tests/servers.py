"""Real servers for tests: the README's production granian command, on a
free loopback port."""

import os
import socket
import sys
from pathlib import Path

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
        "32",
        "--runtime-mode",
        "st",
        "--no-ws",
        "--respawn-failed-workers",
        *flags,
        WSGI_APP,
    ]


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
