"""Dashboard endpoints of the hook page, mounted by ``HookAdmin.get_urls``.

Each view gets a hook the admin already resolved through its tenant-scoped
queryset (another tenant's hook is a 404 before any of this runs). The
JSON endpoints serve the page's script: save (Ctrl/Cmd+S), Run, and the
live run log.
"""

import difflib
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from hooks.choices import RunSource
from hooks.dry_run import GoLiveRefused
from hooks.dry_run_views import dry_run_json, render_dry_run
from hooks.forms import HookDependenciesForm, HookSecretForm, RunRequestForm
from hooks.models import Hook, HookSecret
from hooks.selectors import hook_runs
from hooks.services import (
    HookConflict,
    hook_disable,
    hook_enable,
    hook_restore_version,
    hook_save_script,
    hook_secret_delete,
    hook_secrets_set,
    hook_update,
)
from hooks.trial_run import TestRunReport, hook_test_run
from hooks.trial_run_slots import TestRunsBusy, test_run_slot
from tenant.audit import Actor

RUN_PERMISSION = "hooks.run_hook"
RECENT_RUNS = 25


def _change_url(hook: Hook) -> str:
    return reverse("admin:hooks_hook_change", args=[hook.pk])


# --- shared with the Action page (hooks/action_views.py) -------------------


def messages_of(error: ValidationError) -> str:
    return " ".join(error.messages)


def go_live_confirmed(request: HttpRequest) -> bool:
    """Whether the admin confirmed going live despite the dry run."""
    return request.POST.get("confirm_failing") == "1"


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def report_json(report: TestRunReport) -> dict[str, Any]:
    return {
        "outcome": report.outcome,
        "kind": report.kind,
        "ok": report.ok,
        "duration_ms": round(report.duration_ms, 2),
        "console": report.console,
        "value": report.value,
        "scope": report.scope,
        "claims": report.claims,
        "dropped": [asdict(item) for item in report.dropped],
        "error": asdict(report.error) if report.error else None,
    }


def run_response(
    request: HttpRequest, *, denied: str, test_run: Callable[[str, Any], TestRunReport]
) -> JsonResponse:
    """The Run panel's answer: ``test_run(code, payload)`` on the editor's
    (unsaved) code and the posted payload, in the sandbox, within the
    user's share of test runs; ``denied`` without the run permission."""
    if not request.user.has_perm(RUN_PERMISSION):
        return JsonResponse({"error": denied}, status=403)
    form = RunRequestForm(request.POST)
    if not form.is_valid():
        errors = [
            f"{field}: {' '.join(str(m) for m in msgs)}" for field, msgs in form.errors.items()
        ]
        return JsonResponse({"error": " ".join(errors)}, status=400)
    try:
        with test_run_slot(user_id=request.user.pk or 0):
            report = test_run(form.cleaned_data["script"], form.cleaned_data["payload"])
    except TestRunsBusy as error:
        return JsonResponse({"error": str(error), "busy": True}, status=429)
    except ValidationError as error:
        return JsonResponse({"error": messages_of(error)}, status=400)
    return JsonResponse(report_json(report), json_dumps_params={"default": str})


def secret_answer(
    request: HttpRequest, message: str, *, ok: bool, secrets: list[dict[str, str]], page_url: str
) -> HttpResponse:
    """JSON for the page's fetch (the editor keeps its unsaved text): the
    message and the secrets' rows (names, never values); or a message and a
    redirect to the page's secrets for a plain form post."""
    if wants_json(request):
        key = "message" if ok else "error"
        return JsonResponse({key: message, "secrets": secrets}, status=200 if ok else 400)
    (messages.success if ok else messages.error)(request, message)
    return HttpResponseRedirect(page_url + "#secrets")


def secret_form_errors(form: HookSecretForm) -> str:
    return " ".join(
        f"Secret {field}: {' '.join(str(e) for e in errors)}"
        for field, errors in form.errors.items()
    )


# --- the hook page -----------------------------------------------------------


def confirm_live_response(
    request: HttpRequest,
    hook: Hook,
    error: GoLiveRefused,
    *,
    action: str,
    context: dict[str, Any],
    fields: dict[str, Any],
) -> HttpResponse:
    """The page that shows why going live was refused (what changes, per
    client), with a button that repeats the same POST confirmed."""
    return TemplateResponse(
        request,
        "admin/hooks/hook/confirm_live.html",
        {
            **context,
            "title": f"Going live with {hook.name} would break token requests",
            "hook": hook,
            "message": messages_of(error),
            "what_changes": render_dry_run(error.dry_run),
            "action": action,
            "fields": fields,
        },
        status=409,
    )


@require_POST
def save_script(request: HttpRequest, hook: Hook) -> JsonResponse:
    """Save the editor's text as a new version, unless someone saved since
    ``base_version``; syntax errors come back with their line and column."""
    script = request.POST.get("script")
    try:
        base_version = int(request.POST.get("base_version", ""))
    except ValueError:
        return JsonResponse({"error": "Missing or invalid base_version."}, status=400)
    if script is None:
        return JsonResponse({"error": "Missing script."}, status=400)
    try:
        # Saving the enabled hook dry-runs it on the tenant's requests: test runs.
        with test_run_slot(user_id=request.user.pk or 0):
            hook = hook_save_script(
                hook=hook,
                script=script,
                base_version=base_version,
                actor=Actor.for_user(request.user),
                confirm_failing=go_live_confirmed(request),
            )
    except TestRunsBusy as error:
        return JsonResponse({"error": str(error), "busy": True}, status=429)
    except HookConflict as error:
        return JsonResponse({"error": messages_of(error), "conflict": True}, status=409)
    except GoLiveRefused as error:
        return JsonResponse(
            {
                "error": messages_of(error),
                "confirm": True,
                "dry_run": dry_run_json(error.dry_run),
            },
            status=422,
            json_dumps_params={"default": str},
        )
    except ValidationError as error:
        params = error.error_list[0].params or {}
        return JsonResponse(
            {
                "error": messages_of(error),
                "line": params.get("line"),
                "column": params.get("column"),
            },
            status=400,
        )
    return JsonResponse({"version": hook.version, "message": f"Saved version {hook.version}."})


@require_POST
def run(request: HttpRequest, hook: Hook) -> JsonResponse:
    """Run the editor's (unsaved) script against the payload, in the sandbox."""
    return run_response(
        request,
        denied="You do not have permission to run hooks.",
        test_run=lambda script, payload: hook_test_run(
            tenant=hook.tenant,
            script=script,
            payload=payload,
            trigger_id=hook.trigger_id,
            hook=hook,
        ),
    )


@require_GET
def runs(request: HttpRequest, hook: Hook) -> JsonResponse:
    """The hook's newest runs, for the page's live log; ``?source=token`` or
    ``?source=test`` keeps production runs and test runs apart."""
    rows = hook_runs(tenant=hook.tenant, hook=hook)
    source = request.GET.get("source", "")
    if source in RunSource.values:
        rows = rows.filter(source=source)
    return JsonResponse(
        {
            "runs": [
                {
                    "id": r.pk,
                    "started_at": r.started_at.isoformat(),
                    "source": r.source,
                    "source_display": r.get_source_display(),
                    "version": r.hook_version,
                    "outcome": r.outcome,
                    "outcome_display": r.get_outcome_display(),
                    "duration_ms": round(r.duration_ms, 2),
                    "console": r.console,
                    "error": r.error,
                }
                for r in rows[:RECENT_RUNS]
            ]
        }
    )


@require_POST
def enable(request: HttpRequest, hook: Hook, context: dict[str, Any]) -> HttpResponse:
    try:
        previous = hook_enable(
            hook=hook,
            actor=Actor.for_user(request.user),
            confirm_failing=go_live_confirmed(request),
        )
    except GoLiveRefused as error:
        return confirm_live_response(
            request,
            hook,
            error,
            action=reverse("admin:hooks_hook_enable", args=[hook.pk]),
            context=context,
            fields={},
        )
    messages.success(request, hook.enabled_message(previous))
    return HttpResponseRedirect(_change_url(hook))


@require_POST
def disable(request: HttpRequest, hook: Hook) -> HttpResponse:
    hook_disable(hook=hook, actor=Actor.for_user(request.user))
    messages.success(
        request, f"Disabled {hook.name}; tokens are issued without a {hook.trigger_id} hook."
    )
    return HttpResponseRedirect(_change_url(hook))


def _secret_answer(request: HttpRequest, hook: Hook, message: str, *, ok: bool) -> HttpResponse:
    secrets = [
        {
            "name": s.name,
            "delete_url": reverse("admin:hooks_hook_secret_delete", args=[hook.pk, s.name]),
        }
        for s in hook.secrets.all()
    ]
    return secret_answer(request, message, ok=ok, secrets=secrets, page_url=_change_url(hook))


@require_POST
def secret_set(request: HttpRequest, hook: Hook) -> HttpResponse:
    form = HookSecretForm(request.POST)
    if not form.is_valid():
        return _secret_answer(request, hook, secret_form_errors(form), ok=False)
    name = form.cleaned_data["name"]
    replaced = hook.secrets.filter(name=name).exists()
    try:
        hook_secrets_set(
            hook=hook,
            secrets={name: form.cleaned_data["value"]},
            actor=Actor.for_user(request.user),
        )
    except ValidationError as error:
        return _secret_answer(request, hook, messages_of(error), ok=False)
    verb = "Replaced" if replaced else "Added"
    return _secret_answer(request, hook, f"{verb} secret {name}.", ok=True)


@require_POST
def dependencies_set(request: HttpRequest, hook: Hook) -> HttpResponse:
    """Replace the hook's npm dependencies; they are resolved now (a plain
    form post: the page reloads)."""
    form = HookDependenciesForm(request.POST)
    if form.is_valid():
        try:
            hook = hook_update(
                hook=hook,
                dependencies=form.cleaned_data["dependencies"],
                actor=Actor.for_user(request.user),
            )
        except ValidationError as error:
            messages.error(request, messages_of(error))
        else:
            pinned = ", ".join(f"{p['name']}@{p['version']}" for p in hook.dependency_lock)
            messages.success(request, f"Dependencies saved ({pinned or 'none'}).")
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return HttpResponseRedirect(_change_url(hook) + "#dependencies")


@require_POST
def secret_delete(request: HttpRequest, hook: Hook, name: str) -> HttpResponse:
    try:
        hook_secret_delete(hook=hook, name=name, actor=Actor.for_user(request.user))
    except HookSecret.DoesNotExist:
        return _secret_answer(request, hook, f"There is no secret {name}.", ok=False)
    return _secret_answer(request, hook, f"Deleted secret {name}.", ok=True)


# HtmlDiff's navigation column: "f"/"n"/"t" links (first, next, top change)
# in a column of their own, which read as a stray column of "t"s.
_DIFF_NAVIGATION = re.compile(r'<t([dh]) class="diff_next"[^>]*>.*?</t\1>|<colgroup></colgroup>\s*')

# HtmlDiff marks the changes inside lines by comparing every changed line
# with every other: two large, unlike versions took tens of seconds of a
# worker. Past this many pairs of lines the diff is a unified one, unmarked.
MAX_SIDE_BY_SIDE_PAIRS = 200_000


def diff_table(left: str, right: str, left_label: str, right_label: str) -> str:
    """Two scripts side by side, changes in context (a unified diff when
    they are too large to mark in time)."""
    before, after = left.splitlines(), right.splitlines()
    if len(before) * len(after) > MAX_SIDE_BY_SIDE_PAIRS:
        lines = difflib.unified_diff(before, after, left_label, right_label, n=3, lineterm="")
        return format_html('<pre class="tessera-unified-diff">{}</pre>', "\n".join(lines))
    table = difflib.HtmlDiff(tabsize=2, wrapcolumn=90).make_table(
        before, after, fromdesc=left_label, todesc=right_label, context=True, numlines=3
    )
    return _DIFF_NAVIGATION.sub("", table)


def version_diff(
    request: HttpRequest, hook: Hook, number: int, context: dict[str, Any]
) -> HttpResponse:
    """A saved version side by side with the current script."""
    version = get_object_or_404(hook.versions, number=number)
    current = f"Current (version {hook.version})"
    table = diff_table(version.script, hook.script, f"Version {version.number}", current)
    return TemplateResponse(
        request,
        "admin/hooks/hook/version_diff.html",
        {
            **context,
            "title": f"{hook.name}: version {version.number}",
            "hook": hook,
            "version": version,
            "version_label": f"Version {version.number}",
            "diff_table": table if version.script != hook.script else "",
        },
    )


@require_POST
def version_restore(
    request: HttpRequest, hook: Hook, number: int, context: dict[str, Any]
) -> HttpResponse:
    try:
        base_version = int(request.POST.get("base_version", ""))
    except ValueError:
        base_version = hook.version
    get_object_or_404(hook.versions, number=number)
    try:
        hook = hook_restore_version(
            hook=hook,
            number=number,
            base_version=base_version,
            actor=Actor.for_user(request.user),
            confirm_failing=go_live_confirmed(request),
        )
    except GoLiveRefused as error:
        return confirm_live_response(
            request,
            hook,
            error,
            action=reverse("admin:hooks_hook_version_restore", args=[hook.pk, number]),
            context=context,
            fields={"base_version": base_version},
        )
    except ValidationError as error:
        messages.error(request, messages_of(error))
    else:
        messages.success(
            request,
            format_html("Restored version {} as version {}.", number, hook.version),
        )
    return HttpResponseRedirect(_change_url(hook))
