"""The base of the tenant-scoped commands (``tenant.cli.TenantCommand``):
every action that works on a tenant takes ``-p`` and ``--tenant`` and
answers an unknown tenant with one line and exit 1; ``--follow`` shows what
is written after it started, run as a user runs it (``manage.py`` in its own
process, the row written by another)."""

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.utils import timezone

from hooks.choices import RunOutcome, RunSource
from hooks.models import Hook, HookRun
from hooks.services import hook_create, hook_disable
from tenant.audit import Actor
from tenant.cli import TenantCommand
from tenant.selectors import audit_entries
from tests.database import database_url
from tests.factories import make_tenant

PROJECT_APPS = {"apis", "clients", "hooks", "tenant.site"}
# What names no tenant with -p: creating one, taking its slug as an argument,
# working on every tenant, or the demo.
NOT_TENANT_SCOPED = {
    ("tenant", "create"),
    ("tenant", "rotate-key"),
    ("hooks", "prune-runs"),
    ("demo",),
}
GOOD = "module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: s}); };\n"


def project_commands() -> list[str]:
    return sorted(name for name, app in get_commands().items() if app in PROJECT_APPS)


def leaf_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
    for action in subparsers:
        for name, subparser in action.choices.items():
            yield from leaf_parsers(subparser, (*path, name))


def all_actions() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []
    for name in project_commands():
        command = load_command_class(get_commands()[name], name)
        parser = command.create_parser("manage.py", name)
        found.extend(leaf_parsers(parser, (name,)))
    return found


def tenant_option(parser: argparse.ArgumentParser) -> argparse.Action | None:
    return next((a for a in parser._actions if "--tenant" in a.option_strings), None)


def argv(path: tuple[str, ...], parser: argparse.ArgumentParser, flag: str) -> list[str]:
    """The shortest command line for the action, naming the tenant with ``flag``."""
    args = list(path)
    for action in parser._actions:
        if action.option_strings == [] and action.nargs != "?":
            args.append("x")
        elif "--tenant" in action.option_strings:
            args += [flag, "nope"]
        elif action.required:
            args += [action.option_strings[-1], "x"]
    return args


TENANT_ACTIONS = [(path, parser) for path, parser in all_actions() if tenant_option(parser)]


def test_every_action_either_names_its_tenant_with_p_or_is_known_not_to():
    paths = {path[:2] for path, _ in all_actions()}
    scoped = {path[:2] for path, _ in TENANT_ACTIONS}
    assert paths - scoped == NOT_TENANT_SCOPED
    # The commands this suite knows of: a new one shows up here.
    assert {path[0] for path in paths} == {
        "actions",
        "api",
        "auth0",
        "client",
        "demo",
        "hooks",
        "tenant",
        "wt",
    }
    for path, parser in TENANT_ACTIONS:
        option = tenant_option(parser)
        assert option is not None and option.required, path
        assert option.option_strings == ["-p", "--tenant"], path
    for name in {path[0] for path in scoped}:
        assert isinstance(load_command_class(get_commands()[name], name), TenantCommand), name


@pytest.mark.django_db
@pytest.mark.parametrize("flag", ["-p", "--tenant"])
@pytest.mark.parametrize(
    ("path", "parser"), TENANT_ACTIONS, ids=[" ".join(p) for p, _ in TENANT_ACTIONS]
)
def test_an_unknown_tenant_is_one_line_and_exit_1(path, parser, flag):
    make_tenant("acme")
    make_tenant("globex")
    with pytest.raises(CommandError) as raised:
        call_command(*argv(path, parser, flag))
    assert str(raised.value) == "Unknown tenant: nope"
    assert raised.value.returncode == 1


@pytest.mark.django_db
def test_an_unknown_tenant_from_manage_py_is_one_line_on_stderr_and_exit_1():
    make_tenant("acme")
    result = subprocess.run(
        [sys.executable, "manage.py", "hooks", "ls", "--tenant", "nope"],
        env={**os.environ, "DATABASE_URL": database_url()},
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "CommandError: Unknown tenant: nope\n",
    )


@pytest.mark.django_db
def test_a_service_refusal_is_one_line_and_exit_1():
    tenant = make_tenant("acme")
    make_tenant("globex")
    hook_create(tenant=tenant, name="h", script=GOOD, actor=Actor.cli())
    with pytest.raises(CommandError) as raised:
        call_command("hooks", "secrets", "set", "h", "-p", "acme", "bad name=1")
    assert "\n" not in str(raised.value) and "secret names" in str(raised.value)
    assert raised.value.returncode == 1


# --- --follow, in a process of its own ------------------------------------------------------


class Following:
    """``manage.py ARGS`` running in its own process; its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our manage.py
            [sys.executable, "manage.py", *args, "--poll-interval", "0.1"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl+C as in a terminal, even where the suite was started in the
            # background (SIGINT ignored, which the child would inherit).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 60) -> str:
        """The first line (from now on) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self._queue.empty():
                    break
                continue
            self.lines.append(line)
            if predicate(line):
                return line
        raise AssertionError(
            f"not seen within {timeout}s; stdout: {self.lines!r}; exited: {self.process.poll()!r}"
        )

    def interrupt(self) -> tuple[int, str]:
        """Ctrl+C; returns the exit code and stderr."""
        self.process.send_signal(signal.SIGINT)
        _, stderr = self.process.communicate(timeout=30)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=30)


@pytest.fixture
def following():
    started: list[Following] = []

    def start(*args: str) -> Following:
        started.append(Following(*args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def add_run(hook: Hook, console: str) -> HookRun:
    return HookRun.objects.create(
        hook=hook,
        tenant=hook.tenant,
        source=RunSource.TOKEN,
        started_at=timezone.now(),
        duration_ms=1.0,
        outcome=RunOutcome.OK,
        console=console,
        error="",
    )


@pytest.mark.django_db(transaction=True)
def test_hooks_logs_follow_shows_a_run_written_after_it_started(following):
    mine = hook_create(tenant=make_tenant("acme"), name="h", script=GOOD, actor=Actor.cli())
    theirs = hook_create(tenant=make_tenant("globex"), name="h", script=GOOD, actor=Actor.cli())
    add_run(mine, "before the start")
    logs = following("hooks", "logs", "-p", "acme", "--follow")
    logs.wait_for(lambda line: "before the start" in line)
    logs.wait_for(lambda line: line.startswith("Following new runs"))

    add_run(theirs, "another tenant's run")
    add_run(mine, "after the start")
    logs.wait_for(lambda line: "after the start" in line)
    code, stderr = logs.interrupt()

    assert (code, stderr) == (0, "")
    assert not any("another tenant's run" in line for line in logs.lines)
    assert sum("after the start" in line for line in logs.lines) == 1


@pytest.mark.django_db(transaction=True)
def test_tenant_audit_follow_shows_an_entry_written_after_it_started(following):
    acme = make_tenant("acme")
    globex = make_tenant("globex")
    cli = Actor.cli()
    mine = hook_create(tenant=acme, name="mine", script=GOOD, enabled=True, actor=cli)
    theirs = hook_create(tenant=globex, name="theirs", script=GOOD, enabled=True, actor=cli)
    already = audit_entries(tenant=acme).count()
    assert 0 < already < 50  # all of them printed before following
    audit = following("tenant", "audit", "-p", "acme", "--follow", "--json")
    before = [json.loads(audit.wait_for(lambda line: True)) for _ in range(already)]
    assert "disable" not in [entry["action"] for entry in before]

    hook_disable(hook=theirs, actor=cli)
    hook_disable(hook=mine, actor=cli)
    line = audit.wait_for(lambda line: json.loads(line)["action"] == "disable")
    code, stderr = audit.interrupt()

    entry = json.loads(line)
    assert (entry["object"]["repr"], entry["actor"]["kind"]) == ("mine", "cli")
    assert (code, stderr) == (0, "")
    assert "theirs" not in [json.loads(line)["object"]["repr"] for line in audit.lines]
