"""Dashboard endpoints of the hook page, mounted by ``HookAdmin.get_urls``.

Each view gets a hook the admin already resolved through its tenant-scoped
queryset (another tenant's hook is a 404 before any of this runs). The
JSON endpoints serve the page's script: save (Ctrl/Cmd+S), Run, and the
live run log.
"""

import difflib
import re
from dataclasses import asdict
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from hooks.forms import HookSecretForm, RunRequestForm
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
)
from hooks.test_runner import hook_test_run

RUN_PERMISSION = "hooks.run_hook"
RECENT_RUNS = 25
_POSITION = re.compile(r"line (\d+), column (\d+)")


def acting_user(request: HttpRequest) -> User | None:
    """The signed-in user, for "saved by" records (admin views require one)."""
    return request.user if isinstance(request.user, User) else None


def _change_url(hook: Hook) -> str:
    return reverse("admin:hooks_hook_change", args=[hook.pk])


def _messages_of(error: ValidationError) -> str:
    return " ".join(error.messages)


def enable_message(hook: Hook, previous: Hook | None) -> str:
    if previous is None:
        return f"Enabled {hook.name}."
    return f"Enabled {hook.name}; disabled {previous.name}."


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
        hook = hook_save_script(
            hook=hook, script=script, base_version=base_version, user=acting_user(request)
        )
    except HookConflict as error:
        return JsonResponse({"error": _messages_of(error), "conflict": True}, status=409)
    except ValidationError as error:
        text = _messages_of(error)
        position = _POSITION.search(text)
        return JsonResponse(
            {
                "error": text,
                "line": int(position[1]) if position else None,
                "column": int(position[2]) if position else None,
            },
            status=400,
        )
    return JsonResponse({"version": hook.version, "message": f"Saved version {hook.version}."})


@require_POST
def run(request: HttpRequest, hook: Hook) -> JsonResponse:
    """Run the editor's (unsaved) script against the payload, in the sandbox."""
    if not request.user.has_perm(RUN_PERMISSION):
        return JsonResponse({"error": "You do not have permission to run hooks."}, status=403)
    form = RunRequestForm(request.POST)
    if not form.is_valid():
        errors = [
            f"{field}: {' '.join(str(m) for m in msgs)}" for field, msgs in form.errors.items()
        ]
        return JsonResponse({"error": " ".join(errors)}, status=400)
    try:
        report = hook_test_run(
            tenant=hook.tenant,
            script=form.cleaned_data["script"],
            payload=form.cleaned_data["payload"],
            trigger_id=hook.trigger_id,
            hook=hook,
        )
    except ValidationError as error:
        return JsonResponse({"error": _messages_of(error)}, status=400)
    return JsonResponse(
        {
            "outcome": report.outcome,
            "ok": report.ok,
            "duration_ms": round(report.duration_ms, 2),
            "console": report.console,
            "value": report.value,
            "scope": report.scope,
            "claims": report.claims,
            "dropped": [asdict(item) for item in report.dropped],
            "error": asdict(report.error) if report.error else None,
        },
        json_dumps_params={"default": str},
    )


@require_GET
def runs(request: HttpRequest, hook: Hook) -> JsonResponse:
    """The hook's newest runs, for the page's live log."""
    rows = hook_runs(tenant=hook.tenant, hook=hook)[:RECENT_RUNS]
    return JsonResponse(
        {
            "runs": [
                {
                    "id": r.pk,
                    "started_at": r.started_at.isoformat(),
                    "source": r.get_source_display(),
                    "version": r.hook_version,
                    "outcome": r.outcome,
                    "outcome_display": r.get_outcome_display(),
                    "duration_ms": round(r.duration_ms, 2),
                    "console": r.console,
                    "error": r.error,
                }
                for r in rows
            ]
        }
    )


@require_POST
def enable(request: HttpRequest, hook: Hook) -> HttpResponse:
    previous = hook_enable(hook=hook)
    messages.success(request, enable_message(hook, previous))
    return HttpResponseRedirect(_change_url(hook))


@require_POST
def disable(request: HttpRequest, hook: Hook) -> HttpResponse:
    hook_disable(hook=hook)
    messages.success(
        request, f"Disabled {hook.name}; tokens are issued without a {hook.trigger_id} hook."
    )
    return HttpResponseRedirect(_change_url(hook))


@require_POST
def secret_set(request: HttpRequest, hook: Hook) -> HttpResponse:
    form = HookSecretForm(request.POST)
    if form.is_valid():
        name = form.cleaned_data["name"]
        replaced = hook.secrets.filter(name=name).exists()
        try:
            hook_secrets_set(hook=hook, secrets={name: form.cleaned_data["value"]})
        except ValidationError as error:
            messages.error(request, _messages_of(error))
        else:
            messages.success(request, f"{'Replaced' if replaced else 'Added'} secret {name}.")
    else:
        for field, errors in form.errors.items():
            messages.error(request, f"Secret {field}: {' '.join(str(e) for e in errors)}")
    return HttpResponseRedirect(_change_url(hook) + "#secrets")


@require_POST
def secret_delete(request: HttpRequest, hook: Hook, name: str) -> HttpResponse:
    try:
        hook_secret_delete(hook=hook, name=name)
    except HookSecret.DoesNotExist:
        messages.error(request, f"There is no secret {name}.")
    else:
        messages.success(request, f"Deleted secret {name}.")
    return HttpResponseRedirect(_change_url(hook) + "#secrets")


def version_diff(
    request: HttpRequest, hook: Hook, number: int, context: dict[str, Any]
) -> HttpResponse:
    """A saved version side by side with the current script."""
    version = get_object_or_404(hook.versions, number=number)
    table = difflib.HtmlDiff(tabsize=2, wrapcolumn=90).make_table(
        version.script.splitlines(),
        hook.script.splitlines(),
        fromdesc=f"Version {version.number}",
        todesc=f"Current (version {hook.version})",
        context=True,
        numlines=3,
    )
    return TemplateResponse(
        request,
        "admin/hooks/hook/version_diff.html",
        {
            **context,
            "title": f"{hook.name}: version {version.number}",
            "hook": hook,
            "version": version,
            "diff_table": table if version.script != hook.script else "",
        },
    )


@require_POST
def version_restore(request: HttpRequest, hook: Hook, number: int) -> HttpResponse:
    try:
        base_version = int(request.POST.get("base_version", ""))
    except ValueError:
        base_version = hook.version
    get_object_or_404(hook.versions, number=number)
    try:
        hook = hook_restore_version(
            hook=hook, number=number, base_version=base_version, user=acting_user(request)
        )
    except ValidationError as error:
        messages.error(request, _messages_of(error))
    else:
        messages.success(
            request,
            format_html("Restored version {} as version {}.", number, hook.version),
        )
    return HttpResponseRedirect(_change_url(hook))
