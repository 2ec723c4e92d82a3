"""Run the floor (bench/floor/): a bare DRF view signing the same RS256 token,
served with exactly Tessera's server command (harness/tessera.py); and its ASGI
case: the same token from an async Django view on granian's ASGI interface."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.node import BENCH_DIR
from harness.processes import free_port, running_server
from harness.targets import AUDIENCE, Target
from harness.tessera import ServerConfig, server_command
from harness.tokens import TokenExpectation, TokenRequest, wait_until_ready

FLOOR_LABEL = "floor"
FLOOR_ASGI_LABEL = "floor-asgi"
FLOOR_APP = {"wsgi": "floor.wsgi:application", "asgi": "floor.asgi:application"}
FLOOR_TOKEN_PATH = {"wsgi": "oauth/token", "asgi": "async/oauth/token"}


def _new_private_key_pem() -> str:
    """A fresh RSA-2048 key (as Tessera's tenant key), shared by all floor workers."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@contextlib.contextmanager
def running_floor(
    config: ServerConfig, workdir: Path, *, interface: str = "wsgi"
) -> Iterator[Target]:
    """Serve bench/floor with ``config`` (same server, workers and flags as
    Tessera), on one blocking thread: the floor has no waits and no compute
    gate, so more threads would only make it contend for the GIL.

    ``interface="asgi"``: ``floor.asgi`` on granian's ASGI interface, requests
    going to the async view (``floor-asgi``).
    """
    label = FLOOR_ASGI_LABEL if interface == "asgi" else FLOOR_LABEL
    config = dataclasses.replace(config, blocking_threads=1)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/floor/"
    env = {
        **{key: value for key, value in os.environ.items() if key != "DEBUG"},
        "DJANGO_SETTINGS_MODULE": "floor.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FLOOR_ISSUER": issuer,
        "FLOOR_PRIVATE_KEY": _new_private_key_pem(),
        "PYTHONUNBUFFERED": "1",
    }
    with running_server(
        f"{label} ({config.describe()})",
        server_command(app=FLOOR_APP[interface], port=port, config=config, interface=interface),
        env=env,
        cwd=BENCH_DIR,
        log_path=workdir / f"{label}-{config.workers}w-{port}.log",
    ) as server:
        jwks_url = f"{issuer}.well-known/jwks.json"
        wait_until_ready(server, jwks_url, timeout=60)
        body = (
            '{"grant_type": "client_credentials", "client_id": "floor-client", '
            f'"client_secret": "unused", "audience": "{AUDIENCE}"}}'
        ).encode()
        yield Target(
            label=label,
            server=server,
            token_request=TokenRequest(
                url=f"{issuer}{FLOOR_TOKEN_PATH[interface]}",
                content_type="application/json",
                body=body,
            ),
            expectation=TokenExpectation(
                issuer=issuer, audience=AUDIENCE, jwks_url=jwks_url, with_hook=True
            ),
        )
