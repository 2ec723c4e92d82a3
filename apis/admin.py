"""APIs with their scopes inline."""

from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse

from apis.models import Api, ApiScope
from apis.services import api_create, api_delete, api_update
from tenant.admin import (
    TenantScopedAdmin,
    TenantScopedMixin,
    secret_once_redirect,
    secret_once_response,
    secret_once_take,
)
from tenant.audit import Actor


class ApiScopeInline(TenantScopedMixin, admin.TabularInline):
    model = ApiScope
    tenant_path = "api__tenant"
    extra = 1
    fields = ["value", "description"]


@admin.register(Api)
class ApiAdmin(TenantScopedAdmin):
    list_display = ["name", "identifier", "signing_alg", "token_lifetime"]
    search_fields = ["name", "identifier"]
    list_filter = ["signing_alg"]
    fields = ["tenant", "name", "identifier", "signing_alg", "token_lifetime"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [ApiScopeInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Moving an API between tenants would strand its grants; the identifier
        # is in every token issued for it.
        if obj is None:
            return []
        if obj.is_system:
            return ["tenant", "identifier", "signing_alg"]
        return ["tenant", "identifier"]

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        # The Management API's scopes are fixed: shown on the landing page.
        return [] if obj is not None and obj.is_system else self.inlines

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_system:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Api) -> None:
        api_delete(api=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for api in queryset.exclude(is_system=True):
            api_delete(api=api, actor=Actor.for_user(request.user))

    def save_model(self, request: HttpRequest, obj: Api, form: Any, change: bool) -> None:
        secret: str | None = None
        actor = Actor.for_user(request.user)
        if not change:
            created, secret = api_create(
                tenant=obj.tenant,
                name=obj.name,
                identifier=obj.identifier,
                signing_alg=obj.signing_alg,
                token_lifetime=obj.token_lifetime,
                actor=actor,
            )
            obj.pk, obj.created_at = created.pk, created.created_at
            obj.signing_secret_encrypted = created.signing_secret_encrypted
        else:
            # The service compares with the stored row, not the form-mutated object.
            secret = api_update(
                api=Api.objects.get(pk=obj.pk),
                name=obj.name,
                token_lifetime=obj.token_lifetime,
                signing_alg=obj.signing_alg if "signing_alg" in form.changed_data else None,
                actor=actor,
            )
            obj.refresh_from_db()
        if secret:
            request._tessera_signing_secret = secret  # type: ignore[attr-defined]  # this request only

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not ApiScope:
            super().save_formset(request, form, formset, change)
            return
        # The whole scope list goes through the service, which audits the change.
        scopes = [
            (f.cleaned_data["value"], f.cleaned_data.get("description", ""))
            for f in formset.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("value")
        ]
        api_update(
            api=Api.objects.get(pk=form.instance.pk),
            scopes=scopes,
            actor=Actor.for_user(request.user),
        )
        # Read by the admin's change message; the audit row holds the detail.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/signing-secret/",
                self.admin_site.admin_view(self.secret_view),
                name="apis_api_signing_secret",
            )
        ]
        return extra + super().get_urls()

    def _secret_page(self, request: HttpRequest, obj: Api) -> HttpResponse | None:
        """POST-redirect-GET to the page that shows a new HS256 secret once."""
        secret = getattr(request, "_tessera_signing_secret", None)
        if secret is None:
            return None
        url = reverse("admin:apis_api_signing_secret", args=[obj.pk])
        return secret_once_redirect(request, url=url, secret=secret)

    def secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        api = self.get_object(request, object_id)
        if api is None or not self.has_view_permission(request, api):
            raise Http404("No such API.")
        kept = secret_once_take(request) or {}
        return secret_once_response(
            self,
            request,
            "admin/apis/api/secret.html",
            title="HS256 signing secret",
            api=api,
            secret=kept.get("secret"),
        )

    def response_add(self, request: HttpRequest, obj: Api, post_url_continue: Any = None) -> Any:
        return self._secret_page(request, obj) or super().response_add(
            request, obj, post_url_continue
        )

    def response_change(self, request: HttpRequest, obj: Api) -> Any:
        return self._secret_page(request, obj) or super().response_change(request, obj)
