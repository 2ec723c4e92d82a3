"""Dashboard endpoints of the Action page and the Flow page, mounted by
``ActionAdmin.get_urls``.

Each Action view gets an Action the admin already resolved through its
tenant-scoped queryset, and the Flow page a tenant the user administers
(another tenant's is a 404 before any of this runs). The page's script
(static/tessera/hook_editor.js, shared with the hook page) saves the draft
and runs it through the JSON endpoints; deploy, rollback, dependencies and
every flow change are plain forms.

Deploy, rollback and every flow change go live: they are first made
unconfirmed, so that a regression on the tenant's recorded requests and
clients is refused (:class:`hooks.dry_run.GoLiveRefused`) and shown with
its "What changes" panel and a button that repeats the POST confirmed.
"""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from hooks.action_forms import ActionSettingsForm, FlowChangeForm, stale_draft_message
from hooks.action_services import (
    ActionNotBuilt,
    BindingRefused,
    BindingSpec,
    DraftChanged,
    FlowChanged,
    SecretSpec,
    action_deploy,
    action_rollback,
    action_update,
    all_changes_deployed,
    bindings_replace,
    deployed_version,
)
from hooks.choices import ActionStatus
from hooks.dry_run import GoLiveRefused
from hooks.dry_run_views import render_dry_run
from hooks.forms import HookSecretForm
from hooks.models import Action, ActionVersion
from hooks.selectors import Flow, bindable_actions, trigger_flow
from hooks.trial_run import action_test_run
from hooks.views import (
    diff_table,
    go_live_confirmed,
    messages_of,
    run_response,
    secret_answer,
    secret_form_errors,
)
from tenant.audit import Actor
from tenant.models import Tenant
from tenant.selectors import audit_entries
from tenant.services import Conflict


def change_url(action: Action) -> str:
    return reverse("admin:hooks_action_change", args=[action.pk])


def flow_url(tenant: Tenant, trigger_id: str) -> str:
    return reverse("admin:hooks_action_flow", args=[tenant.slug, trigger_id])


def _refusal(
    error: GoLiveRefused,
    *,
    consequence: str,
    confirm_url: str,
    confirm_label: str,
    cancel_url: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """What ``admin/hooks/action/go_live_refusal.html`` shows: why, what
    changes per client, and a form that repeats the POST (``fields``)
    confirmed."""
    return {
        "message": messages_of(error),
        "what_changes": render_dry_run(error.dry_run),
        "consequence": consequence,
        "confirm_url": confirm_url,
        "confirm_label": confirm_label,
        "cancel_url": cancel_url,
        "fields": fields,
    }


def _confirm_page(
    request: HttpRequest, action: Action, context: dict[str, Any], refusal: dict[str, Any]
) -> HttpResponse:
    return TemplateResponse(
        request,
        "admin/hooks/action/confirm_live.html",
        {
            **context,
            "title": f"Going live with {action.name} would break token requests",
            "action": action,
            "tessera_current_tenant": action.tenant,
            "refusal": refusal,
        },
        status=409,
    )


def _runs_on(action: Action) -> str:
    return (
        f"{action.name} runs on every token request of {action.tenant.name} "
        f"({action.trigger_id}): going live now makes the requests above fail."
    )


def build_summary(action: Action) -> dict[str, Any]:
    """The draft's build state, as the page's script shows it after a save."""
    deployed = deployed_version(action=action)
    return {
        "status": action.status,
        "status_display": action.get_status_display(),
        "errors": [error.get("msg", "") for error in action.build_errors],
        "all_changes_deployed": all_changes_deployed(action=action, deployed=deployed),
    }


# --- the Action page -------------------------------------------------------


@require_POST
def save_code(request: HttpRequest, action: Action) -> JsonResponse:
    """Save the editor's text as the draft and build it, unless someone
    changed the draft since ``base_version``. A draft that does not build
    is saved all the same, ``failed`` with its error (as at Auth0)."""
    code = request.POST.get("script")
    try:
        base_version = int(request.POST.get("base_version", ""))
    except ValueError:
        return JsonResponse({"error": "Missing or invalid base_version."}, status=400)
    if code is None:
        return JsonResponse({"error": "Missing script."}, status=400)
    try:
        action = action_update(
            action=action, code=code, base_revision=base_version, actor=Actor.for_user(request.user)
        )
    except DraftChanged:
        action.refresh_from_db()
        return JsonResponse({"error": stale_draft_message(action), "conflict": True}, status=409)
    except ValidationError as error:
        return JsonResponse({"error": messages_of(error)}, status=400)
    summary = build_summary(action)
    if action.status == ActionStatus.BUILT:
        message = "Saved; built. Deploy to make it live."
    else:
        message = "Saved, but the build failed: " + " ".join(summary["errors"])
    return JsonResponse({"version": action.revision, "message": message, **summary})


@require_POST
def run(request: HttpRequest, action: Action) -> JsonResponse:
    """Run the editor's (unsaved) draft against the payload, in the sandbox,
    with the draft's secrets."""
    return run_response(
        request,
        denied="You do not have permission to run code.",
        test_run=lambda code, payload: action_test_run(action=action, code=code, payload=payload),
    )


def _secret_answer(request: HttpRequest, action: Action, message: str, *, ok: bool) -> HttpResponse:
    secrets = [
        {
            "name": s.name,
            "updated_at": s.updated_at.isoformat(),
            "delete_url": reverse("admin:hooks_action_secret_delete", args=[action.pk, s.name]),
        }
        for s in action.secrets.all()
    ]
    return secret_answer(request, message, ok=ok, secrets=secrets, page_url=change_url(action))


def _kept_secrets(action: Action, *, without: str) -> list[SecretSpec]:
    """The draft's other secrets, their stored values kept."""
    names = action.secrets.exclude(name=without).values_list("name", flat=True)
    return [SecretSpec(name, None) for name in names]


@sensitive_post_parameters("value")  # never in an error report
@require_POST
def secret_set(request: HttpRequest, action: Action) -> HttpResponse:
    form = HookSecretForm(request.POST)
    if not form.is_valid():
        return _secret_answer(request, action, secret_form_errors(form), ok=False)
    name = form.cleaned_data["name"]
    replaced = action.secrets.filter(name=name).exists()
    specs = [*_kept_secrets(action, without=name), SecretSpec(name, form.cleaned_data["value"])]
    try:
        action_update(action=action, secrets=specs, actor=Actor.for_user(request.user))
    except ValidationError as error:
        return _secret_answer(request, action, messages_of(error), ok=False)
    verb = "Replaced" if replaced else "Added"
    return _secret_answer(
        request, action, f"{verb} secret {name}; deploy to use it in the flow.", ok=True
    )


@require_POST
def secret_delete(request: HttpRequest, action: Action, name: str) -> HttpResponse:
    if not action.secrets.filter(name=name).exists():
        return _secret_answer(request, action, f"There is no secret {name}.", ok=False)
    action_update(
        action=action,
        secrets=_kept_secrets(action, without=name),
        actor=Actor.for_user(request.user),
    )
    return _secret_answer(
        request, action, f"Deleted secret {name}; deploy to remove it from the flow.", ok=True
    )


@require_POST
def save_settings(request: HttpRequest, action: Action) -> HttpResponse:
    """The draft's runtime label and dependencies."""
    form = ActionSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return HttpResponseRedirect(change_url(action) + "#dependencies")
    try:
        action_update(
            action=action,
            runtime=form.cleaned_data["runtime"],
            dependencies=form.dependencies,
            base_revision=form.cleaned_data["base_version"],
            actor=Actor.for_user(request.user),
        )
    except DraftChanged:
        action.refresh_from_db()
        messages.error(request, stale_draft_message(action))
    except ValidationError as error:
        messages.error(request, messages_of(error))
    else:
        messages.success(request, "Saved the runtime and dependencies; deploy to use them.")
    return HttpResponseRedirect(change_url(action) + "#dependencies")


DRAFT_CHANGED_SINCE_CHECK = (
    "The draft changed since its dry run; nothing was deployed. Deploy again to check it."
)


@require_POST
def deploy(request: HttpRequest, action: Action, context: dict[str, Any]) -> HttpResponse:
    """Deploy the saved draft as a new version (what the flow runs); a
    regression on the tenant's requests needs a confirmation, given for the
    draft revision that was checked."""
    confirmed = go_live_confirmed(request)
    checked = request.POST.get("revision")
    if confirmed and checked is not None and checked != str(action.revision):
        messages.error(request, DRAFT_CHANGED_SINCE_CHECK)
        return HttpResponseRedirect(change_url(action))
    previous = deployed_version(action=action)
    try:
        version = action_deploy(
            action=action, actor=Actor.for_user(request.user), confirm_failing=confirmed
        )
    except GoLiveRefused as error:
        refusal = _refusal(
            error,
            consequence=_runs_on(action),
            confirm_url=reverse("admin:hooks_action_deploy", args=[action.pk]),
            confirm_label="Deploy anyway",
            cancel_url=change_url(action),
            fields={"revision": action.revision},
        )
        return _confirm_page(request, action, context, refusal)
    except (ActionNotBuilt, Conflict) as error:
        messages.error(request, messages_of(error))
        return HttpResponseRedirect(change_url(action))
    if previous is not None and version.pk == previous.pk:
        messages.info(request, f"Nothing to deploy: version {version.number} is the draft.")
    else:
        messages.success(request, f"Deployed version {version.number}.")
    return HttpResponseRedirect(change_url(action) + "#versions")


@require_POST
def rollback(
    request: HttpRequest, action: Action, number: int, context: dict[str, Any]
) -> HttpResponse:
    """Deploy an earlier version's code again, as a new version; a
    regression on the tenant's requests needs a confirmation."""
    version = get_object_or_404(action.versions, number=number)
    try:
        new = action_rollback(
            action=action,
            version=version,
            actor=Actor.for_user(request.user),
            confirm_failing=go_live_confirmed(request),
        )
    except GoLiveRefused as error:
        refusal = _refusal(
            error,
            consequence=_runs_on(action),
            confirm_url=reverse("admin:hooks_action_rollback", args=[action.pk, number]),
            confirm_label=f"Roll back to {number} anyway",
            cancel_url=change_url(action) + "#versions",
            fields={},
        )
        return _confirm_page(request, action, context, refusal)
    messages.success(
        request, f"Rolled back to version {number}: it is deployed as version {new.number}."
    )
    return HttpResponseRedirect(change_url(action) + "#versions")


def version_diff(
    request: HttpRequest, action: Action, number: int, context: dict[str, Any]
) -> HttpResponse:
    """A version side by side with the draft (``?with=draft``, the default)
    or another version (``?with=N``)."""
    version = get_object_or_404(action.versions, number=number)
    other_key = request.GET.get("with", "draft")
    other: ActionVersion | None = None
    if other_key != "draft":
        try:
            other = get_object_or_404(action.versions, number=int(other_key))
        except ValueError:
            return HttpResponseBadRequest("with is 'draft' or a version number.")
    right_code = other.code if other is not None else action.code
    right_label = f"Version {other.number}" if other is not None else "Draft"
    table = diff_table(version.code, right_code, f"Version {version.number}", right_label)
    return TemplateResponse(
        request,
        "admin/hooks/action/version_diff.html",
        {
            **context,
            "title": f"{action.name}: version {version.number}",
            "action": action,
            "version": version,
            "versions": action.versions.all(),
            "compared_with": other_key,
            "right_label": right_label,
            "version_label": f"Version {version.number}",
            "diff_table": table if version.code != right_code else "",
        },
    )


# --- the Flow page ---------------------------------------------------------


FLOW_CHANGED = (
    "The flow was changed by someone else since you loaded it; nothing was changed. "
    "Here it is as it stands now: make your change again."
)
NOT_BINDABLE = "There is no deployed, unbound action with that id to bind."
NOT_BOUND = "That action is not bound to this trigger."


def _focus_after(change: str, flow: Flow, *, has_bindable: bool) -> str:
    """The control that keeps the keyboard's place after a change reloads
    the page (``change`` is ``op-actionid``): the moved Action's same button
    (its other one at either end of the flow), else the bind choice."""
    op, _, action_id = change.partition("-")
    ids = flow.action_ids
    if op in ("up", "down") and action_id in ids:
        position, last = ids.index(action_id), len(ids) - 1
        if op == "up" and position == 0 and last > 0:
            op = "down"
        elif op == "down" and position == last and last > 0:
            op = "up"
        return f"{op}-{action_id}" if last > 0 else f"remove-{action_id}"
    if has_bindable:
        return "bind-action"
    return f"remove-{ids[-1]}" if ids else ""


def _flow_response(
    request: HttpRequest,
    tenant: Tenant,
    trigger_id: str,
    context: dict[str, Any],
    *,
    error: str = "",
    refusal: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    flow = trigger_flow(tenant=tenant, trigger_id=trigger_id)
    bindable = bindable_actions(tenant=tenant, trigger_id=trigger_id)
    # A refusal's message takes the focus; else the control the change left.
    focus_id = (
        ""
        if refusal
        else _focus_after(request.GET.get("focus", ""), flow, has_bindable=bool(bindable))
    )
    return TemplateResponse(
        request,
        "admin/hooks/action/flow.html",
        {
            **context,
            "title": f"Flow: {trigger_id}",
            "tenant": tenant,
            "tessera_current_tenant": tenant,
            "flow": flow,
            "based_on": ",".join(flow.action_ids),
            "bindable": bindable,
            "focus_id": focus_id,
            "error": error,
            "refusal": refusal,
            "changes": audit_entries(tenant=tenant, object_type="trigger", object_id=trigger_id)[
                :20
            ],
        },
        status=status,
    )


def flow(request: HttpRequest, tenant: Tenant, trigger_id: str, context: dict[str, Any]) -> Any:
    """The trigger's flow: the enabled hook, then the bound Actions in
    order; each POST is one change (bind, move up or down, unbind) made
    through ``bindings_replace``, refused if the flow changed since the page
    was loaded, and shown with what changes (to confirm) if it breaks token
    requests that work today."""
    if request.method != "POST":
        return _flow_response(request, tenant, trigger_id, context)
    form = FlowChangeForm(request.POST)
    if not form.is_valid():
        return _flow_response(
            request,
            tenant,
            trigger_id,
            context,
            error="That change is not one the page offers.",
            status=400,
        )
    op, target = form.cleaned_data["op"], form.cleaned_data["action"]
    based_on = form.based_on_ids()
    current = trigger_flow(tenant=tenant, trigger_id=trigger_id)
    bound = {b.action.public_id: b for b in current.bindings}
    if based_on != list(bound):  # said early; bindings_replace checks it again, locked
        return _flow_response(request, tenant, trigger_id, context, error=FLOW_CHANGED, status=409)
    specs = [BindingSpec(b.action, b.display_name) for b in bound.values()]
    if op == "add":
        bindable = bindable_actions(tenant=tenant, trigger_id=trigger_id)
        action = bindable.filter(public_id=target).first()
        if action is None:
            return _flow_response(
                request, tenant, trigger_id, context, error=NOT_BINDABLE, status=400
            )
        specs.append(BindingSpec(action, action.name))
        message = f"Bound {action.name} to {trigger_id}."
    else:
        if target not in bound:
            return _flow_response(request, tenant, trigger_id, context, error=NOT_BOUND, status=400)
        position = based_on.index(target)
        moved = specs.pop(position)
        if op == "up":
            specs.insert(max(position - 1, 0), moved)
        elif op == "down":
            specs.insert(position + 1, moved)
        name = moved.action.name
        message = {
            "up": f"Moved {name} up.",
            "down": f"Moved {name} down.",
            "remove": f"Unbound {name} from {trigger_id}.",
        }[op]
    try:
        bindings_replace(
            tenant=tenant,
            trigger_id=trigger_id,
            bindings=specs,
            actor=Actor.for_user(request.user),
            based_on=based_on,
            confirm_failing=go_live_confirmed(request),
        )
    except GoLiveRefused as error:
        url = flow_url(tenant, trigger_id)
        refusal = _refusal(
            error,
            consequence=(
                f"The flow runs on every token request of {tenant.name}: "
                "making this change now makes the requests above fail."
            ),
            confirm_url=url,
            confirm_label="Make this change anyway",
            cancel_url=url,
            fields={"op": op, "action": target, "based_on": ",".join(based_on)},
        )
        return _flow_response(request, tenant, trigger_id, context, refusal=refusal, status=409)
    except FlowChanged:
        return _flow_response(request, tenant, trigger_id, context, error=FLOW_CHANGED, status=409)
    except BindingRefused as error:
        return _flow_response(
            request, tenant, trigger_id, context, error=messages_of(error), status=400
        )
    messages.success(request, message)
    focus = f"?focus={op}-{target}"
    return HttpResponseRedirect(flow_url(tenant, trigger_id) + focus)
