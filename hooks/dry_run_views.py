"""The hook page's dry runs: "What changes" (the editor's text against what
is live, on the tenant's recorded requests and clients) and the Run panel's
replay mode (the editor's text on every recorded input), both rendered by
``admin/hooks/hook/what_changes.html``. Mounted by ``HookAdmin.get_urls``
through :func:`urls`, which resolves the hook in its tenant first."""

import difflib
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from hooks.dry_run import DryRun, Replayed, dry_run, hook_candidate
from hooks.execution import check_script
from hooks.models import Hook
from hooks.trial_run_slots import TestRunsBusy, test_run_slot

RUN_PERMISSION = "hooks.run_hook"


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, default=str).splitlines()


def _side(outcome: Any) -> list[str]:
    """What a token would carry (or the error), as lines to compare."""
    if not outcome.ok:
        return [f"✗ {outcome.error}", *([f"  in {outcome.step}"] if outcome.step else [])]
    return _pretty({"scope": " ".join(outcome.scope), **outcome.claims})


def side_by_side(item: Replayed) -> list[dict[str, Any]]:
    """Rows of the live token and the candidate's, aligned; ``kind`` is
    ``same``, ``changed``, ``added`` or ``removed``."""
    left, right = _side(item.live), _side(item.candidate)
    rows: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [{"live": line, "candidate": line, "kind": "same"} for line in left[i1:i2]]
            continue
        olds, news = left[i1:i2], right[j1:j2]
        for n in range(max(len(olds), len(news))):
            old = olds[n] if n < len(olds) else None
            new = news[n] if n < len(news) else None
            kind = (
                "changed" if old is not None and new is not None else "added" if new else "removed"
            )
            rows.append({"live": old, "candidate": new, "kind": kind})
    return rows


def render_dry_run(report: DryRun, *, replay: bool = False) -> str:
    """The "What changes" panel (or, with ``replay``, the Run panel's
    per-input results) for ``report``."""
    rows = [
        {
            "json": item.as_json(),
            "diff": side_by_side(item) if item.changed else [],
            "candidate_text": "\n".join(_side(item.candidate)),
        }
        for item in report.replayed
    ]
    return render_to_string(
        "admin/hooks/hook/what_changes.html",
        {"report": report, "summary": report.summary(), "rows": rows, "replay": replay},
    )


def dry_run_json(report: DryRun, *, replay: bool = False) -> dict[str, Any]:
    return {**report.as_json(), "html": render_dry_run(report, replay=replay)}


@require_POST
def what_changes(request: HttpRequest, hook: Hook) -> JsonResponse:
    """Dry-run the editor's (unsaved) text as this hook, live: every recorded
    request and client through what is live and through the text.
    ``mode=replay`` renders each input's result for the Run panel instead."""
    if not request.user.has_perm(RUN_PERMISSION):
        return JsonResponse({"error": "You do not have permission to run hooks."}, status=403)
    script = request.POST.get("script")
    if script is None:
        return JsonResponse({"error": "Missing script."}, status=400)
    if len(script.encode(errors="surrogatepass")) > settings.TESSERA_HOOK_MAX_SCRIPT_BYTES:
        return JsonResponse(
            {"error": f"The script exceeds {settings.TESSERA_HOOK_MAX_SCRIPT_BYTES} bytes."},
            status=400,
        )
    try:
        check_script(tenant=hook.tenant, script=script)
        # One test run at a time for the author, like Run: it runs many.
        with test_run_slot(user_id=request.user.pk or 0):
            report = dry_run(
                tenant=hook.tenant,
                trigger_id=hook.trigger_id,
                candidate=hook_candidate(hook=hook, script=script),
            )
    except TestRunsBusy as error:
        return JsonResponse({"error": str(error), "busy": True}, status=429)
    except ValidationError as error:
        params = error.error_list[0].params or {}
        return JsonResponse(
            {"error": " ".join(error.messages), "line": params.get("line")}, status=400
        )
    replay = request.POST.get("mode") == "replay"
    return JsonResponse(dry_run_json(report, replay=replay), json_dumps_params={"default": str})


def urls(hook_view: Callable[..., Any], prefix: str) -> list[URLPattern]:
    """The dry-run endpoints, each wrapped by the admin's ``hook_view``."""
    view: Callable[..., HttpResponse] = hook_view(what_changes, write=False)
    return [path("<int:object_id>/what-changes/", view, name=f"{prefix}what_changes")]
