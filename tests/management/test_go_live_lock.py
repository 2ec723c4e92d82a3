"""The go-live check (the sample run of a script about to be live) runs
outside any row lock: while a slow script runs for a PATCH, another
connection can still lock the hook's and the tenant's rows."""

import threading
import time

import pytest
import requests
from django.db import connection, transaction

from hooks.services import hook_create
from tests.factories import TEST_ACTOR

pytestmark = pytest.mark.django_db(transaction=True)

CHECK_S = 3.0
# Answers after CHECK_S of wall clock (little CPU), so the check is slow.
SLOW_SCRIPT = (
    "module.exports = function(c, s, a, ctx, cb) {\n"
    f"  setTimeout(function () {{ cb(null, {{}}); }}, {int(CHECK_S * 1000)});\n"
    "};\n"
)


def lock_rows(hook_id: int, tenant_id: int) -> None:
    """Lock the hook's and the tenant's rows from the test's own connection,
    waiting at most a second (a write's short transaction takes less)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '1s'")
        cursor.execute("SELECT id FROM hooks_hook WHERE id = %s FOR UPDATE", [hook_id])
        cursor.execute("SELECT id FROM tenant_tenant WHERE id = %s FOR UPDATE", [tenant_id])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_rows_stay_unlocked_while_the_check_runs(acme):
    # The token first: the enabled hook would run for it.
    headers = {"Authorization": f"Bearer {acme.token()}"}
    hook = hook_create(
        tenant=acme.tenant,
        name="slow",
        script=SLOW_SCRIPT.replace("cb(null, {})", "cb(null, {v: 1})"),
        enabled=True,
        actor=TEST_ACTOR,
    )
    answer: dict[str, object] = {}

    def patch() -> None:
        started = time.monotonic()
        response = requests.patch(
            f"{acme.api_url}hooks/{hook.public_id}",
            json={"name": "slow-renamed", "script": SLOW_SCRIPT},
            headers=headers,
            timeout=30,
        )
        answer.update(status=response.status_code, body=response.json())
        answer.update(took=time.monotonic() - started, done=time.monotonic())

    thread = threading.Thread(target=patch)
    thread.start()
    time.sleep(1.0)  # the check is running: it answers after CHECK_S
    lock_rows(hook.pk, acme.tenant.pk)
    locked_at = time.monotonic()
    thread.join(timeout=30)

    assert answer["status"] == 200, answer
    assert float(answer["took"]) >= CHECK_S  # type: ignore[arg-type]
    assert locked_at < float(answer["done"])  # type: ignore[arg-type]
    hook.refresh_from_db()
    assert (hook.name, hook.script, hook.version) == ("slow-renamed", SLOW_SCRIPT, 2)
