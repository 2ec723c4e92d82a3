"""``manage.py hooks …``: the Auth0 hooks CLI of the seeds (``auth0 create -t
credentials-exchange -n NAME -p PROFILE file.js``, ``auth0 enable``, …), with
``-p`` naming the tenant."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from hooks.choices import TriggerId
from hooks.cli import (
    FORCE_HELP,
    add_logs_arguments,
    read_payload,
    read_text,
    show_logs,
    write_report,
    write_table,
)
from hooks.dependencies import packages_for, parse_declared
from hooks.execution import check_script, describe_error
from hooks.models import Hook, HookSecret
from hooks.points import POINTS
from hooks.run_log import prune_runs
from hooks.selectors import hook_get, hook_list
from hooks.services import (
    HookSampleRunFailed,
    hook_create,
    hook_delete,
    hook_disable,
    hook_enable,
    hook_save_script,
    hook_secrets_delete,
    hook_secrets_set,
    hook_update,
)
from hooks.trial_run import hook_test_run
from tenant.audit import Actor
from tenant.cli import TenantCommand, find, parse_pairs
from tenant.models import Tenant


def named_hook(tenant: Tenant, options: dict[str, Any]) -> Hook:
    return find(hook_get, "hook", tenant=tenant, name=options["name"])


DEPENDENCY_HELP = (
    "An npm package the script requires, NAME@VERSION (a version or range; "
    "NAME alone: latest). Repeat for each; resolved from the registry now."
)


def dependencies_of(options: dict[str, Any]) -> dict[str, str] | None:
    """``--dependency`` values as ``{name: range}``; None when none was given."""
    if options.get("dependency") is None:
        return None
    return parse_declared(options["dependency"])


class Command(TenantCommand):
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
        create.add_argument(
            "-d", "--dependency", action="append", metavar="NAME@VERSION", help=DEPENDENCY_HELP
        )
        self.add_tenant_argument(create)
        create.add_argument("file", help="The hook's JavaScript (a CommonJS module).")

        def on_hook(parent: Any, action: str, text: str) -> CommandParser:
            """An action on one of the tenant's hooks: ``NAME -p TENANT``."""
            sub: CommandParser = parent.add_parser(action, help=text)
            sub.add_argument("name")
            self.add_tenant_argument(sub)
            return sub

        update = on_hook(actions, "update", "Save a file as the hook's new version.")
        update.add_argument("file")
        update.add_argument("--force", action="store_true", help=FORCE_HELP)
        update.add_argument(
            "-d",
            "--dependency",
            action="append",
            metavar="NAME@VERSION",
            help=DEPENDENCY_HELP + " Replaces the hook's dependencies.",
        )
        enable = on_hook(actions, "enable", "Enable a hook (disables the point's other hook).")
        enable.add_argument("--force", action="store_true", help=FORCE_HELP)
        on_hook(actions, "disable", "Disable a hook.")
        on_hook(actions, "rm", "Delete a hook with its versions, secrets and runs.")

        ls = actions.add_parser("ls", help="List the tenant's hooks.")
        self.add_tenant_argument(ls)

        secrets = actions.add_parser("secrets", help="Set, list or remove a hook's secrets.")
        secret_actions = secrets.add_subparsers(dest="secrets_action", required=True)
        secrets_set = on_hook(secret_actions, "set", "Add or replace secrets.")
        secrets_set.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
        on_hook(secret_actions, "ls", "List secret names (never values).")
        secrets_rm = on_hook(secret_actions, "rm", "Remove secrets.")
        secrets_rm.add_argument("keys", nargs="+", metavar="KEY")

        run = on_hook(actions, "run", "Run a hook in the test runner.")
        run.add_argument("--payload", help="JSON file of the hook's arguments.")
        run.add_argument("--file", help="Run this script instead of the saved one.")

        logs = actions.add_parser("logs", help="Recent runs; --follow for new ones.")
        add_logs_arguments(logs, follow_flag=True)

        actions.add_parser("prune-runs", help="Delete runs past the retention.")

    def error_message(self, error: ValidationError) -> str:
        message = super().error_message(error)
        if isinstance(error, HookSampleRunFailed):
            return f"{message} Nothing was changed; rerun with --force to go live anyway."
        return message

    def prune_runs(self, options: dict[str, Any]) -> None:
        self.stdout.write(f"Deleted {prune_runs()} hook runs past the retention")

    def create(self, tenant: Tenant, options: dict[str, Any]) -> None:
        script = read_text(options["file"])
        hook = hook_create(
            tenant=tenant,
            name=options["name"],
            script=script,
            trigger_id=options["trigger_id"],
            enabled=False,
            dependencies=dependencies_of(options),
            actor=Actor.cli(),
        )
        self.stdout.write(f"Created hook {hook.name} for {hook.trigger_id}, disabled.")
        self.stdout.write(
            f"Enable it with: python manage.py hooks enable {hook.name} -p {tenant.slug}"
        )

    def update(self, tenant: Tenant, options: dict[str, Any]) -> None:
        script = read_text(options["file"])
        hook = named_hook(tenant, options)
        dependencies = dependencies_of(options)
        if dependencies is not None:
            hook = hook_update(hook=hook, dependencies=dependencies, actor=Actor.cli())
        hook = hook_save_script(
            hook=hook,
            script=script,
            base_version=hook.version,
            actor=Actor.cli(),
            confirm_failing=options["force"],
        )
        state = "enabled" if hook.enabled else "disabled"
        self.stdout.write(f"Saved hook {hook.name} version {hook.version} ({state})")

    def enable(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = named_hook(tenant, options)
        disabled = hook_enable(hook=hook, actor=Actor.cli(), confirm_failing=options["force"])
        self.stdout.write(hook.enabled_message(disabled))

    def disable(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = named_hook(tenant, options)
        hook_disable(hook=hook, actor=Actor.cli())
        self.stdout.write(f"Disabled hook {hook.name}")

    def rm(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = named_hook(tenant, options)
        hook_delete(hook=hook, actor=Actor.cli())
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
        write_table(self.stdout, rows, empty=f"Tenant {tenant.slug} has no hooks.")

    def secrets(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = named_hook(tenant, options)
        action = options["secrets_action"]
        if action == "set":
            pairs = parse_pairs(options["pairs"], "A secret")
            hook_secrets_set(hook=hook, secrets=pairs, actor=Actor.cli())
            self.stdout.write(f"Set secrets on hook {hook.name}: {', '.join(pairs)}")
        elif action == "ls":
            names = list(hook.secrets.values_list("name", flat=True))
            self.stdout.write("\n".join(names) if names else f"Hook {hook.name} has no secrets.")
        else:
            try:
                hook_secrets_delete(hook=hook, names=options["keys"], actor=Actor.cli())
            except HookSecret.DoesNotExist as error:
                raise CommandError(f"Hook {hook.name} has no secret {error}") from None
            self.stdout.write(
                f"Removed secrets from hook {hook.name}: {', '.join(options['keys'])}"
            )

    def run(self, tenant: Tenant, options: dict[str, Any]) -> None:
        hook = named_hook(tenant, options)
        script = read_text(options["file"]) if options["file"] else hook.script
        if options["payload"]:
            payload = read_payload(options["payload"])
        else:
            kind = (
                check_script(
                    tenant=tenant, script=script, packages=packages_for(hook.dependency_lock)
                )
                if options["file"]
                else hook.kind
            )
            payload = POINTS[hook.trigger_id].sample_for(kind)
        report = hook_test_run(
            tenant=tenant, script=script, payload=payload, trigger_id=hook.trigger_id, hook=hook
        )
        write_report(self.stdout, report)
        if report.error is not None:
            raise CommandError(
                f"Hook {hook.name} failed: {describe_error(**report.error.__dict__)}"
            )

    def logs(self, tenant: Tenant, options: dict[str, Any]) -> None:
        show_logs(self, tenant, options, follow=options["follow"])
