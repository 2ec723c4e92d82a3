"""``manage.py tenant create|rotate-key|settings|audit``."""

import json
from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction
from django.utils import timezone

from tenant.audit import Actor
from tenant.cli import TenantCommand, get_tenant
from tenant.models import AuditEntry, Tenant
from tenant.selectors import audit_entries
from tenant.services import tenant_create, tenant_rotate_key


def audit_as_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "time": entry.created_at.isoformat(),
        "actor": {"kind": entry.actor_kind, "id": entry.actor_id, "name": entry.actor_name},
        "source": entry.source,
        "action": entry.action,
        "object": {"type": entry.object_type, "id": entry.object_id, "repr": entry.object_repr},
        "before": entry.before,
        "after": entry.after,
    }


class Command(TenantCommand):
    help = "Create tenants, rotate their signing keys, read their audit trail."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a tenant with its first signing key.")
        create.add_argument("slug")
        create.add_argument("--name", default="")
        create.add_argument("--domain", default=None, help="Serve the tenant on this host.")
        create.add_argument(
            "--management",
            action="store_true",
            help="Also create a client granted every Management API scope (secret shown once).",
        )
        rotate = actions.add_parser("rotate-key", help="Sign with a new key from now on.")
        rotate.add_argument("slug")
        tenant_settings = actions.add_parser(
            "settings",
            help="Show the tenant's settings, or change them: its name, and the only hosts "
            "its hooks may call.",
        )
        self.add_tenant_argument(tenant_settings)
        tenant_settings.add_argument("--name", default=None, help="The tenant's display name.")
        tenant_settings.add_argument(
            "--egress-hosts",
            default=None,
            metavar="HOSTS",
            help="Comma-separated host, *.domain, address or network, each with an optional "
            ":port; the only ones its hooks may call, within the operator's policy. "
            '"" removes the list.',
        )
        tenant_settings.add_argument("--json", action="store_true", help="As one JSON object.")
        audit = actions.add_parser("audit", help="Who changed what, newest last.")
        self.add_tenant_argument(audit)
        self.add_follow_arguments(audit)
        audit.add_argument("--json", action="store_true", help="One JSON object per line.")
        audit.add_argument("--limit", type=int, default=50, help="Recent entries shown first.")

    def rotate_key(self, options: dict[str, Any]) -> None:
        tenant = get_tenant(options["slug"])
        key = tenant_rotate_key(tenant=tenant, actor=Actor.cli())
        self.stdout.write(f"Tenant {tenant.slug} now signs with key {key.kid}")

    def create(self, options: dict[str, Any]) -> None:
        from clients.services import management_client_create  # clients depends on tenant

        with transaction.atomic():
            tenant = tenant_create(
                slug=options["slug"],
                name=options["name"],
                domain=options["domain"],
                actor=Actor.cli(),
            )
            management = (
                management_client_create(tenant=tenant, actor=Actor.cli())
                if options["management"]
                else None
            )
        self.stdout.write(f"Created tenant {tenant.slug}; issuer {tenant.issuer}")
        if management is not None:
            client, secret = management
            self.stdout.write(f"Management API:  {tenant.issuer}api/v2/")
            self.stdout.write(f"client_id:       {client.client_id}")
            self.stdout.write(f"client_secret:   {secret}  (shown once; store it now)")

    def settings(self, tenant: Tenant, options: dict[str, Any]) -> None:
        from hooks.selectors import tenant_egress_list  # hooks depends on tenant
        from hooks.services import tenant_settings_update

        hosts = options["egress_hosts"]
        if options["name"] is not None or hosts is not None:
            tenant = tenant_settings_update(
                tenant=tenant,
                friendly_name=options["name"],
                egress_hosts=None if hosts is None else [h for h in hosts.split(",") if h.strip()],
                actor=Actor.cli(),
            )
        listed = tenant_egress_list(tenant=tenant)
        if options["json"]:
            self.stdout.write(
                json.dumps({"slug": tenant.slug, "name": tenant.name, "egress_hosts": listed})
            )
            return
        self.stdout.write(f"Tenant {tenant.slug}: {tenant.name}")
        self.stdout.write(
            "Hooks may call: "
            + (", ".join(listed) if listed else "any host the operator's policy allows")
        )

    def audit(self, tenant: Tenant, options: dict[str, Any]) -> None:
        self.show_rows(
            options,
            audit_entries(tenant=tenant),
            lambda entries: self.write_entries(entries, as_json=options["json"]),
            follow=options["follow"],
        )

    def write_entries(self, entries: list[AuditEntry], *, as_json: bool) -> int | None:
        last_id = None
        for entry in entries:
            last_id = entry.pk
            if as_json:
                self.stdout.write(json.dumps(audit_as_json(entry)))
                continue
            when = timezone.localtime(entry.created_at).strftime("%Y-%m-%d %H:%M:%S")
            fields = entry.summary
            self.stdout.write(
                f"{when}  {entry.source}  {entry.actor_kind}:{entry.actor_name or '-'}  "
                f"{entry.action} {entry.object_type} {entry.object_repr}"
                + (f"  ({fields})" if fields else "")
            )
        self.stdout.flush()
        return last_id
