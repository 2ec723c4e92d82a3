"""The Actions pages through Django's test client: the list, the Action page
(save builds, Run runs the draft, write-only secrets, dependencies, Deploy,
versions with diff and rollback), the Flow page (bind, reorder, unbind, each
audited, a stale page refused) and the flow on the landing page. Deploy,
rollback and flow changes that break a client calling today (over a live
server first) are shown with what changes and a confirm button. Two tenants
side by side; another tenant's Actions and flow are covered here and in
test_isolation.py."""

import json
import re
from html import escape, unescape

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient
from django.urls import reverse

from hooks.action_services import action_deploy, action_update
from hooks.models import Action
from hooks.services import hook_disable
from tenant.models import AuditEntry
from tests.dashboard.actions import TRIGGER, bind, bound_names, claim_code, make_action
from tests.dashboard.conftest import TenantWorld, make_admin
from tests.factories import TEST_ACTOR
from tests.hooks.go_live import BREAKS_BILLING, CLAIM, FROM_PROFILE, NEEDS_THE_TAG, Calling

pytestmark = pytest.mark.django_db

SECRET_VALUE = "s3cr3t-value-91ac"
SECRET_CLAIM = """exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://example.com/key', event.secrets.KEY);
};
"""
BROKEN = "exports.onExecuteCredentialsExchange = async (event, api) => {\n"


def login(user: User) -> HttpClient:
    http = HttpClient()
    http.force_login(user)
    return http


def url(name: str, *args: object) -> str:
    return reverse(f"admin:hooks_action_{name}", args=args)


def flow_url(world: TenantWorld) -> str:
    return url("flow", world.tenant.slug, TRIGGER)


def text_of(response) -> str:  # type: ignore[no-untyped-def]
    """A page's text, without its tags (a diff marks changes inside words)."""
    return unescape(re.sub(r"<[^>]+>", "", response.content.decode())).replace("\xa0", " ")


def entries(action_or_trigger: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_id=action_or_trigger).order_by("id"))


# --- the list ----------------------------------------------------------------


def test_list_shows_status_deployment_sync_and_binding(world_a, world_b):
    live = make_action(world_a.tenant, "live")
    make_action(world_a.tenant, "draft-only", deploy=False)
    changed = make_action(world_a.tenant, "changed")
    Action.objects.filter(pk=changed.pk).update(code=claim_code("changed", "edited"))
    make_action(world_a.tenant, "broken", deploy=False, code=BROKEN)
    make_action(world_b.tenant, "bravo-action")
    bind(world_a.tenant, live)

    response = login(world_a.admin).get(url("changelist"))
    assert response.status_code == 200
    rows = {a.name: a for a in response.context["cl"].result_list}
    assert set(rows) == {"live", "draft-only", "changed", "broken"}
    state = {name: (a.status, a.deployed_number, a.in_sync, a.is_bound) for name, a in rows.items()}
    assert state == {
        "live": ("built", 1, True, True),
        "draft-only": ("built", None, False, False),
        "changed": ("built", 1, False, False),
        "broken": ("failed", None, False, False),
    }
    page = response.content.decode()
    assert "version 1" in page and "Failed" in page and "node22" in page
    assert "bravo-action" not in page
    assert flow_url(world_a) in page


# --- the Action page -----------------------------------------------------------


def test_add_creates_a_built_action_and_opens_its_page(world_a):
    response = login(world_a.admin).post(
        url("add"),
        {
            "tenant": world_a.tenant.pk,
            "name": "tier",
            "trigger_id": TRIGGER,
            "runtime": "node18",
            "code": claim_code("tier", "gold"),
        },
    )
    action = Action.objects.get(tenant=world_a.tenant, name="tier")
    assert response.status_code == 302
    assert response["Location"] == url("change", action.pk)
    assert (action.status, action.runtime) == ("built", "node18")
    assert [e.action for e in entries(action.public_id)] == ["create"]


def test_add_with_code_that_does_not_compile_saves_it_failed(world_a):
    http = login(world_a.admin)
    response = http.post(
        url("add"),
        {"tenant": world_a.tenant.pk, "name": "bad", "trigger_id": TRIGGER, "runtime": "node22"}
        | {"code": BROKEN},
        follow=True,
    )
    action = Action.objects.get(tenant=world_a.tenant, name="bad")
    assert action.status == "failed"
    page = response.content.decode()
    assert "Build failed" in page
    assert escape(action.build_errors[0]["msg"]) in page


def test_page_has_the_editor_run_panel_secrets_dependencies_and_versions(world_a):
    action = make_action(world_a.tenant, "tier")
    response = login(world_a.admin).get(url("change", action.pk))
    page = response.content.decode()
    assert response.status_code == 200
    for part in [
        'data-editor="id_code"',
        "tessera/hook_editor.js",
        'id="run-button"',
        "&quot;event&quot;",  # the Run panel's sample event
        'id="secret-form"',
        'id="settings-form"',
        'id="action-deploy"',
        "1 (live)",
    ]:
        assert part in page, part


def test_save_builds_the_draft_and_a_broken_one_is_saved_failed(world_a):
    action = make_action(world_a.tenant, "tier", deploy=False)
    http = login(world_a.admin)
    good = http.post(
        url("save", action.pk), {"script": claim_code("tier", "v2"), "base_version": 1}
    )
    assert good.status_code == 200
    assert good.json() | {"message": ""} == {
        "version": 2,
        "message": "",
        "status": "built",
        "status_display": "Built",
        "errors": [],
        "all_changes_deployed": False,
    }
    bad = http.post(url("save", action.pk), {"script": BROKEN, "base_version": 2})
    assert bad.status_code == 200
    assert bad.json()["status"] == "failed"
    assert "build failed" in bad.json()["message"]
    action.refresh_from_db()
    assert (action.code, action.status, action.revision) == (BROKEN, "failed", 3)


def test_save_refuses_a_stale_revision_and_keeps_the_draft(world_a):
    action = make_action(world_a.tenant, "tier", deploy=False)
    http = login(world_a.admin)
    assert (
        http.post(url("save", action.pk), {"script": claim_code("tier", "a"), "base_version": 1})
    ).status_code == 200
    stale = http.post(url("save", action.pk), {"script": "// mine", "base_version": 1})
    assert stale.status_code == 409
    assert stale.json()["conflict"] is True
    action.refresh_from_db()
    assert action.code == claim_code("tier", "a")


def test_run_runs_the_unsaved_draft_with_the_drafts_secrets(world_a):
    action = make_action(world_a.tenant, "keyed", deploy=False)
    http = login(world_a.admin)
    http.post(url("secret_set", action.pk), {"name": "KEY", "value": SECRET_VALUE})
    payload = json.dumps({"event": {"client": {"client_id": "x", "name": "n", "metadata": {}}}})
    response = http.post(url("run", action.pk), {"script": SECRET_CLAIM, "payload": payload})
    assert response.status_code == 200, response.content
    assert response.json()["claims"] == {"https://example.com/key": SECRET_VALUE}
    action.refresh_from_db()
    assert action.code == claim_code("keyed", "keyed")  # running saves nothing


def test_run_needs_the_run_permission_and_valid_json(world_a):
    action = make_action(world_a.tenant, "tier", deploy=False)
    http = login(world_a.admin)
    assert (
        http.post(url("run", action.pk), {"script": action.code, "payload": "{no"})
    ).status_code == 400
    world_a.admin.user_permissions.clear()
    refused = login(world_a.admin).post(
        url("run", action.pk), {"script": action.code, "payload": "{}"}
    )
    assert refused.status_code == 403


def test_secrets_are_write_only_with_names_and_times(world_a):
    action = make_action(world_a.tenant, "keyed", deploy=False)
    http = login(world_a.admin)
    answer = http.post(
        url("secret_set", action.pk),
        {"name": "KEY", "value": SECRET_VALUE},
        headers={"accept": "application/json"},
    )
    assert answer.status_code == 200
    [secret] = answer.json()["secrets"]
    assert secret["name"] == "KEY" and secret["updated_at"]
    assert SECRET_VALUE not in answer.content.decode()
    page = http.get(url("change", action.pk)).content.decode()
    assert "KEY" in page and "_VALUE_NOT_SHOWN_" in page and SECRET_VALUE not in page
    deleted = http.post(
        url("secret_delete", action.pk, "KEY"), headers={"accept": "application/json"}
    )
    assert deleted.json()["secrets"] == []
    assert not action.secrets.exists()
    audited = json.dumps([[e.before, e.after] for e in entries(action.public_id)])
    assert "KEY" in audited and SECRET_VALUE not in audited


def test_dependencies_and_runtime_are_saved_and_a_blank_name_removes_one(world_a):
    action = make_action(world_a.tenant, "deps", deploy=False)
    http = login(world_a.admin)
    http.post(
        url("settings", action.pk),
        {
            "runtime": "node18",
            "base_version": 1,
            "dep_name": ["lodash", "uuid", ""],
            "dep_version": ["4.17.21", "", ""],
        },
    )
    action.refresh_from_db()
    assert action.runtime == "node18"
    assert action.dependencies == [
        {"name": "lodash", "version": "4.17.21"},
        {"name": "uuid", "version": "latest"},
    ]
    http.post(
        url("settings", action.pk),
        {"runtime": "node18", "base_version": 2, "dep_name": ["", "uuid"]}
        | {"dep_version": ["4.17.21", "latest"]},
    )
    action.refresh_from_db()
    assert action.dependencies == [{"name": "uuid", "version": "latest"}]


def test_dependencies_from_a_stale_page_are_refused(world_a):
    action = make_action(world_a.tenant, "deps", deploy=False)
    http = login(world_a.admin)
    http.post(url("save", action.pk), {"script": claim_code("deps", "b"), "base_version": 1})
    response = http.post(
        url("settings", action.pk),
        {"runtime": "node18", "base_version": 1, "dep_name": ["uuid"], "dep_version": [""]},
        follow=True,
    )
    assert any("changed by someone else" in str(m) for m in response.context["messages"])
    action.refresh_from_db()
    assert (action.runtime, action.dependencies, action.revision) == ("node22", [], 2)


def test_deploy_makes_version_one_then_nothing_while_the_draft_is_unchanged(world_a):
    action = make_action(world_a.tenant, "tier", deploy=False)
    http = login(world_a.admin)
    first = http.post(url("deploy", action.pk), follow=True)
    assert "Deployed version 1." in [str(m) for m in first.context["messages"]]
    again = http.post(url("deploy", action.pk), follow=True)
    assert "Nothing to deploy: version 1 is the draft." in [
        str(m) for m in again.context["messages"]
    ]
    assert list(action.versions.values_list("number", "deployed")) == [(1, True)]
    assert [e.action for e in entries(action.public_id)] == ["create", "deploy"]


def test_deploy_of_a_failed_draft_is_refused(world_a):
    action = make_action(world_a.tenant, "bad", deploy=False, code=BROKEN)
    response = login(world_a.admin).post(url("deploy", action.pk), follow=True)
    texts = [str(m) for m in response.context["messages"]]
    assert any("must be in the 'built' state" in t for t in texts)
    assert not action.versions.exists()


def test_diff_against_the_draft_and_another_version(world_a):
    action = make_action(world_a.tenant, "tier")
    http = login(world_a.admin)
    http.post(url("save", action.pk), {"script": claim_code("tier", "second"), "base_version": 1})
    http.post(url("deploy", action.pk))
    http.post(url("save", action.pk), {"script": claim_code("tier", "third"), "base_version": 2})
    with_draft = text_of(http.get(url("version_diff", action.pk, 1)))
    assert "Draft" in with_draft and '"third"' in with_draft
    with_two = text_of(http.get(url("version_diff", action.pk, 1) + "?with=2"))
    assert "Version 2" in with_two and '"second"' in with_two and "third" not in with_two
    assert http.get(url("version_diff", action.pk, 9)).status_code == 404
    assert http.get(url("version_diff", action.pk, 1) + "?with=x").status_code == 400
    # No column of HtmlDiff's navigation links (a stray column of "t"s), as on the hook page.
    assert 'class="diff_next"' not in http.get(url("version_diff", action.pk, 1)).content.decode()


def test_rollback_deploys_the_old_code_as_a_new_version(world_a):
    action = make_action(world_a.tenant, "tier")
    http = login(world_a.admin)
    http.post(url("save", action.pk), {"script": claim_code("tier", "v2"), "base_version": 1})
    http.post(url("deploy", action.pk))
    response = http.post(url("rollback", action.pk, 1), follow=True)
    assert "Rolled back to version 1: it is deployed as version 3." in [
        str(m) for m in response.context["messages"]
    ]
    live = action.versions.get(deployed=True)
    assert (live.number, live.code) == (3, action.versions.get(number=1).code)
    action.refresh_from_db()
    assert action.code == claim_code("tier", "v2")  # the draft is left as it is
    history = http.get(url("history", action.pk)).content.decode()
    assert "rollback v1" in history and "→ version 3" in history


def test_deleting_a_bound_action_unbinds_it_with_audit_rows(world_a):
    action = make_action(world_a.tenant, "tier")
    bind(world_a.tenant, action)
    response = login(world_a.admin).post(url("delete", action.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Action.objects.filter(pk=action.pk).exists()
    assert bound_names(world_a.tenant) == []
    assert [e.action for e in entries(TRIGGER)][-1] == "bindings.replace"


# --- the Flow page -------------------------------------------------------------


def flow_post(http: HttpClient, world: TenantWorld, op: str, action_id: str, based_on: list[str]):  # type: ignore[no-untyped-def]
    return http.post(
        flow_url(world), {"op": op, "action": action_id, "based_on": ",".join(based_on)}
    )


def test_flow_page_shows_the_hook_first_then_the_bound_actions_in_order(world_a, world_b):
    one, two = make_action(world_a.tenant, "one"), make_action(world_a.tenant, "two")
    make_action(world_a.tenant, "spare")
    make_action(world_a.tenant, "undeployed", deploy=False)
    make_action(world_b.tenant, "bravo-action")
    bind(world_a.tenant, two, one)
    response = login(world_a.admin).get(flow_url(world_a))
    page = response.content.decode()
    assert response.status_code == 200
    hook_link = reverse("admin:hooks_hook_change", args=[world_a.hook.pk])
    positions = [page.index(hook_link), page.index(">two<"), page.index(">one<")]
    assert positions == sorted(positions)
    assert [a.name for a in response.context["bindable"]] == ["spare"]
    assert "bravo-action" not in page and "undeployed" not in page.split("flow-bind")[1]


def test_bind_reorder_and_unbind_each_go_through_bindings_replace_audited(world_a):
    one, two = make_action(world_a.tenant, "one"), make_action(world_a.tenant, "two")
    http = login(world_a.admin)
    response = flow_post(http, world_a, "add", one.public_id, [])
    assert response.status_code == 302
    assert response["Location"] == flow_url(world_a) + f"?focus=add-{one.public_id}"
    flow_post(http, world_a, "add", two.public_id, [one.public_id])
    assert bound_names(world_a.tenant) == ["one", "two"]
    flow_post(http, world_a, "up", two.public_id, [one.public_id, two.public_id])
    assert bound_names(world_a.tenant) == ["two", "one"]
    flow_post(http, world_a, "down", two.public_id, [two.public_id, one.public_id])
    assert bound_names(world_a.tenant) == ["one", "two"]
    flow_post(http, world_a, "remove", one.public_id, [one.public_id, two.public_id])
    assert bound_names(world_a.tenant) == ["two"]
    changes = [e for e in entries(TRIGGER) if e.action == "bindings.replace"]
    assert [[b["action"] for b in (e.after or {})["bindings"]] for e in changes] == [
        ["one"],
        ["one", "two"],
        ["two", "one"],
        ["one", "two"],
        ["two"],
    ]
    assert {e.actor_name for e in changes} == {world_a.admin.username}
    page = http.get(flow_url(world_a)).content.decode()
    assert "one → two" in page  # the flow's recent changes


def test_focus_stays_on_the_moved_action_after_the_page_reloads(world_a):
    one, two = make_action(world_a.tenant, "one"), make_action(world_a.tenant, "two")
    bind(world_a.tenant, two, one)  # "two" was just moved up
    http = login(world_a.admin)
    moved = http.get(flow_url(world_a) + f"?focus=up-{two.public_id}")
    # "two" is first now: it has no Move up, so its Move down keeps the place.
    assert moved.context["focus_id"] == f"down-{two.public_id}"
    assert f'id="down-{two.public_id}" aria-label="Move two down" autofocus' in (
        moved.content.decode()
    )


@pytest.mark.parametrize("which", ["unknown", "other-tenant", "undeployed", "already-bound"])
def test_binding_an_action_the_page_does_not_offer_is_refused(world_a, world_b, which):
    bound = make_action(world_a.tenant, "bound")
    bind(world_a.tenant, bound)
    target = {
        "unknown": "00000000-0000-4000-8000-000000000000",
        "other-tenant": make_action(world_b.tenant, "bravo-action").public_id,
        "undeployed": make_action(world_a.tenant, "draft", deploy=False).public_id,
        "already-bound": bound.public_id,
    }[which]
    response = flow_post(login(world_a.admin), world_a, "add", target, [bound.public_id])
    assert response.status_code == 400
    assert "no deployed, unbound action with that id" in response.content.decode()
    assert bound_names(world_a.tenant) == ["bound"]
    assert bound_names(world_b.tenant) == []


def test_moving_an_action_that_is_not_bound_is_refused(world_a):
    one = make_action(world_a.tenant, "one")
    response = flow_post(login(world_a.admin), world_a, "up", one.public_id, [])
    assert response.status_code == 400
    assert "not bound to this trigger" in response.content.decode()


@pytest.mark.parametrize("op", ["sideways", ""])
def test_an_unknown_change_is_refused(world_a, op):
    one = make_action(world_a.tenant, "one")
    response = flow_post(login(world_a.admin), world_a, op, one.public_id, [])
    assert response.status_code == 400
    assert bound_names(world_a.tenant) == []


def test_a_change_made_on_a_stale_page_is_refused_with_a_clear_message(world_a):
    one, two = make_action(world_a.tenant, "one"), make_action(world_a.tenant, "two")
    bind(world_a.tenant, one, two)
    seen = [one.public_id, two.public_id]
    bind(world_a.tenant, two, one)  # someone else reorders meanwhile
    response = flow_post(login(world_a.admin), world_a, "down", one.public_id, seen)
    assert response.status_code == 409
    page = response.content.decode()
    assert "changed by someone else since you loaded it; nothing was changed" in page
    assert bound_names(world_a.tenant) == ["two", "one"]
    # The page shows the flow as it stands, with forms based on it.
    assert response.context["based_on"] == f"{two.public_id},{one.public_id}"


def test_bindings_replace_refuses_a_list_based_on_another_flow(world_a):
    from hooks.action_services import BindingSpec, FlowChanged, bindings_replace

    one = make_action(world_a.tenant, "one")
    with pytest.raises(FlowChanged):
        bindings_replace(
            tenant=world_a.tenant,
            trigger_id=TRIGGER,
            bindings=[BindingSpec(one, "one")],
            actor=TEST_ACTOR,
            based_on=[one.public_id],  # it was not bound
        )
    assert bound_names(world_a.tenant) == []


def test_flow_page_without_a_hook_or_anything_to_bind(world_a):
    hook_disable(hook=world_a.hook, actor=TEST_ACTOR)
    page = login(world_a.admin).get(flow_url(world_a)).content.decode()
    assert "No hook enabled" in page
    assert "No Actions bound." in page
    assert "must be deployed before it can be bound" in page


# --- the landing page ------------------------------------------------------------


def test_landing_page_shows_the_flow_in_order_linking_to_the_flow_page(world_a, world_b):
    one, two = make_action(world_a.tenant, "one"), make_action(world_a.tenant, "two")
    bind(world_a.tenant, two, one)
    bind(world_b.tenant, make_action(world_b.tenant, "bravo-action"))
    response = login(world_a.admin).get(reverse("admin:tenant_landing", args=["alpha"]))
    page = response.content.decode()
    panel = page[page.index('id="flow-panel"') :]
    panel = panel[: panel.index("</section>")]
    assert flow_url(world_a) in panel
    positions = [panel.index("alpha-hook"), panel.index(">two<"), panel.index(">one<")]
    assert positions == sorted(positions)
    assert "bravo-action" not in page


# --- the audit trail -------------------------------------------------------------


def test_every_action_write_deploy_and_binding_change_shows_in_the_audit_views(world_a, world_b):
    from io import StringIO

    from django.core.management import call_command

    http = login(world_a.admin)
    http.post(
        url("add"),
        {"tenant": world_a.tenant.pk, "name": "tier", "trigger_id": TRIGGER}
        | {"runtime": "node22", "code": claim_code("tier", "v1")},
    )
    action = Action.objects.get(tenant=world_a.tenant, name="tier")
    http.post(url("save", action.pk), {"script": claim_code("tier", "v2"), "base_version": 1})
    http.post(url("secret_set", action.pk), {"name": "KEY", "value": SECRET_VALUE})
    http.post(url("settings", action.pk), {"runtime": "node18", "base_version": 2})
    http.post(url("deploy", action.pk))
    flow_post(http, world_a, "add", action.public_id, [])
    bravo = make_action(world_b.tenant, "bravo-action")

    mine = [(e.actor_name, e.action) for e in entries(action.public_id) + entries(TRIGGER)]
    assert mine == [
        ("alpha-admin", "create"),
        ("alpha-admin", "update"),  # the code
        ("alpha-admin", "update"),  # the secret (its name only)
        ("alpha-admin", "update"),  # the runtime
        ("alpha-admin", "deploy"),
        ("alpha-admin", "bindings.replace"),
    ]
    history = http.get(url("history", action.pk)).content.decode()
    for text in ["create", "update", "deploy", "→ version 1", "secrets"]:
        assert text in history, text
    landing = http.get(reverse("admin:tenant_landing", args=["alpha"])).content.decode()
    assert "deploy action <strong>tier</strong>" in landing
    assert "bindings.replace trigger <strong>credentials-exchange</strong>" in landing
    assert "bravo-action" not in landing
    out = StringIO()
    call_command("tenant", "audit", "-p", "alpha", stdout=out)
    assert "deploy action tier" in out.getvalue()
    assert "bindings.replace trigger credentials-exchange" in out.getvalue()
    assert SECRET_VALUE not in out.getvalue() + history + landing
    assert bravo.name not in out.getvalue()


# --- going live, judged on the tenant's recorded requests -------------------------


@pytest.fixture
def calling(live_server, settings) -> tuple[Calling, HttpClient]:  # type: ignore[no-untyped-def]
    """Tenant acme, whose clients called through a live server, beside
    globex, whose clients called too; and acme's administrator."""
    settings.PUBLIC_URL = live_server.url
    Calling("globex")
    acme = Calling("acme")
    return acme, login(make_admin("acme-admin", acme.tenant))


def refusal_fields(page: str) -> dict[str, str]:
    form = page.split('id="confirm-live-form"')[1].split("</form>")[0]
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)
    return {name: value for name, value in found if name != "csrfmiddlewaretoken"}


@pytest.mark.django_db(transaction=True)
def test_a_deploy_that_breaks_a_calling_client_shows_what_changes_then_deploys_confirmed(
    calling,
):
    acme, http = calling
    action_update(action=acme.action, code=BREAKS_BILLING, actor=TEST_ACTOR)
    refused = http.post(url("deploy", acme.action.pk))
    assert refused.status_code == 409
    page = refused.content.decode()
    billing = acme.client_id("billing")
    message = text_of(refused).split("What changes")[0]
    assert f"billing ({billing})" in message and "1 recorded request would fail" in message
    assert 'class="tessera-wc-row tessera-wc-regression" data-client="' + billing in page
    assert "no billing (line 2" in page
    assert "globex" not in page.lower()  # only acme's requests were replayed
    assert 'id="confirm-live-error" role="alert" tabindex="-1" autofocus' in page
    assert "Deploy anyway" in page
    fields = refusal_fields(page)
    assert fields == {"revision": "2", "confirm_failing": "1"}
    assert list(acme.action.versions.values_list("number", flat=True)) == [1]
    assert acme.claims("billing")[CLAIM] == 1

    confirmed = http.post(url("deploy", acme.action.pk), fields, follow=True)
    assert "Deployed version 2." in [str(m) for m in confirmed.context["messages"]]
    assert acme.token("billing").status_code != 200
    assert acme.claims("orders")[CLAIM] == 2


@pytest.mark.django_db(transaction=True)
def test_a_confirmation_for_a_draft_changed_since_its_dry_run_deploys_nothing(calling):
    acme, http = calling
    action_update(action=acme.action, code=BREAKS_BILLING, actor=TEST_ACTOR)
    fields = refusal_fields(http.post(url("deploy", acme.action.pk)).content.decode())
    action_update(action=acme.action, code=BREAKS_BILLING + "// 3\n", actor=TEST_ACTOR)
    response = http.post(url("deploy", acme.action.pk), fields, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "The draft changed since its dry run; nothing was deployed. Deploy again to check it."
    ]
    assert list(acme.action.versions.values_list("number", flat=True)) == [1]


@pytest.mark.django_db(transaction=True)
def test_a_rollback_to_a_breaking_version_needs_confirmation_and_a_fix_does_not(calling):
    acme, http = calling
    action = action_update(action=acme.action, code=BREAKS_BILLING, actor=TEST_ACTOR)
    action_deploy(action=action, actor=TEST_ACTOR)
    fixed = http.post(url("rollback", action.pk, 1), follow=True)
    assert "Rolled back to version 1: it is deployed as version 3." in [
        str(m) for m in fixed.context["messages"]
    ]
    refused = http.post(url("rollback", action.pk, 2))
    assert refused.status_code == 409
    assert f"billing ({acme.client_id('billing')})" in text_of(refused)
    assert "Roll back to 2 anyway" in refused.content.decode()
    assert action.versions.get(deployed=True).number == 3
    confirmed = http.post(url("rollback", action.pk, 2), {"confirm_failing": "1"})
    assert confirmed.status_code == 302
    assert action.versions.get(deployed=True).number == 4


@pytest.mark.django_db(transaction=True)
def test_a_flow_change_that_breaks_a_calling_client_is_shown_on_the_flow_page_to_confirm(
    calling,
):
    acme, http = calling
    strict = acme.deployed("strict", BREAKS_BILLING)
    flow = url("flow", "acme", TRIGGER)
    tag = acme.action.public_id
    refused = http.post(flow, {"op": "add", "action": strict.public_id, "based_on": tag})
    assert refused.status_code == 409
    page = refused.content.decode()
    assert "The new credentials-exchange flow would fail" in text_of(refused)
    assert f"billing ({acme.client_id('billing')})" in text_of(refused)
    assert "tessera-wc-regression" in page and "Make this change anyway" in page
    # The flow as it stands, the refusal's message the only control with the focus.
    assert [b.action.name for b in refused.context["flow"].bindings] == ["tag"]
    assert page.count(" autofocus") == 1
    assert 'id="confirm-live-error" role="alert" tabindex="-1" autofocus' in page
    fields = refusal_fields(page)
    assert fields == {
        "op": "add",
        "action": strict.public_id,
        "based_on": tag,
        "confirm_failing": "1",
    }
    assert bound_names(acme.tenant) == ["tag"]
    confirmed = http.post(flow, fields)
    assert confirmed.status_code == 302
    assert bound_names(acme.tenant) == ["tag", "strict"]
    assert acme.token("billing").status_code != 200


@pytest.mark.django_db(transaction=True)
def test_a_confirmed_flow_change_from_a_stale_page_is_still_refused(calling):
    acme, http = calling
    guard = acme.deployed("guard", NEEDS_THE_TAG)
    bind(acme.tenant, acme.action, guard)
    flow = url("flow", "acme", TRIGGER)
    seen = f"{acme.action.public_id},{guard.public_id}"
    refused = http.post(flow, {"op": "remove", "action": acme.action.public_id, "based_on": seen})
    assert refused.status_code == 409
    assert "billing needs the tag" in text_of(refused)
    fields = refusal_fields(refused.content.decode())
    bind(acme.tenant, guard, acme.action)  # someone else reorders meanwhile
    stale = http.post(flow, fields)
    assert stale.status_code == 409
    assert "changed by someone else since you loaded it; nothing was changed" in text_of(stale)
    assert bound_names(acme.tenant) == ["guard", "tag"]


@pytest.mark.django_db(transaction=True)
def test_a_deploy_and_a_bind_that_fail_only_on_the_sample_go_live_at_once(calling):
    acme, http = calling
    action_update(action=acme.action, code=FROM_PROFILE.replace("/plan", "/a"), actor=TEST_ACTOR)
    deployed = http.post(url("deploy", acme.action.pk), follow=True)
    assert "Deployed version 2." in [str(m) for m in deployed.context["messages"]]
    plan = acme.deployed("plan", FROM_PROFILE)
    flow = url("flow", "acme", TRIGGER)
    bound = http.post(
        flow, {"op": "add", "action": plan.public_id, "based_on": acme.action.public_id}
    )
    assert bound.status_code == 302
    assert acme.claims("billing")[CLAIM] == "free"
