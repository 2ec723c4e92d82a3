"""The node side of the bench: dependencies pinned in bench/package-lock.json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harness.processes import ProcessError, run_command

BENCH_DIR = Path(__file__).resolve().parents[1]
NODE_PACKAGES = ("oidc-provider", "autocannon")


def node_executable() -> str:
    """Path of ``node``; fail clearly if it is not installed."""
    node = shutil.which("node")
    if node is None:
        raise ProcessError("node is not on PATH (the peer and the load generator need Node 20+)")
    return node


def locked_version(package: str) -> str:
    """The version of ``package`` pinned in bench/package-lock.json."""
    lock = json.loads((BENCH_DIR / "package-lock.json").read_text())
    return str(lock["packages"][f"node_modules/{package}"]["version"])


def installed_version(package: str) -> str | None:
    """The version of ``package`` in bench/node_modules, or None if absent."""
    manifest = BENCH_DIR / "node_modules" / package / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text())["version"])


def ensure_node_modules() -> None:
    """Run ``npm ci`` in bench/ unless node_modules already matches the lock file."""
    if all(installed_version(name) == locked_version(name) for name in NODE_PACKAGES):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise ProcessError("npm is not on PATH; it installs bench/node_modules")
    print("bench: installing node packages (npm ci) ...", flush=True)
    run_command(
        [npm, "ci", "--no-audit", "--no-fund"],
        env=os.environ,
        cwd=BENCH_DIR,
        timeout=600,
    )
