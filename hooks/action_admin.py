"""Actions in the dashboard: the list, the Action page (the hook page's
editor and Run panel on the draft, secrets, dependencies, Deploy, versions
with diff and rollback) and the Flow page of a trigger (bind, reorder,
unbind). Every write goes through ``hooks.action_services``."""

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString

from hooks import action_views, views
from hooks.action_forms import NEW_DEPENDENCY_ROWS, ActionAddForm, ActionCodeForm
from hooks.action_services import (
    action_create,
    action_delete,
    action_update,
    all_changes_deployed,
    deployed_version,
)
from hooks.choices import ActionRuntime, ActionStatus, TriggerId
from hooks.editor_admin import EditorPageAdmin
from hooks.forms import HookSecretForm, payload_editor
from hooks.models import Action
from hooks.points import POINTS
from hooks.selectors import with_deploy_state
from tenant.admin import current_tenant, user_tenants
from tenant.audit import Actor

STATUS_BADGES: dict[str, str] = {
    ActionStatus.BUILT: "tessera-on",
    ActionStatus.FAILED: "tessera-failed",
    ActionStatus.PENDING: "",
}


def status_badge(status: str, label: str) -> SafeString:
    css = STATUS_BADGES.get(status, "")
    return format_html('<span class="tessera-badge tessera-status {}">{}</span>', css, label)


@admin.register(Action)
class ActionAdmin(EditorPageAdmin):
    list_display = [
        "name",
        "trigger_id",
        "runtime",
        "status_marker",
        "deployed_marker",
        "in_sync_marker",
        "bound_marker",
        "updated_at",
    ]
    list_display_links = ["name"]
    list_filter = ["trigger_id", "status", "runtime"]
    list_select_related = ["tenant"]
    search_fields = ["name"]
    ordering = ["tenant__slug", "name"]
    change_form_template = "admin/hooks/action/change_form.html"
    change_list_template = "admin/hooks/action/change_list.html"
    object_history_template = "admin/hooks/action/object_history.html"

    add_form = ActionAddForm
    add_fields = ["tenant", "name", "trigger_id", "runtime", "code"]
    change_form = ActionCodeForm
    change_fields = ["code", "base_version"]
    audit_object_type = "action"

    def audit_object_id(self, obj: Action) -> str:
        return obj.public_id

    def get_queryset(self, request: HttpRequest) -> QuerySet[Action]:
        return with_deploy_state(super().get_queryset(request))

    # --- forms -------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Action, form: Any, change: bool) -> None:
        actor = Actor.for_user(request.user)
        if not change:
            created = action_create(
                tenant=obj.tenant,
                name=obj.name,
                code=obj.code,
                trigger_id=obj.trigger_id,
                runtime=obj.runtime,
                actor=actor,
            )
            obj.pk = created.pk
            if created.status == ActionStatus.FAILED:
                errors = " ".join(error.get("msg", "") for error in created.build_errors)
                messages.warning(request, f"Created {created.name}, but the build failed: {errors}")
            return
        # Without the page's script the whole form posts: the same save.
        if "code" in form.changed_data:
            try:
                action_update(action=obj, code=form.cleaned_data["code"], actor=actor)
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))

    def delete_model(self, request: HttpRequest, obj: Action) -> None:
        # The confirmation page lists its bindings; deleting unbinds them.
        action_delete(action=obj, actor=Actor.for_user(request.user), force=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Action]) -> None:
        for action in queryset:
            action_delete(action=action, actor=Actor.for_user(request.user), force=True)

    # --- list --------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_marker(self, action: Action) -> SafeString:
        return status_badge(action.status, action.get_status_display())

    @admin.display(description="Deployed", ordering="deployed_number")
    def deployed_marker(self, action: Any) -> str:
        number = action.deployed_number
        return f"version {number}" if number is not None else "—"

    @admin.display(description="All changes deployed", boolean=True)
    def in_sync_marker(self, action: Any) -> bool:
        return bool(action.in_sync)

    @admin.display(description="Bound", boolean=True)
    def bound_marker(self, action: Any) -> bool:
        return bool(action.is_bound)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        # A Flow link per tenant: the one being worked on, else the first few.
        current = current_tenant(request)
        tenants = [current] if current is not None else list(user_tenants(request)[:5])
        context = {**(extra_context or {}), "flow_tenants": tenants}
        return super().changelist_view(request, context)

    # --- the Action page ----------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        action = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if action is not None:
            point = POINTS[action.trigger_id]
            deployed = deployed_version(action=action)
            dependencies = list(action.dependencies) + [
                {"name": "", "version": ""} for _ in range(NEW_DEPENDENCY_ROWS)
            ]
            context.update(
                {
                    "action": action,
                    "can_run": request.user.has_perm(views.RUN_PERMISSION),
                    "payload_editor": payload_editor().render(
                        "payload",
                        json.dumps(point.sample_for("action"), indent=2),
                        {"id": "id_payload"},
                    ),
                    "status_badge": status_badge(action.status, action.get_status_display()),
                    "deployed": deployed,
                    "all_changes_deployed": all_changes_deployed(action=action, deployed=deployed),
                    "secrets": action.secrets.all(),
                    "secret_form": HookSecretForm(),
                    "dependencies": dependencies,
                    "runtimes": ActionRuntime.choices,
                    "versions": action.versions.all()[:100],
                    "bound_triggers": sorted(
                        set(action.bindings.values_list("trigger_id", flat=True))
                    ),
                    "flow_url": action_views.flow_url(action.tenant, action.trigger_id),
                }
            )
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        action_view = self.object_view

        def flow_view(request: HttpRequest, slug: str, trigger_id: str) -> HttpResponse:
            tenant = user_tenants(request).filter(slug=slug).first()
            if tenant is None or trigger_id not in TriggerId.values:
                raise Http404("No such flow.")
            context = self.page_context(request)
            response: HttpResponse = action_views.flow(request, tenant, trigger_id, context)
            return response

        prefix = "hooks_action_"
        extra = [
            path(
                "flow/<slug:slug>/<str:trigger_id>/",
                self.admin_site.admin_view(flow_view),
                name=f"{prefix}flow",
            ),
            path(
                "<int:object_id>/save/",
                action_view(action_views.save_code, write=True),
                name=f"{prefix}save",
            ),
            path(
                "<int:object_id>/run/",
                action_view(action_views.run, write=False),
                name=f"{prefix}run",
            ),
            path(
                "<int:object_id>/secrets/",
                action_view(action_views.secret_set, write=True),
                name=f"{prefix}secret_set",
            ),
            path(
                "<int:object_id>/secrets/<str:name>/delete/",
                action_view(action_views.secret_delete, write=True),
                name=f"{prefix}secret_delete",
            ),
            path(
                "<int:object_id>/settings/",
                action_view(action_views.save_settings, write=True),
                name=f"{prefix}settings",
            ),
            path(
                "<int:object_id>/deploy/",
                action_view(action_views.deploy, write=True, with_context=True),
                name=f"{prefix}deploy",
            ),
            path(
                "<int:object_id>/versions/<int:number>/",
                action_view(action_views.version_diff, write=False, with_context=True),
                name=f"{prefix}version_diff",
            ),
            path(
                "<int:object_id>/versions/<int:number>/rollback/",
                action_view(action_views.rollback, write=True, with_context=True),
                name=f"{prefix}rollback",
            ),
        ]
        return extra + super().get_urls()
