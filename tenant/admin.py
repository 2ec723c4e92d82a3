"""Per-tenant dashboard: the scoping every admin class builds on, and the
tenant admin itself.

Membership is the role: a staff user who is a member of a tenant may view,
add, change and delete that tenant's APIs, clients, grants and hooks without
Django model permissions (there is one kind of tenant administrator). Running
code in the hook test runner is the exception: it also needs the
``hooks.run_hook`` permission. Superusers see every tenant.

Isolation rests on ``get_queryset``: list pages, search, filters, actions,
history, autocomplete and change pages all start from it, so another tenant's
object is the same 404 as a missing one.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.forms import HiddenInput, ModelChoiceField, ModelMultipleChoiceField
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from tenant.audit import Actor
from tenant.crypto import decrypt, encrypt
from tenant.models import Tenant, TenantMembership
from tenant.services import (
    Conflict,
    tenant_add_member,
    tenant_create,
    tenant_delete,
    tenant_remove_member,
    tenant_update,
)

# The session key of the tenant switcher's choice (the admin site sets it).
CURRENT_TENANT_SESSION_KEY = "tessera_tenant"


def user_tenants(request: HttpRequest) -> QuerySet[Tenant]:
    """The tenants the request's user administers (all of them for superusers)."""
    user = request.user
    if not user.is_active or not user.is_staff:
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(memberships__user=user)


def current_tenant(request: HttpRequest) -> Tenant | None:
    """The tenant last opened in the switcher, if the user still administers it."""
    slug = request.session.get(CURRENT_TENANT_SESSION_KEY)
    return user_tenants(request).filter(slug=slug).first() if slug else None


def _tenant_path(model: type[models.Model]) -> str | None:
    """The lookup from ``model`` to its Tenant, or None if it has none."""
    if model is Tenant:
        return "pk"
    paths = {
        "Api": "tenant",
        "ApiScope": "api__tenant",
        "Client": "tenant",
        "ClientGrant": "client__tenant",
        "Hook": "tenant",
        "HookVersion": "hook__tenant",
        "HookSecret": "hook__tenant",
        "HookRun": "tenant",
        "Action": "tenant",
        "ActionVersion": "action__tenant",
        "ActionSecret": "action__tenant",
        "TriggerBinding": "tenant",
    }
    return paths.get(model.__name__)


def scope_to_tenants(request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset`` limited to the request user's tenants."""
    path = _tenant_path(queryset.model)
    if path is None or request.user.is_superuser:
        return queryset
    return queryset.filter(**{f"{path}__in": user_tenants(request)})


SECRET_ONCE_SESSION_KEY = "tessera_secret_once"


def secret_once_redirect(request: HttpRequest, *, url: str, **values: Any) -> HttpResponse:
    """POST-redirect-GET for a new secret: keep ``values`` (encrypted) in the
    session for exactly one GET of ``url``, then redirect there. A reload of
    that page re-submits nothing and no longer shows the secret."""
    request.session[SECRET_ONCE_SESSION_KEY] = {
        "url": url,
        "values": encrypt(json.dumps(values)),
    }
    return HttpResponseRedirect(url)


def secret_once_take(request: HttpRequest) -> dict[str, Any] | None:
    """The values kept for this URL by :func:`secret_once_redirect`, removed
    from the session as they are read; None once they have been shown."""
    kept = request.session.pop(SECRET_ONCE_SESSION_KEY, None)
    if not kept or kept.get("url") != request.path:
        return None
    values: dict[str, Any] = json.loads(decrypt(kept["values"]))
    return values


def secret_once_response(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, template: str, **context: Any
) -> HttpResponse:
    """The GET page of :func:`secret_once_redirect`: never cached; when the
    secret was already shown, the template gets ``secret=None``."""
    response = TemplateResponse(
        request,
        template,
        {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, **context},
    )
    response["Cache-Control"] = "no-store"
    return response


class TenantScopedMixin:
    """Limits a ModelAdmin or inline to the user's tenants.

    ``tenant_path`` is the lookup from the model to its Tenant (``"tenant"``,
    ``"client__tenant"``). Inlines check membership through their parent.
    """

    tenant_path: str = "tenant"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return queryset
        # A subquery, not a join: no duplicate rows, and delete() stays allowed.
        return queryset.filter(**{f"{self.tenant_path}__in": user_tenants(request)})

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        related = db_field.remote_field.model
        if "queryset" not in kwargs and _tenant_path(related) is not None:
            kwargs["queryset"] = scope_to_tenants(request, related._default_manager.all())
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]
        if related is Tenant and field is not None:
            field.initial = self._preselected_tenant(request, field.queryset)
            if not request.user.is_superuser and field.queryset.count() == 1:
                # A member of one tenant never chooses: the field is posted
                # (and checked against the queryset) but not shown.
                field.widget = HiddenInput()
        return field

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        if getattr(db_field, "remote_field", None) and db_field.remote_field.model is Tenant:
            # No edit/view pop-ups for the tenant: it is chosen, not edited, here.
            for flag in ("can_add_related", "can_change_related", "can_view_related"):
                if hasattr(field.widget, flag):
                    setattr(field.widget, flag, False)
        return field

    def _preselected_tenant(self, request: HttpRequest, choices: QuerySet[Tenant]) -> Any:
        """The tenant an add form starts with: the user's only one, else the
        one whose page they came from (the switcher's current tenant)."""
        tenants = list(choices[:2])
        if len(tenants) == 1:  # nothing to choose
            return tenants[0].pk
        current = current_tenant(request)
        return current.pk if current is not None else None

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField | None:
        related = db_field.remote_field.model
        if "queryset" not in kwargs and _tenant_path(related) is not None:
            kwargs["queryset"] = scope_to_tenants(request, related._default_manager.all())
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponse:
        # Django redirects to the index with "doesn't exist. Perhaps it was
        # deleted?"; a guessed URL of another tenant's object is a plain 404.
        raise Http404(f"No {opts.verbose_name} matches the given query.")

    def _is_member(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        tenants = user_tenants(request)
        if obj is None:
            return tenants.exists()
        # For inlines ``obj`` is the parent; walk from whatever model we got.
        path = _tenant_path(type(obj))
        if path is None:
            return False
        return type(obj)._default_manager.filter(pk=obj.pk, **{f"{path}__in": tenants}).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_member(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_member(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_member(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_member(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_member(request, obj)


class TenantScopedAdmin(TenantScopedMixin, admin.ModelAdmin):
    """A ModelAdmin for a model with a ``tenant`` (or a path to one)."""

    # No public page exists for these objects ("View on site" was a 500 for
    # clients, whose DOT base class points at DOT's unmounted views).
    view_on_site = False

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The form checks uniqueness first; a twin saved since (a service's
        # Conflict) is said as one line on the same page, nothing saved.
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except Conflict as error:
            messages.error(request, " ".join(error.messages))
            return HttpResponseRedirect(request.get_full_path())

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        if self.tenant_path == "tenant" and user_tenants(request)[:2].count() > 1:
            filters.insert(0, "tenant")
        return filters

    def get_list_display(self, request: HttpRequest) -> Any:
        display = list(super().get_list_display(request))
        if self.tenant_path == "tenant" and user_tenants(request)[:2].count() > 1:
            display.append("tenant")
        return display


class MembershipInline(admin.TabularInline):
    model = TenantMembership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Members may see and tune their tenants; only superusers add, delete or
    change who is a member."""

    list_display = ["slug", "name", "domain", "landing_link"]
    search_fields = ["slug", "name"]
    readonly_fields = ["issuer", "created_at"]
    fields = [
        "slug",
        "name",
        "domain",
        "issuer",
        "hook_timeout_ms",
        "hook_cpu_ms",
        "hook_memory_mb",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return (
            user_tenants(request)
            if not request.user.is_superuser
            else super().get_queryset(request)
        )

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> HttpResponse:
        raise Http404("No tenant matches the given query.")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(self.readonly_fields)
        if obj is not None:
            readonly.append("slug")  # the slug is in every issued token's iss
        return readonly

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [MembershipInline] if request.user.is_superuser else []

    def has_module_permission(self, request: HttpRequest) -> bool:
        return user_tenants(request).exists() or request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if request.user.is_superuser:
            return True
        tenants = user_tenants(request)
        return tenants.filter(pk=obj.pk).exists() if obj is not None else tenants.exists()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    @admin.display(description="Dashboard")
    def landing_link(self, obj: Tenant) -> str:
        from django.urls import reverse
        from django.utils.html import format_html

        url = reverse(f"{self.admin_site.name}:tenant_landing", args=[obj.slug])
        return format_html('<a href="{}">Open</a>', url)

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        actor = Actor.for_user(request.user)
        if not change:
            created = tenant_create(slug=obj.slug, name=obj.name, domain=obj.domain, actor=actor)
            obj.pk, obj.created_at = created.pk, created.created_at
        tenant_update(
            tenant=Tenant.objects.get(pk=obj.pk),
            name=obj.name,
            domain=obj.domain or "",
            hook_timeout_ms=obj.hook_timeout_ms,
            hook_cpu_ms=obj.hook_cpu_ms,
            hook_memory_mb=obj.hook_memory_mb,
            actor=actor,
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not TenantMembership:
            super().save_formset(request, form, formset, change)
            return
        # Through the services, so each membership change has its audit row.
        actor = Actor.for_user(request.user)
        tenant = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for member_form in formset.forms:
            # The row as stored: the form has already put its choice on the instance.
            stored = TenantMembership.objects.filter(pk=member_form.instance.pk).first()
            if formset.can_delete and formset._should_delete_form(member_form):
                if stored is not None:
                    tenant_remove_member(tenant=tenant, user=stored.user, actor=actor)
                    formset.deleted_objects.append(stored)
                continue
            if not member_form.has_changed():
                continue
            user = member_form.cleaned_data["user"]
            if stored is not None and stored.user_id != user.pk:
                # Another user picked on an existing row: one leaves, one joins.
                tenant_remove_member(tenant=tenant, user=stored.user, actor=actor)
            added = tenant_add_member(tenant=tenant, user=user, actor=actor)
            if stored is None:
                formset.new_objects.append(added)
            else:
                formset.changed_objects.append((added, member_form.changed_data))

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Only superusers delete tenants, and everything in one goes with it,
        # the built-in Management API too (which cannot be deleted on its own).
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected

    def delete_model(self, request: HttpRequest, obj: Tenant) -> None:
        tenant_delete(tenant=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_delete(tenant=tenant, actor=Actor.for_user(request.user))
