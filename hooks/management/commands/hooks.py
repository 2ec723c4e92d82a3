"""``manage.py hooks …``: the Auth0 hooks CLI of the seeds (``auth0 create -t
credentials-exchange -n NAME -p PROFILE file.js``, ``auth0 enable``, …), with
``-p`` naming the tenant."""

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from time import sleep
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from clients.management.commands.client import parse_pairs
from hooks.choices import TriggerId
from hooks.execution import describe_error
from hooks.models import Hook, HookRun, HookSecret
from hooks.points import POINTS
from hooks.run_log import prune_runs
from hooks.selectors import hook_get, hook_list, hook_runs
from hooks.services import (
    hook_create,
    hook_delete,
    hook_disable,
    hook_enable,
    hook_save_script,
    hook_secret_delete,
    hook_secrets_set,
)
from hooks.test_runner import TestRunReport, hook_test_run
from tenant.management.commands.tenant import get_tenant, validation_message
from tenant.models import Tenant

FOLLOW_INTERVAL_S = 1.0


def add_tenant_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--tenant", required=True, help="Tenant slug (the seeds' profile).")


def read_text(path: str, what: str = "script") -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CommandError(f"Cannot read {what} {path}: {reason}") from None


def read_payload(path: str) -> Any:
    try:
        return json.loads(read_text(path, "payload"))
    except json.JSONDecodeError as error:
        raise CommandError(f"Payload {path} is not valid JSON: {error}") from None


def get_hook(tenant: Tenant, name: str) -> Hook:
    try:
        return hook_get(tenant=tenant, name=name)
    except Hook.DoesNotExist:
        raise CommandError(f"Unknown hook for tenant {tenant.slug}: {name}") from None


def enable_message(hook: Hook, disabled: Hook | None) -> str:
    message = f"Enabled hook {hook.name} for {hook.trigger_id}"
    if disabled is not None:
        return f"{message}; disabled {disabled.name} (one hook per point can be enabled)"
    return message


def add_logs_arguments(parser: argparse.ArgumentParser) -> None:
    add_tenant_argument(parser)
    parser.add_argument("name", nargs="?", help="Only this hook's runs.")
    parser.add_argument("--json", action="store_true", help="One JSON object per run and line.")
    parser.add_argument("--limit", type=int, default=20, help="Recent runs shown first.")
    # For tests: stop following after this many polls, and poll this often.
    parser.add_argument("--max-polls", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--poll-interval", type=float, default=FOLLOW_INTERVAL_S, help=argparse.SUPPRESS
    )


def run_as_json(run: HookRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "time": run.started_at.isoformat(),
        "hook": run.hook.name if run.hook else None,
        "source": run.source,
        "outcome": run.outcome,
        "duration_ms": round(run.duration_ms, 3),
        "console": run.console,
        "error": run.error,
    }


def write_runs(out: OutputWrapper, runs: Iterable[HookRun], *, as_json: bool) -> int | None:
    """Print runs oldest first; returns the id of the last one printed."""
    last_id = None
    for run in runs:
        last_id = run.pk
        if as_json:
            out.write(json.dumps(run_as_json(run)))
            continue
        started = timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M:%S")
        hook = run.hook.name if run.hook else "-"
        out.write(f"{started}  {hook}  {run.outcome}  {run.duration_ms:.1f} ms  ({run.source})")
        for line in run.console.splitlines():
            out.write(f"    {line}")
        if run.error:
            out.write(f"    error: {run.error}")
    out.flush()
    return last_id


def show_logs(out: OutputWrapper, tenant: Tenant, options: dict[str, Any], *, follow: bool) -> None:
    """Recent runs, then with ``follow`` new ones until interrupted (``wt logs``)."""
    hook = get_hook(tenant, options["name"]) if options.get("name") else None
    runs = hook_runs(tenant=tenant, hook=hook)
    recent = list(runs[: max(options["limit"], 0)])[::-1]
    last_id = write_runs(out, recent, as_json=options["json"])
    if last_id is None:
        last_id = runs.aggregate(last=Max("id"))["last"] or 0
    if not follow:
        return
    if not options["json"]:
        out.write("Following new runs; press Ctrl+C to stop.")
        out.flush()
    polls = 0
    try:
        while options["max_polls"] is None or polls < options["max_polls"]:
            sleep(options["poll_interval"])
            polls += 1
            new = runs.filter(id__gt=last_id).order_by("id")
            last_id = write_runs(out, new, as_json=options["json"]) or last_id
    except KeyboardInterrupt:
        out.write("")


class Command(BaseCommand):
    help = "Create, enable, run and follow hooks (the Auth0 hooks CLI)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)

        create = actions.add_parser("create", help="Create a hook from a file, disabled.")
        create.add_argument(
            "-t",
            "--type",
            dest="trigger_id",
            choices=TriggerId.values,
            default=TriggerId.CREDENTIALS_EXCHANGE,
            help="Extensibility point.",
        )
        create.add_argument("-n", "--name", required=True)
        add_tenant_argument(create)
        create.add_argument("file", help="The hook's JavaScript (a CommonJS module).")

        update = actions.add_parser("update", help="Save a file as the hook's new version.")
        update.add_argument("name")
        add_tenant_argument(update)
        update.add_argument("file")

        for action, text in [
            ("enable", "Enable a hook (disables the point's other hook)."),
            ("disable", "Disable a hook."),
            ("rm", "Delete a hook with its versions, secrets and runs."),
        ]:
            sub = actions.add_parser(action, help=text)
            sub.add_argument("name")
            add_tenant_argument(sub)

        ls = actions.add_parser("ls", help="List the tenant's hooks.")
        add_tenant_argument(ls)

        secrets = actions.add_parser("secrets", help="Set, list or remove a hook's secrets.")
        secret_actions = secrets.add_subparsers(dest="secrets_action", required=True)
        secrets_set = secret_actions.add_parser("set", help="Add or replace secrets.")
        secrets_set.add_argument("name")
        add_tenant_argument(secrets_set)
        secrets_set.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
        secrets_ls = secret_actions.add_parser("ls", help="List secret names (never values).")
        secrets_ls.add_argument("name")
        add_tenant_argument(secrets_ls)
        secrets_rm = secret_actions.add_parser("rm", help="Remove secrets.")
        secrets_rm.add_argument("name")
        add_tenant_argument(secrets_rm)
        secrets_rm.add_argument("keys", nargs="+", metavar="KEY")

        run = actions.add_parser("run", help="Run a hook in the test runner.")
        run.add_argument("name")
        add_tenant_argument(run)
        run.add_argument("--payload", help="JSON file of the hook's arguments.")
        run.add_argument("--file", help="Run this script instead of the saved one.")

        logs = actions.add_parser("logs", help="Recent runs; --follow for new ones.")
        add_logs_arguments(logs)
        logs.add_argument("-f", "--follow", action="store_true", help="Stream new runs.")

        actions.add_parser("prune-runs", help="Delete runs past the retention.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "prune-runs":
            self.stdout.write(f"Deleted {prune_runs()} hook runs past the retention")
            return
        tenant = get_tenant(options["tenant"])
        handler = getattr(self, action.replace("-", "_"))
        try:
            handler(tenant, options)
        except ValidationError as error:
            raise CommandError(validation_message(error)) from None

    def create(self, tenant: Tenant, options: dict[str, Any]) -> None:
        script = read_text(options["file"])
        hook = hook_create(
            tenant=tenant,
            name=options["name"],
            script=script,
            trigger_id=options["trigger_id"],
            enabled=False,
        )
        self.stdout.write(f"Created hook {hook.name} for {hook.trigger_id}, disabled.")
        self.stdout.write(
            f"Enable it with: python manage.py hooks enable {hook.name} -p {tenant.slug}"
        )

    def update(self, tenant: Tenant, options: dict[str, Any]) -> None:
        script = read_text(options["file"])
        hook = get_hook(tenant, options["name"])
        hook = hook_save_script(hook=hook, script=script, base_version=hook.version)
        state = "enabled" if hook.enabled else "disabled"
        self.stdout.write(f"Saved hook {hook.name} version {hook.version} ({state})")

    def enable(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = get_hook(tenant, options["name"])
        self.stdout.write(enable_message(hook, hook_enable(hook=hook)))

    def disable(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = get_hook(tenant, options["name"])
        hook_disable(hook=hook)
        self.stdout.write(f"Disabled hook {hook.name}")

    def rm(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = get_hook(tenant, options["name"])
        hook_delete(hook=hook)
        self.stdout.write(f"Deleted hook {options['name']}")

    def ls(self, tenant: Tenant, options: dict[str, Any]) -> None:
        rows = [("NAME", "POINT", "ENABLED", "VERSION", "UPDATED")]
        for hook in hook_list(tenant=tenant):
            rows.append(
                (
                    hook.name,
                    hook.trigger_id,
                    "yes" if hook.enabled else "no",
                    str(hook.version),
                    timezone.localtime(hook.updated_at).strftime("%Y-%m-%d %H:%M:%S"),
                )
            )
        if len(rows) == 1:
            self.stdout.write(f"Tenant {tenant.slug} has no hooks.")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )

    def secrets(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = get_hook(tenant, options["name"])
        action = options["secrets_action"]
        if action == "set":
            pairs = parse_pairs(options["pairs"], "A secret")
            hook_secrets_set(hook=hook, secrets=pairs)
            self.stdout.write(f"Set secrets on hook {hook.name}: {', '.join(pairs)}")
        elif action == "ls":
            names = list(hook.secrets.values_list("name", flat=True))
            self.stdout.write("\n".join(names) if names else f"Hook {hook.name} has no secrets.")
        else:
            with transaction.atomic():
                for key in options["keys"]:
                    try:
                        hook_secret_delete(hook=hook, name=key)
                    except HookSecret.DoesNotExist:
                        raise CommandError(f"Hook {hook.name} has no secret {key}") from None
            self.stdout.write(
                f"Removed secrets from hook {hook.name}: {', '.join(options['keys'])}"
            )

    def run(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = get_hook(tenant, options["name"])
        script = read_text(options["file"]) if options["file"] else hook.script
        payload = (
            read_payload(options["payload"])
            if options["payload"]
            else POINTS[hook.trigger_id].sample_payload
        )
        report = hook_test_run(
            tenant=tenant, script=script, payload=payload, trigger_id=hook.trigger_id, hook=hook
        )
        self.write_report(report)
        if report.error is not None:
            raise CommandError(
                f"Hook {hook.name} failed: {describe_error(**report.error.__dict__)}"
            )

    def write_report(self, report: TestRunReport) -> None:
        def block(title: str, text: str) -> None:
            self.stdout.write(f"{title}:")
            for line in text.splitlines() or ["(none)"]:
                self.stdout.write(f"  {line}")

        self.stdout.write(f"Outcome: {report.outcome}")
        self.stdout.write(f"Duration: {report.duration_ms:.1f} ms")
        if report.error is None or report.value is not None:
            block("cb value", json.dumps(report.value, indent=2, default=str))
        if report.scope is not None:
            claims: dict[str, Any] = {"scope": " ".join(report.scope), **report.claims}
            block("Claims issued", json.dumps(claims, indent=2, default=str))
            block("Dropped", "\n".join(f"{d.name}: {d.reason}" for d in report.dropped))
        block("Console", report.console)
        if report.error is not None:
            block("Error", describe_error(**report.error.__dict__))

    def logs(self, tenant: Tenant, options: dict[str, Any]) -> None:
        show_logs(self.stdout, tenant, options, follow=options["follow"])
