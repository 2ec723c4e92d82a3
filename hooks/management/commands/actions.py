"""``manage.py actions …``: Auth0's CLI for Actions (``auth0 actions create
--name N --trigger T --code … --dependency … --secret …``, ``show``,
``deploy``…) and for the trigger's flow (``bind``, ``unbind``, ``flow``),
with ``-p`` naming the tenant. An Action is named by its name or its id.

Deploy, rollback, bind and unbind of what a trigger runs are first dry-run
on the tenant's recorded requests and clients: a change that would break
token requests that work today is refused, naming the clients, unless
``--force`` (as ``hooks update|enable --force``).

Secret values come from ``--secret NAME=VALUE``, or, to keep them out of
the shell's history, from ``--secrets-file`` or ``--secret-from-env``; no
command ever prints one back.
"""

import argparse
import json
import os
import re
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from hooks.action_services import (
    ActionStillBound,
    BindingSpec,
    SecretSpec,
    action_bound_triggers,
    action_create,
    action_delete,
    action_deploy,
    action_rollback,
    action_update,
    all_changes_deployed,
    bindings_replace,
    deployed_version,
)
from hooks.choices import ActionRuntime, ActionStatus, TriggerId
from hooks.cli import (
    FORCE_HELP,
    IntermixedParser,
    read_payload,
    read_text,
    write_report,
    write_table,
)
from hooks.dry_run import GoLiveRefused
from hooks.execution import describe_error
from hooks.models import Action, ActionVersion
from hooks.selectors import action_list, action_named, action_secret_names, hook_list
from hooks.selectors import trigger_bindings as bindings_of
from hooks.trial_run import action_test_run
from tenant.audit import Actor
from tenant.cli import TenantCommand, find, parse_pairs
from tenant.models import Tenant

# An npm package name, scoped or not (npm's own rules, lower case).
NPM_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
VERSION = re.compile(r"^[^\s@=]{1,100}$")


def named_action(tenant: Tenant, ref: str) -> Action:
    return find(action_named, "action", tenant=tenant, ref=ref)


def parse_dependency(spec: str) -> dict[str, str]:
    """``name@version``, or ``name=version`` as Auth0's CLI writes it; a
    scoped name keeps its leading ``@``."""
    at = spec.rfind("@")
    if "=" in spec:
        name, _, version = spec.partition("=")
    elif at > 0:
        name, version = spec[:at], spec[at + 1 :]
    else:
        name, version = "", ""
    if not NPM_NAME.match(name) or not VERSION.match(version):
        raise CommandError(f"A dependency must look like NAME@VERSION, got {spec!r}")
    return {"name": name, "version": version}


def read_code(path: str | None) -> str:
    """The code from a file, or from stdin for ``-`` (a terminal is refused:
    the command would wait for input nobody means to type)."""
    if path is None or path == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise CommandError("Give the code as a file argument, or pipe it in with '-'")
        return sys.stdin.read()
    return read_text(path, "code")


def read_secrets(options: dict[str, Any]) -> dict[str, str]:
    """Secrets from ``--secrets-file`` (``NAME=VALUE`` lines, ``#`` comments),
    ``--secret-from-env NAME[=VARIABLE]`` and ``--secret NAME=VALUE``, in that
    order: a later one of the same name wins."""
    secrets: dict[str, str] = {}
    if options["secrets_file"]:
        lines = read_text(options["secrets_file"], "secrets file").splitlines()
        items = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
        secrets.update(parse_pairs(items, "A line of the secrets file"))
    for item in options["secret_from_env"]:
        name, _, variable = item.partition("=")
        value = os.environ.get(variable or name)
        if value is None:
            raise CommandError(f"Environment variable {variable or name} is not set")
        secrets[name] = value
    secrets.update(parse_pairs(options["secret"], "A secret"))
    return secrets


def add_draft_arguments(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        help="The Action's JavaScript; '-' reads it from stdin"
        + (" (the default)." if creating else "; without it, the code is kept."),
    )
    parser.add_argument("-r", "--runtime", choices=ActionRuntime.values)
    parser.add_argument(
        "-d",
        "--dependency",
        action="append",
        default=[],
        metavar="NAME@VERSION",
        help="An npm module (repeatable; NAME=VERSION works too)"
        + ("." if creating else "; the given ones replace the list."),
    )
    parser.add_argument(
        "-s",
        "--secret",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="A secret (repeatable); prefer the next two, which keep it out of shell history.",
    )
    parser.add_argument("--secrets-file", metavar="FILE", help="NAME=VALUE lines.")
    parser.add_argument(
        "--secret-from-env",
        action="append",
        default=[],
        metavar="NAME[=VARIABLE]",
        help="A secret whose value is in an environment variable (repeatable).",
    )


class Command(TenantCommand):
    help = "Create, deploy, test and bind Actions (Auth0's `auth0 actions` CLI)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, parser_class=IntermixedParser)

        def on_action(name: str, text: str) -> CommandParser:
            """An action on one of the tenant's Actions: ``ACTION -p TENANT``."""
            sub: CommandParser = actions.add_parser(name, help=text)
            sub.add_argument("ref", metavar="ACTION", help="The Action's name or id.")
            self.add_tenant_argument(sub)
            return sub

        ls = actions.add_parser("ls", help="List the tenant's Actions.")
        self.add_tenant_argument(ls)
        ls.add_argument("--json", action="store_true", help="One JSON object per Action and line.")

        show = on_action("show", "An Action's draft, status, secrets (names) and deployment.")
        show.add_argument("--json", action="store_true")

        create = actions.add_parser("create", help="Create an Action and build its draft.")
        create.add_argument("-n", "--name", required=True)
        create.add_argument(
            "-t", "--trigger", choices=TriggerId.values, default=TriggerId.CREDENTIALS_EXCHANGE
        )
        self.add_tenant_argument(create)
        add_draft_arguments(create, creating=True)

        update = on_action("update", "Change the draft (live only once deployed).")
        update.add_argument("-n", "--name", dest="new_name", help="Rename the Action.")
        add_draft_arguments(update, creating=False)
        update.add_argument(
            "--rm-secret", action="append", default=[], metavar="NAME", help="Remove a secret."
        )
        update.add_argument(
            "--no-dependencies", action="store_true", help="Remove every dependency."
        )

        deploy = on_action("deploy", "Deploy the draft as a new version.")
        deploy.add_argument("--force", action="store_true", help=FORCE_HELP)
        on_action("versions", "List the deployed versions, newest first.")
        rollback = on_action("rollback", "Deploy an earlier version again, as a new one.")
        rollback.add_argument("version", help="The version's number (or id).")
        rollback.add_argument("--force", action="store_true", help=FORCE_HELP)
        test = on_action("test", "Run the draft on a payload or the sample event.")
        test.add_argument("--payload", help='JSON file: {"event": {...}}, over the sample event.')
        rm = on_action("rm", "Delete an Action with its versions and secrets.")
        rm.add_argument("--force", action="store_true", help="Unbind it first if it is bound.")

        bind = on_action("bind", "Add a deployed Action to its trigger's flow.")
        bind.add_argument(
            "--position", type=int, help="Its place in the flow, from 1 (default: last)."
        )
        bind.add_argument("--display-name", default="")
        bind.add_argument("--force", action="store_true", help=FORCE_HELP)
        unbind = on_action("unbind", "Take an Action out of its trigger's flow.")
        unbind.add_argument("--force", action="store_true", help=FORCE_HELP)
        flow = actions.add_parser("flow", help="What a trigger runs: the hook, then the Actions.")
        self.add_tenant_argument(flow)
        flow.add_argument("-t", "--trigger", choices=TriggerId.values, default=TriggerId.values[0])

    def error_message(self, error: ValidationError) -> str:
        message = super().error_message(error)
        if isinstance(error, ActionStillBound):
            return message.replace("delete it with force=true", "rerun with --force")
        if isinstance(error, GoLiveRefused):
            return f"{message} Nothing was changed; rerun with --force to go live anyway."
        return message

    # --- reading -------------------------------------------------------------------

    def ls(self, tenant: Tenant, options: dict[str, Any]) -> None:
        rows = [("NAME", "ID", "TRIGGER", "STATUS", "DEPLOYED", "UPDATED")]
        for action in action_list(tenant=tenant):
            deployed = deployed_version(action=action)
            if options["json"]:
                self.stdout.write(json.dumps(self.as_json(action, deployed)))
                continue
            live = f"v{deployed.number}" if deployed else "-"
            if deployed and not all_changes_deployed(action=action, deployed=deployed):
                live += " (draft changed)"
            updated = timezone.localtime(action.updated_at).strftime("%Y-%m-%d %H:%M:%S")
            rows.append(
                (action.name, action.public_id, action.trigger_id, action.status, live, updated)
            )
        if not options["json"]:
            write_table(self.stdout, rows, empty=f"Tenant {tenant.slug} has no actions.")

    def as_json(self, action: Action, deployed: ActionVersion | None) -> dict[str, Any]:
        return {
            "id": action.public_id,
            "name": action.name,
            "trigger": action.trigger_id,
            "runtime": action.runtime,
            "status": action.status,
            "errors": action.build_errors,
            "dependencies": action.dependencies,
            "secrets": action_secret_names(action=action),
            "deployed_version": deployed.number if deployed else None,
            "all_changes_deployed": all_changes_deployed(action=action, deployed=deployed),
            "bound": bool(action_bound_triggers(action=action)),
            "code": action.code,
        }

    def show(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        body = self.as_json(action, deployed_version(action=action))
        if options["json"]:
            self.stdout.write(json.dumps(body, indent=2))
            return
        deployed = body["deployed_version"]
        fields = [
            ("Name", action.name),
            ("Id", action.public_id),
            ("Trigger", f"{action.trigger_id} ({action.trigger_version})"),
            ("Runtime", action.runtime),
            ("Status", action.status),
            ("Deployed", f"version {deployed}" if deployed else "no"),
            ("All changes deployed", "yes" if body["all_changes_deployed"] else "no"),
            ("Bound", "yes" if body["bound"] else "no"),
            (
                "Dependencies",
                ", ".join(f"{d['name']}@{d['version']}" for d in action.dependencies) or "-",
            ),
            ("Secrets", ", ".join(body["secrets"]) or "-"),
        ]
        for name, value in fields:
            self.stdout.write(f"{name + ':':<22}{value}")
        for error in action.build_errors:
            self.stdout.write(f"{'Build error:':<22}{error.get('msg', '')}")
        self.stdout.write("Code:")
        for line in action.code.splitlines():
            self.stdout.write(f"  {line}")

    def versions(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        rows = [("VERSION", "DEPLOYED", "CREATED", "ID")]
        for version in action.versions.order_by("-number"):
            created = timezone.localtime(version.created_at).strftime("%Y-%m-%d %H:%M:%S")
            rows.append(
                (
                    str(version.number),
                    "yes" if version.deployed else "no",
                    created,
                    version.public_id,
                )
            )
        write_table(self.stdout, rows, empty=f"Action {action.name} was never deployed.")

    def flow(self, tenant: Tenant, options: dict[str, Any]) -> None:
        trigger = options["trigger"]
        self.stdout.write(f"Flow of {trigger} for tenant {tenant.slug}:")
        steps = 0
        for hook in hook_list(tenant=tenant, enabled=True, trigger_id=trigger):
            steps += 1
            self.stdout.write(f"  hook    {hook.name} (version {hook.version})")
        for position, binding in enumerate(bindings_of(tenant=tenant, trigger_id=trigger), 1):
            steps += 1
            deployed = deployed_version(action=binding.action)
            version = f"version {deployed.number}" if deployed else "not deployed"
            label = binding.display_name or binding.action.name
            named = f" [{binding.action.name}]" if label != binding.action.name else ""
            self.stdout.write(f"  {position:<6}  {label}{named} ({version})")
        if not steps:
            self.stdout.write("  (nothing runs: tokens carry the granted scopes only)")

    # --- writing -------------------------------------------------------------------

    def create(self, tenant: Tenant, options: dict[str, Any]) -> None:
        code = read_code(options["file"])
        secrets = read_secrets(options)
        action = action_create(
            tenant=tenant,
            name=options["name"],
            code=code,
            trigger_id=options["trigger"],
            runtime=options["runtime"] or ActionRuntime.NODE22,
            dependencies=[parse_dependency(d) for d in options["dependency"]],
            secrets=[SecretSpec(name, value) for name, value in secrets.items()],
            actor=Actor.cli(),
        )
        self.stdout.write(f"Created action {action.name} ({action.public_id}), {action.status}.")
        self.report_build(action, tenant)
        self.stdout.write(
            f"Deploy it with: python manage.py actions deploy {action.name} -p {tenant.slug}"
        )

    def update(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        code = read_code(options["file"]) if options["file"] else None
        dependencies = None
        if options["no_dependencies"]:
            dependencies = []
        elif options["dependency"]:
            dependencies = [parse_dependency(d) for d in options["dependency"]]
        given = read_secrets(options)
        secrets = None
        if given or options["rm_secret"]:
            existing = action_secret_names(action=action)
            unknown = [name for name in options["rm_secret"] if name not in existing]
            if unknown:
                raise CommandError(f"Action {action.name} has no secret {unknown[0]}")
            kept = [n for n in existing if n not in options["rm_secret"] and n not in given]
            secrets = [SecretSpec(name, None) for name in kept]
            secrets += [SecretSpec(name, value) for name, value in given.items()]
        action = action_update(
            action=action,
            actor=Actor.cli(),
            name=options["new_name"],
            code=code,
            runtime=options["runtime"],
            dependencies=dependencies,
            secrets=secrets,
        )
        self.stdout.write(f"Saved action {action.name}, {action.status}; not live until deployed.")
        self.report_build(action, tenant)

    def report_build(self, action: Action, tenant: Tenant) -> None:
        if action.status != ActionStatus.FAILED:
            return
        errors = "; ".join(error.get("msg", "") for error in action.build_errors)
        raise CommandError(
            f"Action {action.name} was saved but failed to build: {errors} "
            f"(fix it with: python manage.py actions update {action.name} -p {tenant.slug} FILE)"
        )

    def deploy(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        before = deployed_version(action=action)
        version = action_deploy(action=action, actor=Actor.cli(), confirm_failing=options["force"])
        if before is not None and before.pk == version.pk:
            self.stdout.write(
                f"Action {action.name} version {version.number} is already the draft; "
                "nothing to deploy."
            )
            return
        self.stdout.write(f"Deployed action {action.name} version {version.number}")

    def rollback(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        ref = options["version"]
        versions = action.versions.all()
        version = (
            versions.filter(number=int(ref)).first()
            if ref.isdecimal()
            else versions.filter(public_id=ref).first()
        )
        if version is None:
            raise CommandError(f"Action {action.name} has no version {ref}")
        new = action_rollback(
            action=action, version=version, actor=Actor.cli(), confirm_failing=options["force"]
        )
        self.stdout.write(
            f"Deployed action {action.name} version {new.number} "
            f"(the code of version {version.number})"
        )

    def rm(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        bound = action_bound_triggers(action=action)
        action_delete(action=action, actor=Actor.cli(), force=options["force"])
        unbound = f"; unbound it from {', '.join(bound)}" if bound else ""
        self.stdout.write(f"Deleted action {action.name}{unbound}")

    def test(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        payload = read_payload(options["payload"]) if options["payload"] else None
        report = action_test_run(action=action, payload=payload)
        write_report(self.stdout, report)
        if report.error is not None:
            raise CommandError(
                f"Action {action.name} failed: {describe_error(**report.error.__dict__)}"
            )

    def bind(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        current = list(bindings_of(tenant=tenant, trigger_id=action.trigger_id))
        if any(binding.action_id == action.pk for binding in current):
            raise CommandError(f"Action {action.name} is already bound to {action.trigger_id}")
        specs = [BindingSpec(b.action, b.display_name) for b in current]
        position = options["position"] or len(specs) + 1
        if not 1 <= position <= len(specs) + 1:
            raise CommandError(f"--position must be between 1 and {len(specs) + 1}")
        specs.insert(position - 1, BindingSpec(action, options["display_name"] or action.name))
        bindings_replace(
            tenant=tenant,
            trigger_id=action.trigger_id,
            bindings=specs,
            actor=Actor.cli(),
            confirm_failing=options["force"],
        )
        self.stdout.write(
            f"Bound action {action.name} to {action.trigger_id} at position {position} "
            f"of {len(specs)}"
        )

    def unbind(self, tenant: Tenant, options: dict[str, Any]) -> None:
        action = named_action(tenant, options["ref"])
        current = list(bindings_of(tenant=tenant, trigger_id=action.trigger_id))
        remaining = [
            BindingSpec(b.action, b.display_name) for b in current if b.action_id != action.pk
        ]
        if len(remaining) == len(current):
            raise CommandError(f"Action {action.name} is not bound to {action.trigger_id}")
        bindings_replace(
            tenant=tenant,
            trigger_id=action.trigger_id,
            bindings=remaining,
            actor=Actor.cli(),
            confirm_failing=options["force"],
        )
        self.stdout.write(f"Unbound action {action.name} from {action.trigger_id}")
