"""The Actions pages and the Flow page under attack: another tenant's ids in
every URL and form, posts without a CSRF token, the same post twice, markup
in names, code, secret and dependency names on every page that shows them
(list, Action page, diff, history, Flow page, landing page), and inputs past
every limit (a 200 kB script, 10,000 dependency rows, a 1 MB secret). Two
tenants side by side: the other one never changes."""

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter

from hooks.action_services import SecretSpec, action_update
from hooks.models import Action, TriggerBinding
from tenant.models import AuditEntry
from tests.dashboard.actions import TRIGGER, bind, make_action
from tests.dashboard.conftest import TenantWorld
from tests.factories import TEST_ACTOR

pytestmark = pytest.mark.django_db

MARKUP = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
SECRET_VALUE = "attack-secret-value-5be1"


def login(user: User, *, csrf: bool = False) -> HttpClient:
    http = HttpClient(enforce_csrf_checks=csrf)
    http.force_login(user)
    return http


def url(name: str, *args: object) -> str:
    return reverse(f"admin:hooks_action_{name}", args=args)


def state(world: TenantWorld) -> dict[str, Any]:
    """Everything of ``world``'s Actions a write could change."""
    actions = Action.objects.filter(tenant=world.tenant).order_by("pk")
    return {
        "actions": [
            (a.name, a.code, a.revision, a.runtime, a.dependencies, a.status) for a in actions
        ],
        "secrets": sorted(
            (s.action.name, s.name, s.updated_at) for a in actions for s in a.secrets.all()
        ),
        "versions": sorted((a.name, v.number) for a in actions for v in a.versions.all()),
        "bindings": list(
            TriggerBinding.objects.filter(tenant=world.tenant)
            .order_by("position")
            .values_list("action__public_id", flat=True)
        ),
        "audit": AuditEntry.objects.filter(tenant=world.tenant).count(),
    }


def writes(action: Action) -> list[tuple[str, dict[str, Any]]]:
    return [
        (url("save", action.pk), {"script": "// x", "base_version": action.revision}),
        (url("secret_set", action.pk), {"name": "KEY", "value": "v"}),
        (url("secret_delete", action.pk, "KEY"), {}),
        (
            url("settings", action.pk),
            {
                "runtime": "node22",
                "base_version": action.revision,
                "dep_name": "lodash",
                "dep_version": "4.17.21",
            },
        ),
        (url("deploy", action.pk), {}),
        (url("rollback", action.pk, 1), {}),
        (url("run", action.pk), {"script": "// x", "payload": "{}"}),
        (url("change", action.pk), {"code": "// x", "base_version": action.revision}),
        (url("delete", action.pk), {"post": "yes"}),
    ]


def bravo_action(world_b: TenantWorld) -> Action:
    action = make_action(world_b.tenant, "bravo-action")
    action_update(action=action, secrets=[SecretSpec("KEY", SECRET_VALUE)], actor=TEST_ACTOR)
    bind(world_b.tenant, action)
    return action


# --- another tenant's ids ----------------------------------------------------


def test_every_write_to_another_tenants_action_is_a_404_and_changes_nothing(world_a, world_b):
    action = bravo_action(world_b)
    before = state(world_b)
    http = login(world_a.admin)
    for target, data in writes(action):
        response = http.post(target, data)
        assert response.status_code == 404, target
        assert SECRET_VALUE not in response.content.decode()
    for target in (url("version_diff", action.pk, 1), url("history", action.pk)):
        assert http.get(target).status_code == 404
    assert state(world_b) == before


def test_the_flow_of_another_tenant_cannot_be_read_or_changed(world_a, world_b):
    action = bravo_action(world_b)
    mine = make_action(world_a.tenant, "alpha-action")
    before = state(world_b)
    http = login(world_a.admin)
    flow_b = url("flow", world_b.tenant.slug, TRIGGER)
    assert http.get(flow_b).status_code == 404
    for op, target in (("remove", action.public_id), ("add", mine.public_id)):
        data = {"op": op, "action": target, "based_on": action.public_id}
        assert http.post(flow_b, data).status_code == 404
    # Its own Flow page does not take the other tenant's Action either.
    flow_a = url("flow", world_a.tenant.slug, TRIGGER)
    response = http.post(flow_a, {"op": "add", "action": action.public_id, "based_on": ""})
    assert response.status_code == 400
    assert state(world_b) == before
    assert not TriggerBinding.objects.filter(tenant=world_a.tenant).exists()


# --- CSRF and repeated posts -------------------------------------------------


def test_no_write_is_made_without_the_csrf_token(world_a, world_b):
    action = bravo_action(world_a)  # world_a's own this time
    before = state(world_a)
    http = login(world_a.admin, csrf=True)
    for target, data in writes(action):
        assert http.post(target, data).status_code == 403, target
    flow = url("flow", world_a.tenant.slug, TRIGGER)
    data = {"op": "remove", "action": action.public_id, "based_on": action.public_id}
    assert http.post(flow, data).status_code == 403
    imports = reverse("admin:tenant_import", args=[world_a.tenant.slug])
    assert http.post(imports, {"source_url": "https://example.com"}).status_code == 403
    assert state(world_a) == before


def test_the_same_post_twice_does_not_do_the_change_twice(world_a, world_b):
    action = make_action(world_a.tenant, "twice", deploy=False)
    http = login(world_a.admin)
    first = http.post(url("deploy", action.pk))
    second = http.post(url("deploy", action.pk))
    assert first.status_code == second.status_code == 302
    assert action.versions.count() == 1
    flow = url("flow", world_a.tenant.slug, TRIGGER)
    data = {"op": "add", "action": action.public_id, "based_on": ""}
    assert http.post(flow, data).status_code == 302
    again = http.post(flow, data)
    assert again.status_code == 409  # the page it came from is stale now
    assert TriggerBinding.objects.filter(tenant=world_a.tenant).count() == 1
    save = {"script": "// one", "base_version": action.revision}
    assert http.post(url("save", action.pk), save).status_code == 200
    assert http.post(url("save", action.pk), save).status_code == 409


# --- markup -------------------------------------------------------------------


def test_markup_in_names_code_and_dependencies_is_shown_as_text_everywhere(world_a, world_b):
    http = login(world_a.admin)
    code = f"// </textarea>{MARKUP}\nconst s = {json.dumps(MARKUP)};\n" + (
        "exports.onExecuteCredentialsExchange = async () => {};\n"
    )
    action = make_action(world_a.tenant, "plain", code=code)
    Action.objects.filter(pk=action.pk).update(name=MARKUP[:100])  # as an import could
    action.refresh_from_db()
    action_update(
        action=action,
        code=code + "// two\n",
        dependencies=[{"name": MARKUP, "version": MARKUP}],
        actor=TEST_ACTOR,
    )
    bind(world_a.tenant, action)
    pages = [
        reverse("admin:hooks_action_changelist"),
        url("change", action.pk),
        url("history", action.pk),
        url("version_diff", action.pk, 1),
        url("flow", world_a.tenant.slug, TRIGGER),
        reverse("admin:tenant_landing", args=[world_a.tenant.slug]),
    ]
    for page in pages:
        response = http.get(page)
        assert response.status_code == 200, page
        body = response.content.decode()
        assert "<img src=x" not in body and "<script>alert" not in body, page


def test_a_secret_name_with_markup_is_refused_and_not_echoed(world_a, world_b):
    action = make_action(world_a.tenant, "secrets")
    http = login(world_a.admin)
    response = http.post(
        url("secret_set", action.pk),
        {"name": MARKUP, "value": SECRET_VALUE},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 400
    assert "<img" not in response.content.decode() and SECRET_VALUE not in str(response.json())
    assert not action.secrets.exists()


# --- inputs past the limits ----------------------------------------------------


def test_a_200_kb_script_is_refused_whole(world_a, world_b):
    action = make_action(world_a.tenant, "big")
    before = state(world_a)
    http = login(world_a.admin)
    script = "// " + "x" * 200_000 + "\n"
    response = http.post(url("save", action.pk), {"script": script, "base_version": 1})
    assert response.status_code == 400 and "bytes" in response.json()["error"]
    response = http.post(url("run", action.pk), {"script": script, "payload": "{}"})
    assert response.status_code in (400, 403)
    assert state(world_a) == before


def test_ten_thousand_dependency_rows_are_refused(world_a, world_b):
    action = make_action(world_a.tenant, "deps")
    before = state(world_a)
    http = login(world_a.admin)
    rows = {
        "runtime": "node22",
        "base_version": action.revision,
        "dep_name": [f"pkg{n}" for n in range(10_000)],
        "dep_version": ["1.0.0"] * 10_000,
    }
    started = time.monotonic()
    response = http.post(url("settings", action.pk), rows, follow=True)
    assert time.monotonic() - started < 10
    assert response.status_code in (200, 400)
    assert state(world_a) == before


def test_a_one_megabyte_secret_is_refused_and_never_echoed(world_a, world_b):
    action = make_action(world_a.tenant, "secret")
    before = state(world_a)
    http = login(world_a.admin)
    value = "v" * 1_000_000
    response = http.post(
        url("secret_set", action.pk),
        {"name": "BIG", "value": value},
        headers={"accept": "application/json"},
    )
    assert response.status_code in (400, 413)
    assert len(response.content) < 10_000
    assert state(world_a) == before


def test_the_diff_of_two_large_unlike_versions_answers_in_time(world_a, world_b):
    line = "exports.onExecuteCredentialsExchange = async () => {};\n"
    first = line + "".join(f"// a{n} {'q' * 60}\n" for n in range(1400))
    second = line + "".join(f"// b{n} {'z' * 60}\n" for n in range(1400))
    action = make_action(world_a.tenant, "diffs", code=first)
    action_update(action=action, code=second, actor=TEST_ACTOR)
    http = login(world_a.admin)
    started = time.monotonic()
    response = http.get(url("version_diff", action.pk, 1))
    assert response.status_code == 200
    assert time.monotonic() - started < 10
    body = response.content.decode()
    assert "+// b1399" in body and "-// a1399" in body


def test_a_secret_value_posted_is_hidden_from_error_reports(world_a, world_b):
    action = make_action(world_a.tenant, "reported")
    http = login(world_a.admin)
    response = http.post(url("secret_set", action.pk), {"name": "KEY", "value": SECRET_VALUE})
    shown = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert SECRET_VALUE not in str(shown)
