"""APIs with their scopes inline."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from apis.models import Api, ApiScope
from apis.services import api_create, api_set_signing_alg
from tenant.admin import TenantScopedAdmin, TenantScopedMixin, secret_once_response


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
        # Moving an API between tenants would strand its grants.
        return ["tenant"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Api, form: Any, change: bool) -> None:
        secret: str | None = None
        if not change:
            created, secret = api_create(
                tenant=obj.tenant,
                name=obj.name,
                identifier=obj.identifier,
                signing_alg=obj.signing_alg,
                token_lifetime=obj.token_lifetime,
            )
            obj.pk, obj.created_at = created.pk, created.created_at
            obj.signing_secret_encrypted = created.signing_secret_encrypted
        elif "signing_alg" in form.changed_data:
            secret = api_set_signing_alg(api=obj, signing_alg=obj.signing_alg)
        else:
            obj.save()
        if secret:
            request._tessera_signing_secret = secret  # type: ignore[attr-defined]  # this request only

    def _secret_page(self, request: HttpRequest, obj: Api) -> HttpResponse | None:
        # Rendered, not redirected: the secret never enters a cookie or message store.
        secret = getattr(request, "_tessera_signing_secret", None)
        if secret is None:
            return None
        return secret_once_response(
            self,
            request,
            "admin/apis/api/secret.html",
            title="HS256 signing secret",
            api=obj,
            secret=secret,
        )

    def response_add(self, request: HttpRequest, obj: Api, post_url_continue: Any = None) -> Any:
        return self._secret_page(request, obj) or super().response_add(
            request, obj, post_url_continue
        )

    def response_change(self, request: HttpRequest, obj: Api) -> Any:
        return self._secret_page(request, obj) or super().response_change(request, obj)
