"""What the hooks commands (``hooks`` and ``wt``) share: reading files,
finding a hook, and showing runs."""

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from time import sleep
from typing import Any

from django.core.management.base import CommandError, OutputWrapper
from django.db.models import Max
from django.utils import timezone

from hooks.choices import RunSource
from hooks.models import Hook, HookRun
from hooks.selectors import hook_get, hook_runs
from tenant.models import Tenant

FOLLOW_INTERVAL_S = 1.0
FORCE_HELP = "Go live even if the script fails on its point's sample payload."


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
    parser.add_argument(
        "--source",
        choices=RunSource.values,
        help="Only token requests or only test runs (default: both, each labelled).",
    )
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
    if options.get("source"):
        runs = runs.filter(source=options["source"])
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
