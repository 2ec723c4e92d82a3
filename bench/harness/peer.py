"""Run the peer: node oidc-provider (bench/peer_server.mjs) on a 127.0.0.1 port,
with the seed hook's claim as a constant (``peer``) or with the seed hook run in a
fresh ``vm`` context per token, as Logto runs custom JWT scripts (``peer+vm``)."""

from __future__ import annotations

import contextlib
import os
import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from harness.node import BENCH_DIR, node_executable
from harness.processes import free_port, running_server
from harness.targets import AUDIENCE, Target
from harness.tessera import HOOK_FILE
from harness.tokens import HOOK_SCOPE, TokenExpectation, TokenRequest, wait_until_ready

PEER_LABEL = "peer"
PEER_VM_LABEL = "peer+vm"


def peer_token_request(base_url: str, client_id: str, client_secret: str) -> TokenRequest:
    """The peer's token request: the same grant and audience as Tessera's.

    oidc-provider's token endpoint takes form bodies only (RFC 6749 §4.4.2),
    so this one is form-encoded where Tessera's is JSON. The API is named
    with ``resource`` (RFC 8707, Auth0's ``audience``), and ``extra`` is
    requested, since there is no hook to add it.
    """
    body = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "resource": AUDIENCE,
            "scope": f"read:data {HOOK_SCOPE}",
        }
    ).encode()
    return TokenRequest(
        url=f"{base_url}/token",
        content_type="application/x-www-form-urlencoded",
        body=body,
    )


@contextlib.contextmanager
def running_peer(workdir: Path, *, run_hook: bool = False) -> Iterator[Target]:
    """Start the peer and wait until it serves its JWKS; stop it on the way out.

    ``run_hook``: the peer runs bench/seed_hook.js per token in a new ``vm``
    context (``peer+vm``) instead of adding its claim as a constant.
    """
    label = PEER_VM_LABEL if run_hook else PEER_LABEL
    port = free_port()
    client_id, client_secret = "bench-client", secrets.token_urlsafe(32)
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "PEER_PORT": str(port),
        "PEER_CLIENT_ID": client_id,
        "PEER_CLIENT_SECRET": client_secret,
        "PEER_AUDIENCE": AUDIENCE,
    }
    if run_hook:
        env["PEER_HOOK_FILE"] = str(HOOK_FILE)
    with running_server(
        label,
        [node_executable(), str(BENCH_DIR / "peer_server.mjs")],
        env=env,
        cwd=BENCH_DIR,
        log_path=workdir / f"{'peer-vm' if run_hook else 'peer'}.log",
    ) as server:
        wait_until_ready(server, f"{base_url}/jwks", timeout=30)
        yield Target(
            label=label,
            server=server,
            token_request=peer_token_request(base_url, client_id, client_secret),
            expectation=TokenExpectation(
                issuer=base_url,
                audience=AUDIENCE,
                jwks_url=f"{base_url}/jwks",
                with_hook=True,
            ),
        )
