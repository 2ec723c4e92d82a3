"""Real servers for tests: the README's production granian command, on a
free loopback port."""

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
        "1",
        "--runtime-mode",
        "st",
        "--no-ws",
        "--respawn-failed-workers",
        *flags,
        WSGI_APP,
    ]
