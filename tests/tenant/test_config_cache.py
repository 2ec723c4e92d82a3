"""The configuration generation: in the database, moved by the change's own
transaction, and never memory for strangers. Other processes reading it:
tests/fleet."""

import json

import pytest
from django.db import transaction
from django.test import Client as HttpClient

from clients.models import Client
from tenant import config_cache
from tenant.models import ConfigChange
from tests.factories import make_api, make_client, make_tenant


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_does_not_move_the_generation():
    tenant = make_tenant("acme")
    before = config_cache.read_generation()
    with pytest.raises(RuntimeError), transaction.atomic():
        tenant.name = "Renamed"
        tenant.save()
        raise RuntimeError("abandon")
    assert config_cache.read_generation() == before


@pytest.mark.django_db(transaction=True)
def test_compaction_keeps_the_generation(monkeypatch):
    monkeypatch.setattr(config_cache, "COMPACT_ABOVE_ROWS", 5)
    for n in range(12):
        make_tenant(f"t{n}")
    before = config_cache.read_generation()
    assert config_cache.compact() > 0
    assert ConfigChange.objects.count() == 1
    assert config_cache.read_generation() == before
    make_tenant("after")
    assert config_cache.read_generation() > before  # and later changes still move it on


@pytest.mark.django_db
def test_unknown_client_ids_are_not_memoised(settings):
    """Thousands of strangers' client ids, tenant slugs, hosts and audiences
    leave the memo as it was (issue: a flood grew a process by GBs)."""
    settings.TESSERA_TOKEN_RATE_LIMIT = ""
    tenant = make_tenant("acme")
    api = make_api(tenant, "https://api.acme.test/")
    client, secret = make_client(tenant, {api: ["read:data"]})
    http = HttpClient()

    def post(path, **body):
        body = {"grant_type": "client_credentials", "audience": api.identifier, **body}
        return http.post(path, json.dumps(body), content_type="application/json")

    assert (
        post("/acme/oauth/token", client_id=client.client_id, client_secret=secret).status_code
        == 200
    )
    size = config_cache.memo_size()
    assert size > 0
    for n in range(2000):
        response = post(
            "/acme/oauth/token", client_id=f"stranger-{n}-" + "x" * 200, client_secret="s"
        )
        assert response.status_code == 401
    for n in range(300):
        assert post(f"/nobody-{n}/oauth/token", client_id="c", client_secret="s").status_code == 404
        response = post(
            "/acme/oauth/token",
            client_id=client.client_id,
            client_secret=secret,
            audience=f"https://unknown-{n}.test/",
        )
        assert response.status_code == 403
    assert config_cache.memo_size() == size
    assert Client.objects.count() == 1


@pytest.mark.django_db
def test_each_memo_entry_is_tagged_and_replaced_on_a_new_generation():
    tenant = make_tenant("acme")
    loads = []

    def load(value):
        loads.append(value)
        return value

    with config_cache.request_scope(1):
        config_cache.memoized(("k", tenant.pk), lambda: load("one"))
        assert config_cache.memoized(("k", tenant.pk), lambda: load("again")) == "one"
    with config_cache.request_scope(2):
        assert config_cache.memoized(("k", tenant.pk), lambda: load("two")) == "two"
    assert loads == ["one", "two"]
