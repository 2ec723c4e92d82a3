"""Hooks: a list grouped by extensibility point with enable/disable actions,
and the hook page (editor, Run panel, secrets, versions, live run log)."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, path
from django.utils.safestring import mark_safe

from hooks import dry_run_views, runtime, views
from hooks.editor_admin import EditorPageAdmin
from hooks.forms import (
    HookAddForm,
    HookDependenciesForm,
    HookScriptForm,
    HookSecretForm,
    payload_editor,
)
from hooks.models import Hook
from hooks.points import POINTS
from hooks.selectors import tenant_egress_list
from hooks.services import (
    HookConflict,
    HookSampleRunFailed,
    hook_create,
    hook_delete,
    hook_disable,
    hook_enable,
    hook_save_script,
    tenant_egress_set,
)
from tenant.admin import TenantAdmin, user_tenants
from tenant.audit import Actor
from tenant.models import Tenant


class TenantSettingsForm(forms.ModelForm):
    """The tenant's settings page, with the hosts its hooks may call."""

    egress_hosts = forms.CharField(
        label="Hosts hooks may call",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "spellcheck": "false"}),
        help_text=(
            "One per line: host, *.domain, address or network, each with an optional :port. "
            "When set, your hooks and Actions may call only these, and only where the "
            "server's own policy allows (it never lets more through). Empty: no list of "
            "your own."
        ),
    )

    class Meta:
        model = Tenant
        # The admin names the fields it shows (TenantSettingsAdmin.fields).
        fields = ["name"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "egress_hosts" in self.fields:
            self.fields["egress_hosts"].initial = "\n".join(
                tenant_egress_list(tenant=self.instance)
            )

    def clean_egress_hosts(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["egress_hosts"].splitlines()]
        hosts = [line for line in lines if line]
        try:
            runtime.parse_tenant_hosts(hosts)
        except ValueError as error:
            raise ValidationError(f"Not an allowed host: {error}.") from None
        return hosts


class TenantSettingsAdmin(TenantAdmin):
    """The tenant admin, with what hooks add to a tenant's settings."""

    form = TenantSettingsForm
    fields = [*TenantAdmin.fields, "egress_hosts"]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        tenant_egress_set(
            tenant=Tenant.objects.get(pk=obj.pk),
            hosts=form.cleaned_data.get("egress_hosts") or [],
            actor=Actor.for_user(request.user),
        )


admin.site.unregister(Tenant)
admin.site.register(Tenant, TenantSettingsAdmin)


@admin.register(Hook)
class HookAdmin(EditorPageAdmin):
    list_display = ["trigger_id", "enabled_marker", "name", "version", "updated_at"]
    list_display_links = ["name"]
    list_filter = ["trigger_id", "enabled"]
    list_select_related = ["tenant"]
    search_fields = ["name"]
    ordering = ["tenant__slug", "trigger_id", "-enabled", "name"]
    actions = ["enable_hooks", "disable_hooks"]
    change_form_template = "admin/hooks/hook/change_form.html"
    change_list_template = "admin/hooks/hook/change_list.html"
    object_history_template = "admin/hooks/hook/object_history.html"

    add_form = HookAddForm
    add_fields = ["tenant", "name", "trigger_id", "kind", "script"]
    change_form = HookScriptForm
    change_fields = ["script", "base_version"]
    audit_object_type = "hook"

    # --- forms -------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Hook, form: Any, change: bool) -> None:
        if not change:
            created = hook_create(
                tenant=obj.tenant,
                name=obj.name,
                script=obj.script,
                trigger_id=obj.trigger_id,
                enabled=None,  # the first hook for a point starts enabled
                actor=Actor.for_user(request.user),
            )
            obj.pk, obj.enabled, obj.version = created.pk, created.enabled, created.version
            if created.enabled:
                messages.info(request, f"{created.name} is the first hook for its point: enabled.")
            return
        if "script" not in form.changed_data:
            return
        try:
            hook_save_script(
                hook=obj,
                script=form.cleaned_data["script"],
                base_version=form.cleaned_data["base_version"],
                actor=Actor.for_user(request.user),
            )
        except (HookConflict, ValidationError) as error:
            # Lost a race after the form's own checks passed; nothing was saved.
            messages.error(request, " ".join(error.messages))

    def delete_model(self, request: HttpRequest, obj: Hook) -> None:
        hook_delete(hook=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Hook]) -> None:
        for hook in queryset:
            hook_delete(hook=hook, actor=Actor.for_user(request.user))

    # --- list --------------------------------------------------------------

    @admin.display(description="Status", ordering="enabled")
    def enabled_marker(self, hook: Hook) -> str:
        if hook.enabled:
            return mark_safe('<span class="tessera-badge tessera-on">● enabled</span>')
        return mark_safe('<span class="tessera-badge">disabled</span>')

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        # The list is shown once, grouped by extensibility point, from the
        # changelist's own (filtered, searched, paginated) rows.
        context = {
            **(extra_context or {}),
            "show_tenant": user_tenants(request)[:2].count() > 1,
        }
        return super().changelist_view(request, context)

    def get_ordering(self, request: HttpRequest) -> Any:
        return ["tenant__slug", "trigger_id", "-enabled", "name"]

    @admin.action(description="Enable selected hook (disables the other for its point)")
    def enable_hooks(self, request: HttpRequest, queryset: QuerySet[Hook]) -> None:
        points = list(queryset.values_list("tenant_id", "trigger_id"))
        if len(points) != len(set(points)):
            self.message_user(
                request,
                "Only one hook per extensibility point can be enabled; select one.",
                messages.ERROR,
            )
            return
        for hook in queryset.select_related("tenant"):
            try:
                previous = hook_enable(hook=hook, actor=Actor.for_user(request.user))
            except HookSampleRunFailed as error:
                self.message_user(
                    request,
                    f"{' '.join(error.messages)} Not enabled: open the hook to see the error "
                    "and confirm there if it should go live anyway.",
                    messages.ERROR,
                )
                continue
            self.log_change(request, hook, "Enabled.")
            self.message_user(request, hook.enabled_message(previous), messages.SUCCESS)

    @admin.action(description="Disable selected hooks")
    def disable_hooks(self, request: HttpRequest, queryset: QuerySet[Hook]) -> None:
        for hook in queryset.select_related("tenant"):
            hook_disable(hook=hook, actor=Actor.for_user(request.user))
            self.log_change(request, hook, "Disabled.")
            self.message_user(request, f"Disabled {hook.name}.", messages.SUCCESS)

    # --- hook page -----------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        hook = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if hook is not None:
            point = POINTS[hook.trigger_id]
            payload_widget = payload_editor()
            context.update(
                {
                    "hook": hook,
                    "can_run": request.user.has_perm(views.RUN_PERMISSION),
                    "payload_editor": payload_widget.render(
                        "payload",
                        json.dumps(point.sample_for(hook.kind), indent=2),
                        {"id": "id_payload"},
                    ),
                    "secrets": hook.secrets.all(),
                    "secret_form": HookSecretForm(),
                    "dependency_form": HookDependenciesForm(
                        initial={"dependencies": HookDependenciesForm.text_of(hook)}
                    ),
                    "versions": hook.versions.select_related("created_by")[:50],
                }
            )
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        hook_view = self.object_view
        prefix = "hooks_hook_"
        extra = [
            path(
                "<int:object_id>/save/",
                hook_view(views.save_script, write=True),
                name=f"{prefix}save",
            ),
            path("<int:object_id>/run/", hook_view(views.run, write=False), name=f"{prefix}run"),
            path("<int:object_id>/runs/", hook_view(views.runs, write=False), name=f"{prefix}runs"),
            path(
                "<int:object_id>/enable/",
                hook_view(views.enable, write=True, with_context=True),
                name=f"{prefix}enable",
            ),
            path(
                "<int:object_id>/disable/",
                hook_view(views.disable, write=True),
                name=f"{prefix}disable",
            ),
            path(
                "<int:object_id>/secrets/",
                hook_view(views.secret_set, write=True),
                name=f"{prefix}secret_set",
            ),
            path(
                "<int:object_id>/dependencies/",
                hook_view(views.dependencies_set, write=True),
                name=f"{prefix}dependencies",
            ),
            path(
                "<int:object_id>/secrets/<str:name>/delete/",
                hook_view(views.secret_delete, write=True),
                name=f"{prefix}secret_delete",
            ),
            path(
                "<int:object_id>/versions/<int:number>/",
                hook_view(views.version_diff, write=False, with_context=True),
                name=f"{prefix}version_diff",
            ),
            path(
                "<int:object_id>/versions/<int:number>/restore/",
                hook_view(views.version_restore, write=True, with_context=True),
                name=f"{prefix}version_restore",
            ),
        ]
        extra += dry_run_views.urls(hook_view, prefix)
        return extra + super().get_urls()


# The Actions pages live in their own module; importing it registers them.
from hooks import action_admin  # noqa: E402, F401
