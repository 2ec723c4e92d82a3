"""What the hooks commands (``hooks``, ``wt`` and ``actions``) share:
reading files, tables, test-run reports and showing runs."""

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from hooks.choices import RunSource
from hooks.execution import describe_error
from hooks.models import HookRun
from hooks.selectors import hook_get, hook_runs
from hooks.trial_run import TestRunReport
from tenant.cli import TenantCommand, find
from tenant.models import Tenant

FORCE_HELP = (
    "Go live even if the dry run on the tenant's recorded requests and clients "
    "finds requests that would fail."
)


class IntermixedParser(CommandParser):
    """A subcommand's parser whose positionals may come after its options:
    ``update NAME -p TENANT FILE``, the order ``hooks update`` takes them in,
    with FILE optional (plain argparse would have given FILE up at ``-p``)."""

    _parsing = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._parsing:  # argparse's two passes, from parse_known_intermixed_args
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


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


def write_table(out: OutputWrapper, rows: Sequence[Sequence[str]], *, empty: str) -> None:
    """``rows`` (a header, then one per object) in aligned columns, or
    ``empty`` when there is only the header."""
    if len(rows) == 1:
        out.write(empty)
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def write_report(out: OutputWrapper, report: TestRunReport) -> None:
    """A test run as ``hooks run`` and ``actions test`` print it."""

    def block(title: str, text: str) -> None:
        out.write(f"{title}:")
        for line in text.splitlines() or ["(none)"]:
            out.write(f"  {line}")

    out.write(f"Outcome: {report.outcome}")
    out.write(f"Duration: {report.duration_ms:.1f} ms")
    if report.error is None or report.value is not None:
        title = "Action result" if report.kind == "action" else "cb value"
        block(title, json.dumps(report.value, indent=2, default=str))
    if report.scope is not None:
        claims: dict[str, Any] = {"scope": " ".join(report.scope), **report.claims}
        block("Claims issued", json.dumps(claims, indent=2, default=str))
        block("Dropped", "\n".join(f"{d.name}: {d.reason}" for d in report.dropped))
    block("Console", report.console)
    if report.error is not None:
        block("Error", describe_error(**report.error.__dict__))


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
