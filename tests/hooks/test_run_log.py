"""The run log: written off the request by a background thread, and pruned."""

import json
from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from hooks import run_log
from hooks.models import HookRun
from hooks.services import hook_create
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

SCRIPT = "module.exports = function(c, s, a, ctx, cb) { console.log('ran'); cb(null, {}); };"


def token_request(client, secret):
    body = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": secret,
        "audience": "aud",
    }
    return HttpClient().post("/acme/oauth/token", json.dumps(body), content_type="application/json")


def record(tenant, *, hook_id=None, console=""):
    return run_log.RunRecord(
        tenant_id=tenant.pk,
        hook_id=hook_id,
        hook_version=None,
        source="token",
        started_at=timezone.now(),
        duration_ms=1.0,
        outcome="ok",
        console=console,
        error="",
    )


@pytest.mark.django_db(transaction=True)
def test_token_request_run_is_written_by_the_background_writer(settings):
    settings.TESSERA_HOOK_RUN_LOG_ASYNC = True
    tenant = make_tenant("acme")
    api = make_api(tenant, "aud")
    client, secret = make_client(tenant, {api: []})
    hook = hook_create(tenant=tenant, name="h", script=SCRIPT, enabled=True, actor=TEST_ACTOR)
    response = token_request(client, secret)
    assert response.status_code == 200

    run_log.shutdown()  # writes what is queued, and closes the writer's connection
    run = HookRun.objects.get(hook=hook)
    assert (run.outcome, run.source) == ("ok", "token")
    assert "ran" in run.console


@pytest.mark.django_db(transaction=True)
def test_background_writer_records_every_run_of_a_burst_larger_than_a_batch(settings):
    settings.TESSERA_HOOK_RUN_LOG_ASYNC = True
    tenant = make_tenant("acme")
    burst = 2 * run_log.BATCH_SIZE + 5
    for n in range(burst):
        run_log.record_run(record(tenant, console=f"run {n}"))
    run_log.shutdown()
    assert HookRun.objects.filter(tenant=tenant).count() == burst


@pytest.mark.django_db
def test_prune_deletes_runs_older_than_retention(settings):
    settings.TESSERA_HOOK_RUN_RETENTION_DAYS = 7
    tenant = make_tenant()
    now = timezone.now()
    for age in (1, 6, 8, 30):
        HookRun.objects.create(
            tenant=tenant,
            source="token",
            outcome="ok",
            duration_ms=1,
            started_at=now - timedelta(days=age),
        )
    assert run_log.prune_runs(now=now) == 2
    assert HookRun.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_record_the_database_refuses_is_dropped_and_the_rest_are_written(settings):
    settings.TESSERA_HOOK_RUN_LOG_ASYNC = True
    tenant = make_tenant("acme")
    other = make_tenant("other")
    deleted = hook_create(tenant=tenant, name="gone", script=SCRIPT, actor=TEST_ACTOR)
    deleted_id = deleted.pk
    deleted.delete()  # as if deleted while its last runs were queued
    dropped_before = run_log._get_writer().dropped

    for n, hook_id in enumerate([None, deleted_id, None]):
        run_log.record_run(record(tenant, hook_id=hook_id, console=f"run {n}"))
    run_log.record_run(record(other, console="other tenant"))
    writer = run_log._get_writer()
    run_log.shutdown()

    assert writer.dropped - dropped_before == 1
    assert sorted(HookRun.objects.filter(tenant=tenant).values_list("console", flat=True)) == [
        "run 0",
        "run 2",
    ]
    assert HookRun.objects.get(tenant=other).console == "other tenant"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("printed", ["\\u0000", "\\ud800"], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("background", [False, True], ids=["at-once", "background"])
def test_a_hook_printing_what_no_database_stores_gets_its_token_and_its_run_recorded(
    settings, printed, background
):
    """PostgreSQL text holds no NUL, and no database takes a lone surrogate:
    either is stored as U+FFFD, and the rest of the batch is written too."""
    settings.TESSERA_HOOK_RUN_LOG_ASYNC = background
    tenant = make_tenant("acme")
    api = make_api(tenant, "aud")
    client, secret = make_client(tenant, {api: []})
    hook = hook_create(
        tenant=tenant,
        name="odd-text",
        script="module.exports = function(c, s, a, ctx, cb) {"
        f" console.log('a{printed}b'); cb(null, {{}}); }};",
        enabled=True,
        actor=TEST_ACTOR,
    )

    responses = [token_request(client, secret) for _ in range(2)]
    run_log.shutdown()

    assert [response.status_code for response in responses] == [200, 200]
    assert [run.console for run in HookRun.objects.filter(hook=hook)] == ["a\ufffdb\n"] * 2
