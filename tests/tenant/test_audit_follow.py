"""``manage.py tenant audit --follow``, run as an operator runs it (its own
process, another shell's writes): entries written after it started appear,
one after the other, and another tenant's never do."""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hooks.services import hook_create, hook_enable
from tenant.models import AuditEntry
from tests.database import database_url
from tests.factories import TEST_ACTOR, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
SCRIPT = "module.exports = function(c, s, a, ctx, cb) { cb(null, {}); };"


class Follower:
    """The command in a subprocess; its stdout lines arrive in ``lines``."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - this checkout's manage.py
            [sys.executable, str(MANAGE), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def next_entry(self, timeout: float = 15) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            stderr = ""
            if self.process.poll() is not None and self.process.stderr is not None:
                stderr = self.process.stderr.read()  # why it ended
            raise AssertionError(f"no entry within {timeout} s; {stderr}") from None
        return dict(json.loads(line))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def follower() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for each in started:
        each.stop()


def test_follow_prints_entries_written_after_it_started(follower):
    acme, other = make_tenant("acme"), make_tenant("other")
    command = Follower("tenant", "audit", "-p", "acme", "--follow", "--json")
    follower.append(command)
    # What was there before (the tenant's creation) comes first; then it follows.
    before = AuditEntry.objects.filter(tenant=acme).count()
    assert before >= 1
    earlier = [command.next_entry()["object"]["type"] for _ in range(before)]
    assert earlier[0] == "tenant"
    time.sleep(0.5)
    assert command.lines.empty()

    hook_create(tenant=other, name="not-ours", script=SCRIPT, actor=TEST_ACTOR)
    hook = hook_create(tenant=acme, name="later", script=SCRIPT, enabled=False, actor=TEST_ACTOR)
    entry = command.next_entry()
    assert (entry["action"], entry["object"]["type"], entry["object"]["repr"]) == (
        "create",
        "hook",
        "later",
    )
    assert command.process.poll() is None  # still following

    time.sleep(1.5)  # a later poll
    hook_enable(hook=hook, actor=TEST_ACTOR)
    entry = command.next_entry()
    assert (entry["action"], entry["object"]["repr"]) == ("enable", "later")
    time.sleep(1.5)
    assert command.lines.empty()  # the other tenant's entry never came
