"""What the hooks commands (``hooks`` and ``wt``) share: reading files and
showing runs."""

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, OutputWrapper
from django.utils import timezone

from hooks.choices import RunSource
from hooks.models import HookRun
from hooks.selectors import hook_get, hook_runs
from tenant.cli import TenantCommand, find
from tenant.models import Tenant

FORCE_HELP = (
    "Go live even if the dry run on the tenant's recorded requests and clients "
    "finds requests that would fail."
)


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


def add_logs_arguments(parser: argparse.ArgumentParser, *, follow_flag: bool) -> None:
    """``logs``: of ``hooks`` with ``-f/--follow``, of ``wt`` always following."""
    TenantCommand.add_tenant_argument(parser)
    parser.add_argument("name", nargs="?", help="Only this hook's runs.")
    parser.add_argument("--json", action="store_true", help="One JSON object per run and line.")
    parser.add_argument("--limit", type=int, default=20, help="Recent runs shown first.")
    parser.add_argument(
        "--source",
        choices=RunSource.values,
        help="Only token requests or only test runs (default: both, each labelled).",
    )
    TenantCommand.add_follow_arguments(parser, flag=follow_flag)


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


def show_logs(
    command: TenantCommand, tenant: Tenant, options: dict[str, Any], *, follow: bool
) -> None:
    """Recent runs, then with ``follow`` new ones until interrupted."""
    hook = find(hook_get, "hook", tenant=tenant, name=options["name"]) if options["name"] else None
    runs = hook_runs(tenant=tenant, hook=hook)
    if options["source"]:
        runs = runs.filter(source=options["source"])
    command.show_rows(
        options,
        runs,
        lambda new: write_runs(command.stdout, new, as_json=options["json"]),
        follow=follow,
        banner="" if options["json"] else "Following new runs; press Ctrl+C to stop.",
    )
