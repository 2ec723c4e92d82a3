"""Activity counts: token requests and hook runs counted in memory on the
token path, added to per-minute rows off it, and read back as the landing
page's series without touching the run records."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hooks.services import hook_create
from tenant import activity
from tenant.models import HookActivity, TokenActivity
from tenant.selectors import _percentile, activity_series
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db

AUD = "https://api.example.test/"
THROWS_FOR_B = (
    "module.exports = function(client, scope, audience, context, cb) {\n"
    "  if (client.name === 'b') throw new Error('no');\n"
    "  cb(null, {scope: scope});\n};\n"
)


def token(tenant, client_id, secret):
    body = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "audience": AUD,
    }
    return HttpClient().post(
        f"/{tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
    )


@pytest.fixture
def two_tenants():
    acme, other = make_tenant("acme"), make_tenant("other")
    api = make_api(acme, AUD)
    make_api(other, AUD)
    a, a_secret = make_client(acme, {api: ["read:data"]}, name="a")
    b, b_secret = make_client(acme, {api: ["read:data"]}, name="b")
    return acme, other, (a, a_secret), (b, b_secret)


def token_counts(tenant):
    return {
        (row.client_id, row.outcome): row.count
        for row in TokenActivity.objects.filter(tenant=tenant)
    }


def test_token_requests_are_counted_by_client_and_outcome_per_tenant(two_tenants):
    acme, other, (a, a_secret), (b, b_secret) = two_tenants
    for _ in range(3):
        assert token(acme, a.client_id, a_secret).status_code == 200
    assert token(acme, b.client_id, b_secret).status_code == 200
    assert token(acme, b.client_id, "wrong").status_code == 401
    assert token(acme, "nobody-" + "x" * 40, "wrong").status_code == 401
    # acme's client on the other tenant's issuer: unknown there.
    assert token(other, a.client_id, a_secret).status_code == 401
    assert not TokenActivity.objects.exists()  # nothing written on the token path
    activity.flush()
    assert token_counts(acme) == {
        (a.client_id, "ok"): 3,
        (b.client_id, "ok"): 1,
        ("", "invalid_client"): 2,  # a stranger's client id is not kept
    }
    assert token_counts(other) == {("", "invalid_client"): 1}


def test_counting_makes_no_query_on_the_token_path(two_tenants):
    acme, _, (a, a_secret), _ = two_tenants
    hook_create(tenant=acme, name="h", script=THROWS_FOR_B, enabled=True, actor=TEST_ACTOR)
    token(acme, a.client_id, a_secret)
    with CaptureQueriesContext(connection) as queries:
        assert token(acme, a.client_id, a_secret).status_code == 200
    # The hook's run record is the one write (tests write it at once).
    assert [q["sql"] for q in queries if "activity" in q["sql"].lower()] == []


def test_flushes_add_up_like_several_processes(two_tenants):
    """Each process adds its counts to the stored row; none overwrites another's."""
    acme, _, (a, _), _ = two_tenants
    for _ in range(5):
        activity.count_token(tenant_id=acme.pk, client_id=a.client_id, outcome="ok")
    activity.flush()
    for _ in range(7):
        activity.count_token(tenant_id=acme.pk, client_id=a.client_id, outcome="ok")
    activity.flush()
    assert token_counts(acme) == {(a.client_id, "ok"): 12}


def test_threads_counting_at_once_lose_nothing(two_tenants):
    acme, _, (a, _), _ = two_tenants

    def count():
        for _ in range(5000):
            activity.count_token(tenant_id=acme.pk, client_id=a.client_id, outcome="ok")
            activity.count_hook_run(tenant_id=acme.pk, duration_ms=3.0, failed=False)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    activity.flush()
    total = sum(TokenActivity.objects.filter(tenant=acme).values_list("count", flat=True))
    runs = sum(HookActivity.objects.filter(tenant=acme).values_list("count", flat=True))
    assert (total, runs) == (20_000, 20_000)


def test_hook_runs_give_percentiles_and_error_rate(two_tenants):
    acme, other, (a, a_secret), (b, b_secret) = two_tenants
    hook_create(tenant=acme, name="h", script=THROWS_FOR_B, enabled=True, actor=TEST_ACTOR)
    for _ in range(3):
        assert token(acme, a.client_id, a_secret).status_code == 200
    assert token(acme, b.client_id, b_secret).status_code == 500
    activity.flush()
    hour = activity_series(tenant=acme, window="hour")
    assert hour["requests"] == 4 and hour["runs"] == 4
    assert hour["outcomes"]["ok"][-1] == 3
    assert hour["outcomes"]["server_error"][-1] == 1
    assert hour["clients"] == {a.client_id: [0] * 59 + [3], b.client_id: [0] * 59 + [1]}
    assert hour["error_rate"][-1] == 25.0
    assert 0 < hour["p50"][-1] <= hour["p99"][-1] <= 20_000
    assert hour["p50"][:-1] == [None] * 59
    day = activity_series(tenant=acme, window="day")
    assert len(day["t"]) == 96 and day["requests"] == 4
    assert activity_series(tenant=other, window="hour")["requests"] == 0


def test_the_series_reads_counts_never_run_records(two_tenants):
    acme, _, (a, a_secret), _ = two_tenants
    hook_create(tenant=acme, name="h", script=THROWS_FOR_B, enabled=True, actor=TEST_ACTOR)
    token(acme, a.client_id, a_secret)
    activity.flush()
    with CaptureQueriesContext(connection) as queries:
        activity_series(tenant=acme, window="day")
    tables = " ".join(q["sql"] for q in queries)
    assert "hooks_hookrun" not in tables
    assert len(queries) <= 4


def test_percentiles_interpolate_within_their_bucket():
    buckets = [0] * (len(activity.DURATION_BUCKETS_MS) + 1)
    buckets[activity.DURATION_BUCKETS_MS.index(10)] = 100  # 100 runs of 5-10 ms
    assert _percentile(buckets, 0.5) == 7.5
    assert _percentile(buckets, 0.99) == pytest.approx(9.95)
    assert _percentile([0] * len(buckets), 0.5) is None


def test_old_counts_are_pruned(two_tenants, settings):
    acme, _, (a, _), _ = two_tenants
    settings.TESSERA_ACTIVITY_RETENTION_DAYS = 2
    activity.count_token(tenant_id=acme.pk, client_id=a.client_id, outcome="ok")
    activity.flush()
    TokenActivity.objects.create(
        tenant=acme, minute=timezone.now() - timedelta(days=3), client_id="", outcome="ok", count=1
    )
    assert activity.prune() == 1
    assert TokenActivity.objects.filter(tenant=acme).count() == 1


def test_a_failed_flush_keeps_the_counts_for_the_next(two_tenants, monkeypatch):
    acme, _, (a, _), _ = two_tenants
    activity.count_token(tenant_id=acme.pk, client_id=a.client_id, outcome="ok")
    from django.db import OperationalError

    def away(*args, **kwargs):
        raise OperationalError("the database is away")

    monkeypatch.setattr(activity, "_write", away)
    with pytest.raises(OperationalError):
        activity.flush()
    monkeypatch.undo()
    activity.count_token(tenant_id=acme.pk, client_id=a.client_id, outcome="ok")
    activity.flush()
    assert token_counts(acme) == {(a.client_id, "ok"): 2}
