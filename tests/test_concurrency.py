"""Twenty writers at once, on SQLite (WAL, busy timeout, IMMEDIATE
transactions) as on PostgreSQL: writers queue, conflicts are clean, nothing
answers a traceback or a 5xx. Real concurrency: threads with their own
database connections, a live server, and separate ``manage.py`` processes."""

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from hooks.models import Hook, HookStorage, HookVersion
from hooks.services import HookConflict, hook_create, hook_enable, hook_save_script
from tests.database import database_url
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

N = 20
SCRIPT = "module.exports = function(client, scope, audience, context, cb) { cb(null, {}); };"
BASE_DIR = Path(__file__).resolve().parent.parent


def all_at_once(work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in N threads released together; each result is the
    return value or the exception raised. Every thread uses (and closes) its
    own database connection."""
    barrier = threading.Barrier(N)

    def one(i: int) -> Any:
        try:
            barrier.wait()
            return work(i)
        except Exception as error:
            return error
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=N) as pool:
        return list(pool.map(one, range(N)))


def unexpected(results: list[Any], *expected: type[BaseException]) -> list[Any]:
    return [r for r in results if isinstance(r, BaseException) and not isinstance(r, expected)]


def test_twenty_saves_of_one_hook_give_one_winner_and_clean_conflicts():
    tenant = make_tenant("acme")
    make_tenant("globex")  # a neighbour, untouched
    hook = hook_create(tenant=tenant, name="h", script=SCRIPT, actor=TEST_ACTOR)

    def save(i: int) -> Hook:
        mine = Hook.objects.get(pk=hook.pk)
        return hook_save_script(
            hook=mine, script=SCRIPT + f"// {i}", base_version=1, actor=TEST_ACTOR
        )

    results = all_at_once(save)

    assert unexpected(results, HookConflict) == []
    assert len([r for r in results if isinstance(r, Hook)]) == 1
    assert len([r for r in results if isinstance(r, HookConflict)]) == N - 1
    hook.refresh_from_db()
    assert hook.version == 2
    assert HookVersion.objects.filter(hook=hook).count() == 2


def test_twenty_creates_all_succeed_and_exactly_one_is_enabled_first():
    tenant = make_tenant("acme")
    other = make_tenant("globex")
    hook_create(tenant=other, name="theirs", script=SCRIPT, enabled=True, actor=TEST_ACTOR)

    results = all_at_once(
        lambda i: hook_create(
            tenant=tenant, name=f"hook-{i}", script=SCRIPT, enabled=None, actor=TEST_ACTOR
        )
    )

    assert unexpected(results) == []
    names = set(Hook.objects.filter(tenant=tenant).values_list("name", flat=True))
    assert names == {f"hook-{i}" for i in range(N)}
    assert Hook.objects.filter(tenant=tenant, enabled=True).count() == 1
    assert Hook.objects.get(tenant=other).enabled


def test_twenty_enables_of_different_hooks_leave_exactly_one_enabled():
    tenant = make_tenant("acme")
    other = make_tenant("globex")
    theirs = hook_create(tenant=other, name="theirs", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    hooks = [
        hook_create(tenant=tenant, name=f"hook-{i}", script=SCRIPT, actor=TEST_ACTOR)
        for i in range(N)
    ]

    # confirm_failing: whatever the dry runs find (their runs, refused beyond
    # the tenant's concurrency, wait for a slot), this test is about the
    # enable itself, twenty transactions on one tenant's hooks.
    results = all_at_once(
        lambda i: hook_enable(
            hook=Hook.objects.get(pk=hooks[i].pk), confirm_failing=True, actor=TEST_ACTOR
        )
    )

    assert unexpected(results) == []
    assert Hook.objects.filter(tenant=tenant, enabled=True).count() == 1
    theirs.refresh_from_db()
    assert theirs.enabled


COUNTER = """module.exports = function(c, s, a, ctx, cb) {
  ctx.webtask.storage.get(function(err, data) {
    var n = ((data && data.n) || 0) + 1;
    ctx.webtask.storage.set({n: n}, function(err) { cb(err, {}); });
  });
};"""


def twenty_counting_token_requests(live_server: Any) -> tuple[list[Any], Hook]:
    """N token requests at once to a tenant whose hook counts them in storage."""
    tenant = make_tenant("acme")
    api = make_api(tenant, "https://api.example.test/")
    client, secret = make_client(tenant, {api: ["read:data"]})
    hook = hook_create(
        tenant=tenant, name="counter", enabled=True, script=COUNTER, actor=TEST_ACTOR
    )
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
            "audience": "https://api.example.test/",
        }
    ).encode()

    def request_token(i: int) -> int:
        request = urllib.request.Request(
            f"{live_server.url}/acme/oauth/token", body, {"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    return all_at_once(request_token), hook


@pytest.mark.xfail(
    strict=True,
    reason="TESSERA_HOOK_TENANT_QUEUE_MS=100 (the default) refuses much of a burst: "
    "measured 8 to 10 of 20 answered 429 (three runs, 2-core machine)",
)
def test_twenty_token_requests_writing_hook_storage_queue_and_all_get_tokens(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    statuses, _ = twenty_counting_token_requests(live_server)
    assert statuses == [200] * N


def test_twenty_queued_token_requests_writing_hook_storage_all_write(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    settings.TESSERA_HOOK_TENANT_QUEUE_MS = 30_000  # every run waits its turn
    settings.TESSERA_HOOK_TENANT_QUEUED = N  # and may queue for it
    statuses, hook = twenty_counting_token_requests(live_server)
    assert statuses == [200] * N
    assert HookStorage.objects.get(hook=hook).data == {"n": N}


def test_twenty_hooks_update_processes_exit_cleanly(tmp_path):
    tenant = make_tenant("acme")
    hook = hook_create(tenant=tenant, name="h", script=SCRIPT, actor=TEST_ACTOR)
    script = tmp_path / "hook.js"
    script.write_text(SCRIPT + "// updated\n")
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "manage.py", "hooks", "update", "h", "-p", "acme", str(script)]

    processes = [
        subprocess.Popen(  # noqa: S603 (the project's own manage.py)
            command, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(N)
    ]
    outcomes: list[tuple[int, str, str]] = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        outcomes.append((process.returncode, out.decode(), err.decode()))

    assert [err for _, _, err in outcomes if "Traceback" in err] == []
    saved = [out for code, out, _ in outcomes if code == 0]
    conflicts = [err for code, _, err in outcomes if code != 0]
    assert all("changed by someone else" in err for err in conflicts), conflicts
    assert saved
    assert HookVersion.objects.filter(hook=hook).count() == 1 + len(saved)
