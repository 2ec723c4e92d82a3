"""Provision many tenants at once for the bench (``--tenants``, ``--noisy-neighbour``).

    python bench/provision_tenants.py SPEC.json   (DATABASE_URL etc. in the environment)

SPEC.json: {"audience": "...", "tenants": [{"slug": "...", "script": "..." | null,
"clients": N}]}. Each tenant gets an RS256 API for ``audience`` (scopes
read:data, write:data), N clients (1 unless given) granted read:data, and,
with a script, its own enabled hook. It goes
through the same services the CLI calls (tenant_create, api_create,
client_create, client_grant_create, hook_create), in one process: 1,000 runs
of the CLI would take far longer than the benchmark. Prints a JSON list of
{"slug", "clients": [{"client_id", "client_secret"}]} on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]
BATCH = 100


def main(spec_path: str) -> int:
    sys.path.insert(0, str(REPO_DIR))
    import django

    django.setup()
    from django.db import transaction

    spec = json.loads(Path(spec_path).read_text())
    audience = str(spec["audience"])
    items = spec["tenants"]
    provisioned = []
    # One commit per batch: a commit per service call (4-5 per tenant) made
    # provisioning wait on the disk.
    for start in range(0, len(items), BATCH):
        with transaction.atomic():
            provisioned += [_provision(item, audience) for item in items[start : start + BATCH]]
    print(json.dumps(provisioned))
    return 0


def _provision(item: dict[str, Any], audience: str) -> dict[str, Any]:
    """One tenant, its API, clients, grants and (with a script) enabled hook."""
    from apis.services import api_create
    from clients.services import client_create, client_grant_create
    from hooks.services import hook_create
    from tenant.audit import Actor
    from tenant.services import tenant_create

    actor = Actor.cli()
    slug = str(item["slug"])
    tenant = tenant_create(slug=slug, name=slug, actor=actor)
    api, _ = api_create(
        tenant=tenant,
        name="Bench API",
        identifier=audience,
        scopes=["read:data", "write:data"],
        actor=actor,
    )
    clients = []
    for number in range(int(item.get("clients") or 1)):
        client, secret = client_create(tenant=tenant, name=f"bench-client-{number}", actor=actor)
        client_grant_create(client=client, api=api, scopes=["read:data"], actor=actor)
        clients.append({"client_id": client.client_id, "client_secret": secret})
    script = item.get("script")
    if script is not None:
        hook_create(tenant=tenant, name="seed", script=script, enabled=True, actor=actor)
    return {"slug": tenant.slug, "clients": clients}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
