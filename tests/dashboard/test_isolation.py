"""A tenant administrator sees and changes only their tenants' objects:
lists, search, filters, foreign-key choices, autocomplete, pop-ups, history,
actions and guessed URLs (another tenant's object is a plain 404)."""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient
from django.urls import reverse

from apis.models import Api
from clients.models import Client
from hooks.models import Hook
from tests.dashboard.conftest import ENABLED_SECOND, TenantWorld
from tests.factories import TEST_ACTOR

pytestmark = pytest.mark.django_db

MODELS = [
    ("apis", "api", "api"),
    ("clients", "client", "client"),
    ("clients", "clientgrant", "grant"),
    ("hooks", "hook", "hook"),
    ("tenant", "tenant", "tenant"),
]


def login(user: User) -> HttpClient:
    http = HttpClient()
    http.force_login(user)
    return http


@pytest.mark.parametrize(("app", "model", "attr"), MODELS)
def test_list_shows_only_own_tenant(world_a: TenantWorld, world_b: TenantWorld, app, model, attr):
    response = login(world_a.admin).get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200
    pks = {obj.pk for obj in response.context["cl"].result_list}
    assert getattr(world_a, attr).pk in pks
    assert getattr(world_b, attr).pk not in pks


@pytest.mark.parametrize(("app", "model", "attr"), MODELS)
@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_other_tenants_object_is_404(
    world_a: TenantWorld, world_b: TenantWorld, app, model, attr, view
):
    url = reverse(f"admin:{app}_{model}_{view}", args=[getattr(world_b, attr).pk])
    response = login(world_a.admin).get(url)
    # Only superusers delete tenants: that view is forbidden for every tenant.
    assert response.status_code == (403 if (model, view) == ("tenant", "delete") else 404)
    assert world_b.tenant.name not in response.content.decode()


@pytest.mark.parametrize(("app", "model", "attr"), MODELS)
def test_own_object_opens(world_a: TenantWorld, world_b: TenantWorld, app, model, attr):
    url = reverse(f"admin:{app}_{model}_change", args=[getattr(world_a, attr).pk])
    assert login(world_a.admin).get(url).status_code == 200


@pytest.mark.parametrize(
    ("app", "model", "query"),
    [("apis", "api", "bravo"), ("clients", "client", "bravo"), ("hooks", "hook", "bravo")],
)
def test_search_does_not_find_other_tenant(world_a, world_b, app, model, query):
    response = login(world_a.admin).get(reverse(f"admin:{app}_{model}_changelist"), {"q": query})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def test_filter_by_other_tenant_shows_nothing(world_a, world_b):
    response = login(world_a.admin).get(
        reverse("admin:hooks_hook_changelist"), {"tenant__id__exact": world_b.tenant.pk}
    )
    if response.status_code == 200:
        assert world_b.hook not in response.context["cl"].result_list
    assert "bravo-hook" not in response.content.decode()


def test_foreign_key_choices_are_own_tenant(world_a, world_b):
    response = login(world_a.admin).get(reverse("admin:clients_clientgrant_add"))
    form = response.context["adminform"].form
    # Each tenant also has its built-in Management API.
    own_apis = set(Api.objects.filter(tenant=world_a.tenant))
    assert world_a.api in own_apis
    assert set(form.fields["api"].queryset) == own_apis
    assert set(form.fields["client"].queryset) == {world_a.client}
    assert {s.api_id for s in form.fields["scopes"].queryset} == {a.pk for a in own_apis}


def test_tenant_choice_on_add_is_own_tenant(world_a, world_b):
    response = login(world_a.admin).get(reverse("admin:hooks_hook_add"))
    assert set(response.context["adminform"].form.fields["tenant"].queryset) == {world_a.tenant}


def test_cannot_add_object_to_other_tenant(world_a, world_b):
    response = login(world_a.admin).post(
        reverse("admin:apis_api_add"),
        {
            "tenant": world_b.tenant.pk,
            "name": "Sneaky",
            "identifier": "https://sneaky.test/",
            "signing_alg": "RS256",
            "token_lifetime": 60,
            "scopes-TOTAL_FORMS": 0,
            "scopes-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200  # the form is shown again with an error
    assert not world_b.tenant.apis.filter(name="Sneaky").exists()


def test_autocomplete_lists_only_own_clients(world_a, world_b):
    response = login(world_a.admin).get(
        reverse("admin:autocomplete"),
        {"app_label": "clients", "model_name": "clientgrant", "field_name": "client", "term": ""},
    )
    assert response.status_code == 200
    ids = {int(item["id"]) for item in response.json()["results"]}
    assert ids == {world_a.client.pk}


def test_popup_of_other_tenants_object_is_404(world_a, world_b):
    url = reverse("admin:apis_api_change", args=[world_b.api.pk]) + "?_popup=1"
    response = login(world_a.admin).get(url)
    assert response.status_code == 404
    assert "bravo" not in response.content.decode()


def test_enable_action_ignores_other_tenants_hook(world_a, world_b):
    Hook.objects.filter(pk=world_b.hook.pk).update(enabled=False)
    login(world_a.admin).post(
        reverse("admin:hooks_hook_changelist"),
        {"action": "enable_hooks", "_selected_action": [world_b.hook.pk]},
    )
    world_b.hook.refresh_from_db()
    assert world_b.hook.enabled is False


def test_rotate_secret_action_ignores_other_tenants_client(world_a, world_b):
    before = world_b.client.client_secret
    login(world_a.admin).post(
        reverse("admin:clients_client_changelist"),
        {"action": "rotate_secret", "_selected_action": [world_b.client.pk]},
    )
    world_b.client.refresh_from_db()
    assert world_b.client.client_secret == before


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("run", "post"),
        ("runs", "get"),
        ("save", "post"),
        ("enable", "post"),
        ("disable", "post"),
        ("secret_set", "post"),
        ("dependencies", "post"),
        ("what_changes", "post"),
    ],
)
def test_hook_endpoints_of_other_tenant_are_404(world_a, world_b, name, method):
    url = reverse(f"admin:hooks_hook_{name}", args=[world_b.hook.pk])
    response = getattr(login(world_a.admin), method)(url, {})
    assert response.status_code == 404


def test_version_diff_and_restore_of_other_tenant_are_404(world_a, world_b):
    http = login(world_a.admin)
    assert (
        http.get(reverse("admin:hooks_hook_version_diff", args=[world_b.hook.pk, 1])).status_code
        == 404
    )
    assert (
        http.post(
            reverse("admin:hooks_hook_version_restore", args=[world_b.hook.pk, 1])
        ).status_code
        == 404
    )


def test_landing_page_of_other_tenant_is_404(world_a, world_b):
    http = login(world_a.admin)
    assert http.get(reverse("admin:tenant_landing", args=["bravo"])).status_code == 404
    page = http.get(reverse("admin:tenant_landing", args=["alpha"]))
    assert page.status_code == 200
    assert "alpha-hook" in page.content.decode()


def test_superuser_sees_every_tenant(world_a, world_b):
    root = User.objects.create_superuser("root", password="pw")
    response = login(root).get(reverse("admin:hooks_hook_changelist"))
    assert {world_a.hook, world_b.hook} <= set(response.context["cl"].result_list)


def test_non_member_staff_sees_no_models(world_a):
    outsider = User.objects.create_user("outsider", password="pw", is_staff=True)
    response = login(outsider).get(reverse("admin:hooks_hook_changelist"))
    assert response.status_code == 403


def test_run_needs_the_run_permission(world_a):
    world_a.admin.user_permissions.clear()
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_run", args=[world_a.hook.pk]),
        {"script": world_a.hook.script, "payload": "{}"},
    )
    assert response.status_code == 403


def test_run_rejects_invalid_json_payload(world_a):
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_run", args=[world_a.hook.pk]),
        {"script": world_a.hook.script, "payload": "{not json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_save_refuses_a_stale_base_version(world_a):
    http = login(world_a.admin)
    url = reverse("admin:hooks_hook_save", args=[world_a.hook.pk])
    first = http.post(url, {"script": world_a.hook.script + "\n", "base_version": 1})
    assert first.status_code == 200
    stale = http.post(url, {"script": world_a.hook.script + "// mine\n", "base_version": 1})
    assert stale.status_code == 409
    world_a.hook.refresh_from_db()
    assert world_a.hook.script != "// mine"


def test_save_reports_syntax_error_position(world_a):
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_save", args=[world_a.hook.pk]),
        {"script": "module.exports = function( {\n", "base_version": 1},
    )
    assert response.status_code == 400
    assert response.json()["line"] is not None


def test_secret_values_are_never_shown(world_a):
    http = login(world_a.admin)
    http.post(
        reverse("admin:hooks_hook_secret_set", args=[world_a.hook.pk]),
        {"name": "API_KEY", "value": "s3cr3t-value"},
    )
    page = http.get(reverse("admin:hooks_hook_change", args=[world_a.hook.pk])).content.decode()
    assert "API_KEY" in page
    assert "_VALUE_NOT_SHOWN_" in page
    assert "s3cr3t-value" not in page


def test_client_secret_shown_once_on_create(world_a):
    http = login(world_a.admin)
    response = http.post(
        reverse("admin:clients_client_add"),
        {
            "tenant": world_a.tenant.pk,
            "name": "fresh",
            "token_endpoint_auth_method": "client_secret_post",
            "metadata": "{}",
            "grants-TOTAL_FORMS": 0,
            "grants-INITIAL_FORMS": 0,
        },
    )
    client = Client.objects.get(tenant=world_a.tenant, name="fresh")
    secret_url = reverse("admin:clients_client_secret", args=[client.pk])
    assert response.status_code == 302
    assert response["Location"] == secret_url  # POST-redirect-GET
    shown = http.get(secret_url)
    assert "no-store" in shown["Cache-Control"]
    secret = shown.context["secret"]
    assert len(secret) >= 43
    assert client.client_secret != secret  # stored hashed
    again = http.get(secret_url)  # a reload shows it no more, and creates nothing
    assert secret not in again.content.decode()
    assert Client.objects.filter(tenant=world_a.tenant, name="fresh").count() == 1
    page = http.get(reverse("admin:clients_client_change", args=[client.pk])).content.decode()
    assert secret not in page


def test_secret_page_of_another_tenants_client_is_404(world_a, world_b):
    url = reverse("admin:clients_client_secret", args=[world_b.client.pk])
    assert login(world_a.admin).get(url).status_code == 404


def test_enabling_a_hook_reports_which_one_it_disabled(world_a):
    from hooks.services import hook_create

    second = hook_create(
        tenant=world_a.tenant,
        name="second",
        script=world_a.hook.script,
        enabled=None,
        actor=TEST_ACTOR,
    )
    assert second.enabled is False
    response = login(world_a.admin).post(
        reverse("admin:hooks_hook_enable", args=[second.pk]), follow=True
    )
    texts = [str(m) for m in response.context["messages"]]
    assert ENABLED_SECOND in texts
    world_a.hook.refresh_from_db()
    assert world_a.hook.enabled is False


def test_runs_endpoint_returns_json(world_a):
    response = login(world_a.admin).get(reverse("admin:hooks_hook_runs", args=[world_a.hook.pk]))
    assert response.status_code == 200
    assert json.loads(response.content) == {"runs": []}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("secret_set", {"name": "K", "value": "v"}),
        ("save", {"script": "module.exports = function(c, s, a, x, cb) { cb(null, {}); };"}),
    ],
)
def test_page_json_endpoints_need_the_csrf_token(world_a, name, data):
    http = HttpClient(enforce_csrf_checks=True)
    http.force_login(world_a.admin)
    url = reverse(f"admin:hooks_hook_{name}", args=[world_a.hook.pk])
    response = http.post(url, {**data, "base_version": 1}, headers={"accept": "application/json"})
    assert response.status_code == 403
    assert not world_a.hook.secrets.exists()
    world_a.hook.refresh_from_db()
    assert world_a.hook.version == 1


def test_secret_json_answer_lists_names_only_of_this_hook(world_a, world_b):
    http = login(world_a.admin)
    url = reverse("admin:hooks_hook_secret_set", args=[world_a.hook.pk])
    answer = http.post(
        url, {"name": "K", "value": "s3cr3t"}, headers={"accept": "application/json"}
    )
    assert answer.status_code == 200
    assert [s["name"] for s in answer.json()["secrets"]] == ["K"]
    assert "s3cr3t" not in answer.content.decode()
    other = reverse("admin:hooks_hook_secret_set", args=[world_b.hook.pk])
    refused = http.post(other, {"name": "K", "value": "x"}, headers={"accept": "application/json"})
    assert refused.status_code == 404
    assert not world_b.hook.secrets.exists()


# --- Actions and the Flow page ----------------------------------------------------


@pytest.fixture
def actions(world_a, world_b):
    """A deployed, bound Action in each tenant (with a secret in bravo's)."""
    from hooks.action_services import SecretSpec, action_update
    from tests.dashboard.actions import bind, make_action

    alpha, bravo = (
        make_action(world_a.tenant, "alpha-action"),
        make_action(world_b.tenant, "bravo-action"),
    )
    action_update(action=bravo, secrets=[SecretSpec("KEY", "bravo-value")], actor=TEST_ACTOR)
    bind(world_a.tenant, alpha)
    bind(world_b.tenant, bravo)
    return alpha, bravo


def bravo_state(bravo) -> tuple:  # type: ignore[no-untyped-def]
    from tests.dashboard.actions import bound_names

    bravo.refresh_from_db()
    return (
        bravo.code,
        bravo.revision,
        bravo.dependencies,
        list(bravo.versions.values_list("number", "deployed")),
        sorted(bravo.secrets.values_list("name", flat=True)),
        bound_names(bravo.tenant),
    )


def test_action_list_and_search_show_only_own_tenant(world_a, world_b, actions):
    alpha, _ = actions
    http = login(world_a.admin)
    listed = http.get(reverse("admin:hooks_action_changelist"))
    assert set(listed.context["cl"].result_list) == {alpha}
    searched = http.get(reverse("admin:hooks_action_changelist"), {"q": "bravo"})
    assert list(searched.context["cl"].result_list) == []
    assert "bravo-action" not in searched.content.decode()


@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_other_tenants_action_page_is_404(world_a, world_b, actions, view):
    _, bravo = actions
    response = login(world_a.admin).get(reverse(f"admin:hooks_action_{view}", args=[bravo.pk]))
    assert response.status_code == 404
    assert "bravo" not in response.content.decode()


@pytest.mark.parametrize(
    ("name", "extra", "data"),
    [
        ("save", (), {"script": "// mine", "base_version": 1}),
        ("run", (), {"script": "// mine", "payload": "{}"}),
        ("secret_set", (), {"name": "K", "value": "v"}),
        ("secret_delete", ("KEY",), {}),
        ("settings", (), {"runtime": "node18", "base_version": 1, "dep_name": ["x"]}),
        ("deploy", (), {}),
        ("rollback", (1,), {}),
        ("version_diff", (1,), None),
    ],
)
def test_other_tenants_action_endpoints_are_404_and_change_nothing(
    world_a, world_b, actions, name, extra, data
):
    _, bravo = actions
    before = bravo_state(bravo)
    url = reverse(f"admin:hooks_action_{name}", args=[bravo.pk, *extra])
    http = login(world_a.admin)
    response = http.get(url) if data is None else http.post(url, data)
    assert response.status_code == 404
    assert bravo_state(bravo) == before


def test_other_tenants_flow_page_is_404_and_its_bindings_stay(world_a, world_b, actions):
    alpha, bravo = actions
    before = bravo_state(bravo)
    http = login(world_a.admin)
    url = reverse("admin:hooks_action_flow", args=["bravo", "credentials-exchange"])
    assert http.get(url).status_code == 404
    for op, action_id in [("remove", bravo.public_id), ("add", alpha.public_id)]:
        response = http.post(url, {"op": op, "action": action_id, "based_on": bravo.public_id})
        assert response.status_code == 404
    assert bravo_state(bravo) == before
    unknown = reverse("admin:hooks_action_flow", args=["alpha", "post-login"])
    assert http.get(unknown).status_code == 404


def test_unbinding_another_tenants_action_from_own_flow_is_refused(world_a, world_b, actions):
    alpha, bravo = actions
    response = login(world_a.admin).post(
        reverse("admin:hooks_action_flow", args=["alpha", "credentials-exchange"]),
        {"op": "remove", "action": bravo.public_id, "based_on": alpha.public_id},
    )
    assert response.status_code == 400
    assert bravo_state(bravo)[-1] == ["bravo-action"]
    assert "bravo-action" not in response.content.decode()


def test_landing_page_flow_is_own_tenants(world_a, world_b, actions):
    page = login(world_a.admin).get(reverse("admin:tenant_landing", args=["alpha"]))
    assert "alpha-action" in page.content.decode()
    assert "bravo-action" not in page.content.decode()
