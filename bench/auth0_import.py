"""How long ``manage.py auth0 import`` takes to bring over a large tenant.

    .venv/bin/python bench/auth0_import.py                  # 1,000 clients, SQLite
    .venv/bin/python bench/auth0_import.py --db postgres --clients 1000

It writes a Deploy CLI-shaped directory (one API, N machine clients with
their client_id and secret, one grant each: the layout ``a0deploy export``
writes), makes a fresh database and a tenant, then times
``manage.py auth0 import -p bench --from-dir DIR`` as an operator runs it
(plan and import, one process), and a second run of the same import (which
must change nothing). The target: 1,000 clients and 1,000 grants in under a
minute on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
AUDIENCE = "https://api.import-bench.test/"
TARGET_S = 60.0
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_DB = "tessera_bench_import"


def write_export(root: Path, clients: int) -> None:
    """The Deploy CLI's directory layout, as its handlers write it."""
    for folder in ("resource-servers", "clients", "grants"):
        (root / folder).mkdir(parents=True)
    api = {
        "name": "Import bench API",
        "identifier": AUDIENCE,
        "scopes": [{"value": "read:data", "description": "Read"}],
        "signing_alg": "RS256",
        "token_lifetime": 86400,
    }
    (root / "resource-servers" / "Import bench API.json").write_text(json.dumps(api))
    for n in range(clients):
        name = f"worker-{n:05d}"
        client = {
            "name": name,
            "client_id": f"benchClient{n:05d}abcdefghijklmnop",
            "client_secret": f"bench-secret-{n:05d}-0123456789abcdefghijklmnopqrstuvwxyz",
            "app_type": "non_interactive",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_post",
            "client_metadata": {"plan": "gold", "n": str(n)},
        }
        (root / "clients" / f"{name}.json").write_text(json.dumps(client))
        grant = {"client_id": name, "audience": AUDIENCE, "scope": ["read:data"]}
        (root / "grants" / f"{name}-Import bench API.json").write_text(json.dumps(grant))


def manage(env: dict[str, str], *args: str) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one command."""
    cpu_before = _children_cpu()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return elapsed, _children_cpu() - cpu_before, done.stdout


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        root = Path(tmp)
        if options.db == "sqlite":
            database_url = f"sqlite:///{root / 'bench.sqlite3'}"
        else:
            subprocess.run(
                ["psql", POSTGRES_ADMIN, "-c", f"DROP DATABASE IF EXISTS {POSTGRES_DB}"],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                ["psql", POSTGRES_ADMIN, "-c", f"CREATE DATABASE {POSTGRES_DB}"],
                check=True,
                capture_output=True,
            )
            database_url = f"postgresql://postgres@127.0.0.1:5432/{POSTGRES_DB}"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TESSERA_", "DATABASE_URL", "REDIS_URL"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="tenant.site.settings", DATABASE_URL=database_url, REDIS_URL=""
        )
        export = root / "export"
        write_export(export, options.clients)
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "tenant", "create", "bench")
        load = os.getloadavg()[0]
        first, first_cpu, out = manage(
            env, "auth0", "import", "-p", "bench", "--from-dir", str(export)
        )
        second, second_cpu, again = manage(
            env, "auth0", "import", "-p", "bench", "--from-dir", str(export)
        )
        if options.db == "postgres":
            subprocess.run(
                ["psql", POSTGRES_ADMIN, "-c", f"DROP DATABASE IF EXISTS {POSTGRES_DB}"],
                check=False,
                capture_output=True,
            )
    summary = next(line for line in out.splitlines() if line.startswith("Imported into"))
    assert "already holds" in again, again[-2000:]
    n = options.clients
    print(f"auth0 import, {options.db}: {n} clients + {n} grants + 1 API")
    print(f"  first run:  {first:6.1f} s wall, {first_cpu:5.1f} s CPU  ({summary})")
    print(f"  second run: {second:6.1f} s wall, {second_cpu:5.1f} s CPU  (nothing to change)")
    print(f"  load average when it started: {load:.1f} on {os.cpu_count()} cores")
    # One process, one transaction: on an idle machine its wall time is its
    # CPU time; on a shared one the wall time is mostly waiting for a core.
    for what, seconds in (("wall", first), ("CPU", first_cpu)):
        verdict = "meets" if seconds < TARGET_S else "MISSES"
        print(f"  first run {what} time {verdict} the target of {TARGET_S:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
