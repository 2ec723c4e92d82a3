"""The database goes away under a running server (its connection settings
pointed at a place nothing answers, so every new connection really fails):
token requests are served from what the process holds for
``TESSERA_CONFIG_OUTAGE_GRACE``, then answer 503 with ``Retry-After``; the
run log holds ``TESSERA_HOOK_RUN_LOG_BUFFER`` records and drops, counts and
logs the rest, never a token."""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client as HttpClient

from hooks import run_log
from hooks.models import HookRun
from hooks.services import hook_create
from tenant import config_cache
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant
from tests.tenant.metrics import scrape

pytestmark = pytest.mark.django_db(transaction=True)

AUD = "https://api.example.test/"
SCRIPT = "module.exports = function(c, s, a, ctx, cb) { console.log('ran'); cb(null, {}); };"


@contextmanager
def database_away() -> Iterator[None]:
    """Every connection opened meanwhile fails, in every thread; the ones
    open now are closed. The settings are shared by all threads' connections
    (and read again by the pool, made anew)."""
    settings = connection.settings_dict
    saved = {key: settings.get(key) for key in ("NAME", "HOST", "PORT")}
    if connection.vendor == "sqlite":
        settings["NAME"] = "/nonexistent-directory/tessera.sqlite3"
    else:
        settings["HOST"], settings["PORT"] = "127.0.0.1", "1"
    drop_connections()
    try:
        yield
    finally:
        settings.update(saved)
        drop_connections()


def drop_connections() -> None:
    """Close this thread's connection and, on PostgreSQL, the process's pool:
    the next connection anyone takes is opened with the settings of now."""
    connection.close()
    close_pool = getattr(connection, "close_pool", None)  # PostgreSQL's engine
    if close_pool is not None:
        close_pool()


class Caller:
    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.tenant = make_tenant(slug)
        api = make_api(self.tenant, AUD)
        self.client, self.secret = make_client(self.tenant, {api: ["read:data"]})

    def token(self):  # type: ignore[no-untyped-def]
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.secret,
            "audience": AUD,
        }
        return HttpClient().post(
            f"/{self.slug}/oauth/token", json.dumps(body), content_type="application/json"
        )


def test_tokens_are_served_through_the_grace_then_503_with_retry_after(settings):
    grace = 2.0
    settings.TESSERA_CONFIG_MAX_STALENESS = 0.2
    settings.TESSERA_CONFIG_OUTAGE_GRACE = grace
    acme, globex = Caller("acme"), Caller("globex")
    # The first request loads (and verifies the secret) slowly; the second
    # re-reads the generation and is served from what the process holds.
    assert acme.token().status_code == 200
    assert acme.token().status_code == 200
    assert config_cache.config_age() < 0.5
    errors_before = scrape()["tessera_dependency_errors_total", ("database",)]

    with database_away():
        time.sleep(0.3)  # past the staleness bound: the generation cannot be re-read
        within = acme.token()
        assert config_cache.config_age() < grace
        assert within.status_code == 200, within.content
        # Nothing of globex was ever loaded: it needs the database now.
        unknown = globex.token()
        assert unknown.status_code == 503, unknown.content
        assert unknown["Retry-After"].isdigit()

        time.sleep(max(0.0, grace + 0.2 - config_cache.config_age()))
        after = acme.token()
        assert after.status_code == 503, after.content
        assert after["Content-Type"] == "application/json"
        assert int(after["Retry-After"]) > 0
        assert after.json()["error"] == "temporarily_unavailable"
        metrics = scrape()

    assert metrics["tessera_dependency_errors_total", ("database",)] > errors_before
    assert metrics["tessera_config_age_seconds", ()] >= grace
    time.sleep(0.2)  # the next inline check is due
    assert acme.token().status_code == 200
    assert globex.token().status_code == 200
    assert scrape()["tessera_config_age_seconds", ()] < 1


def wait_for(condition: Callable[[], bool], seconds: float = 4) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


@pytest.fixture
def fresh_writer() -> Iterator[None]:
    """A writer started by the test (it reads the buffer size, and opens its
    own connection), stopped while the test database is still there."""
    run_log.shutdown()
    yield
    run_log.shutdown()


def test_run_log_buffer_overflow_drops_counts_and_logs_records_never_tokens(
    settings, caplog, fresh_writer
):
    settings.TESSERA_HOOK_RUN_LOG_ASYNC = True
    settings.TESSERA_HOOK_RUN_LOG_BUFFER = 5
    settings.TESSERA_CONFIG_OUTAGE_GRACE = 60
    acme = Caller("acme")
    hook = hook_create(tenant=acme.tenant, name="h", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    assert acme.token().status_code == 200
    run_log.shutdown()
    assert HookRun.objects.filter(hook=hook).count() == 1
    before = scrape()

    requests = 30
    with database_away():
        statuses = [acme.token().status_code]
        writer = run_log._get_writer()
        wait_for(lambda: not writer.buffer)  # the first record is the batch in hand
        statuses += [acme.token().status_code for _ in range(requests - 1)]
        # The gauge counts the batch in hand and the full buffer behind it
        # once the writer has retried (after 0.5 s, then 1 s).
        wait_for(lambda: scrape()["tessera_hook_run_log_buffered", ()] == 1 + 5)
        during = scrape()
    assert statuses == [200] * requests
    assert writer.dropped == requests - 1 - 5
    assert "buffer full (5 records)" in caplog.text
    dropped = (
        during["tessera_hook_run_log_dropped_total", ()]
        - before["tessera_hook_run_log_dropped_total", ()]
    )
    assert dropped == writer.dropped

    run_log.shutdown()  # the database is back: what was held is written, in order
    written = HookRun.objects.filter(hook=hook).count() - 1
    assert written + writer.dropped == requests
    assert written == 1 + 5
    assert scrape()["tessera_hook_run_log_buffered", ()] == 0
