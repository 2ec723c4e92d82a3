"""Management API writes leave audit rows naming the calling client, with
before -> after and never a secret value."""

import pytest
import requests
from django.test import Client as HttpClient
from django.urls import reverse

from apis.models import Api
from hooks.services import hook_create
from tenant.models import AuditEntry
from tests.factories import TEST_ACTOR

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = "module.exports = function(c, s, a, ctx, cb) { cb(null, {}); };\n"


def test_api_patch_and_secrets_are_audited_with_the_client(acme):
    hook = hook_create(tenant=acme.tenant, name="h", script=SCRIPT, actor=TEST_ACTOR)
    headers = {"Authorization": f"Bearer {acme.token()}"}
    url = f"{acme.api_url}hooks/{hook.public_id}"
    assert requests.patch(url, json={"enabled": True}, headers=headers, timeout=10).ok
    assert requests.post(f"{url}/secrets", json={"K": "s3cret-v"}, headers=headers, timeout=10).ok
    rows = list(AuditEntry.objects.filter(object_id=str(hook.pk), source="api").order_by("id"))
    assert [(r.action, r.actor_kind, r.actor_id) for r in rows] == [
        ("enable", "client", acme.client_id),
        ("secrets.set", "client", acme.client_id),
    ]
    assert rows[0].before == {"enabled": False}
    # Going live records the dry run on the tenant's clients (tests/management/test_go_live_api.py).
    assert (rows[0].after or {})["enabled"] is True
    assert (rows[0].after or {})["dry_run"]["from_grants"] == 1
    assert rows[1].after == {"secrets": ["K"], "changed": ["K"]}
    assert "s3cret-v" not in str([(r.before, r.after) for r in AuditEntry.objects.all()])


def test_builtin_api_cannot_be_deleted_from_the_dashboard(acme):
    from django.contrib.auth.models import User

    api = Api.objects.get(tenant=acme.tenant, is_system=True)
    http = HttpClient()
    http.force_login(User.objects.create_superuser("root", password="pw"))
    response = http.post(reverse("admin:apis_api_delete", args=[api.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Api.objects.filter(pk=api.pk).exists()
