"""One tenant's hook runs wait their turn (``TESSERA_HOOK_TENANT_CONCURRENCY``
at a time, ``TESSERA_HOOK_TENANT_QUEUE_MS`` in the queue): a run over the
queue is refused with 429 and ``Retry-After``, and the retry it asks for
succeeds. (Twenty at once writing storage: tests/test_concurrency.py.)"""

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from hooks.services import hook_create
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

N = 20
SLOW = """module.exports = function(client, scope, audience, context, cb) {
  setTimeout(function() { cb(null, {scope: scope}); }, 700);
};"""


class World:
    def __init__(self, live_server: Any, slug: str, script: str) -> None:
        self.url = f"{live_server.url}/{slug}/oauth/token"
        tenant = make_tenant(slug)
        self.audience = f"https://api.{slug}.test/"
        api = make_api(tenant, self.audience)
        self.client, self.secret = make_client(tenant, {api: ["read:data"]})
        self.hook = hook_create(
            tenant=tenant, name="h", script=script, enabled=True, actor=TEST_ACTOR
        )

    def post(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.secret,
            "audience": self.audience,
        }
        request = urllib.request.Request(
            self.url, json.dumps(body).encode(), {"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.load(error)


def at_once(count: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(count)

    def one(_: int) -> Any:
        try:
            barrier.wait()
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture
def live(live_server, settings):  # type: ignore[no-untyped-def]
    settings.PUBLIC_URL = live_server.url
    return live_server


def test_a_run_over_the_queue_is_429_with_retry_after_and_the_retry_succeeds(live, settings):
    settings.TESSERA_HOOK_TENANT_CONCURRENCY = 1
    settings.TESSERA_HOOK_TENANT_QUEUE_MS = 100
    slow = World(live, "slow", SLOW)
    other = World(live, "other", SLOW)

    results = at_once(3, slow.post)
    refused = [(headers, body) for status, headers, body in results if status == 429]
    assert sorted(status for status, _, _ in results)[0] == 200
    assert refused, [status for status, _, _ in results]
    headers, body = refused[0]
    assert body["error"] == "too_many_requests"
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= 5
    # Another tenant was never refused; the retry, after the wait asked, gets its token.
    assert other.post()[0] == 200
    time.sleep(retry_after)
    assert slow.post()[0] == 200
