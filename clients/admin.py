"""Clients (secret shown once, rotate action) and client grants."""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_id_token_model,
    get_refresh_token_model,
)

from apis.models import ApiScope
from clients.models import Client, ClientGrant
from clients.services import (
    client_create,
    client_grant_create,
    client_grant_set_scopes,
    client_rotate_secret,
)
from tenant.admin import (
    TenantScopedAdmin,
    TenantScopedMixin,
    scope_to_tenants,
    secret_once_response,
)

# django-oauth-toolkit registers its own, unscoped admin for the application
# and token models; the dashboard shows clients through ClientAdmin only, and
# Tessera issues self-contained JWTs, so DOT's token tables are not shown.
for _model in (
    Client,
    get_access_token_model(),
    get_grant_model(),
    get_id_token_model(),
    get_refresh_token_model(),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


class ClientForm(forms.ModelForm):
    class Meta:
        model = Client
        fields = ["tenant", "name", "token_endpoint_auth_method", "metadata"]


class ClientGrantInline(TenantScopedMixin, admin.TabularInline):
    """Read-only summary; grants are edited on their own page (scope checkboxes)."""

    model = ClientGrant
    tenant_path = "client__tenant"
    extra = 0
    fields = ["grant_link", "scope_list"]
    readonly_fields = ["grant_link", "scope_list"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="API")
    def grant_link(self, grant: ClientGrant) -> str:
        url = reverse("admin:clients_clientgrant_change", args=[grant.pk])
        return format_html('<a href="{}">{}</a>', url, grant.api)

    @admin.display(description="Scopes")
    def scope_list(self, grant: ClientGrant) -> str:
        return " ".join(s.value for s in grant.scopes.all()) or "—"


@admin.register(Client)
class ClientAdmin(TenantScopedAdmin):
    form = ClientForm
    list_display = ["name", "client_id", "token_endpoint_auth_method", "updated"]
    search_fields = ["name", "client_id"]
    list_filter = ["token_endpoint_auth_method"]
    inlines = [ClientGrantInline]
    actions = ["rotate_secret"]
    change_form_template = "admin/clients/client/change_form.html"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["tenant", "name", "token_endpoint_auth_method", "metadata"]
        return ["client_id", *fields] if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["client_id", "tenant"] if obj is not None else []

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/rotate-secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name="clients_client_rotate_secret",
            )
        ]
        return extra + super().get_urls()

    def save_model(self, request: HttpRequest, obj: Client, form: Any, change: bool) -> None:
        if change:
            obj.save()
            return
        created, secret = client_create(
            tenant=obj.tenant,
            name=obj.name,
            metadata=obj.metadata,
            token_endpoint_auth_method=obj.token_endpoint_auth_method,
        )
        obj.pk, obj.client_id = created.pk, created.client_id
        request._tessera_new_secret = secret  # type: ignore[attr-defined]  # per request, not per admin

    def _show_secret(
        self, request: HttpRequest, client: Client, secret: str, created: bool
    ) -> HttpResponse:
        return secret_once_response(
            self,
            request,
            "admin/clients/client/secret.html",
            title="Client secret",
            client=client,
            secret=secret,
            created=created,
        )

    def response_add(self, request: HttpRequest, obj: Client, post_url_continue: Any = None) -> Any:
        secret = getattr(request, "_tessera_new_secret", None)
        if secret is not None:
            return self._show_secret(request, obj, secret, created=True)
        return super().response_add(request, obj, post_url_continue)

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        client = self.get_object(request, object_id)
        if client is None or not self.has_change_permission(request, client):
            raise Http404("No such client.")
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "title": "Rotate secret",
                "client": client,
                "opts": self.opts,
            }
            return TemplateResponse(request, "admin/clients/client/rotate_confirm.html", context)
        secret = client_rotate_secret(client=client)
        self.log_change(request, client, "Rotated the client secret.")
        return self._show_secret(request, client, secret, created=False)

    @admin.action(description="Rotate secret of the selected client")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Client]) -> Any:
        if queryset.count() != 1:
            self.message_user(request, "Rotate one client at a time.", messages.ERROR)
            return None
        client = queryset.get()
        secret = client_rotate_secret(client=client)
        self.log_change(request, client, "Rotated the client secret.")
        return self._show_secret(request, client, secret, created=False)


class ScopeCheckboxes(forms.CheckboxSelectMultiple):
    """Each checkbox carries its API's id so the page can show only the
    chosen API's scopes."""

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        value = option["value"]
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-api"] = str(instance.api_id)
        return option


class ClientGrantForm(forms.ModelForm):
    scopes = forms.ModelMultipleChoiceField(
        queryset=ApiScope.objects.none(), required=False, widget=ScopeCheckboxes
    )

    class Meta:
        model = ClientGrant
        fields = ["client", "api", "scopes"]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        api, scopes = data.get("api"), data.get("scopes")
        if api is not None and scopes is not None:
            foreign = [s.value for s in scopes if s.api_id != api.pk]
            if foreign:
                raise ValidationError(
                    {"scopes": f"Not scopes of {api.name}: {', '.join(foreign)}."}
                )
        return data


@admin.register(ClientGrant)
class ClientGrantAdmin(TenantScopedAdmin):
    form = ClientGrantForm
    tenant_path = "client__tenant"
    list_display = ["client", "api", "scope_list", "created_at"]
    search_fields = ["client__name", "client__client_id", "api__name", "api__identifier"]
    list_select_related = ["client", "api"]
    autocomplete_fields = ["client"]

    class Media:
        js = ["tessera/client_grant.js"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["client", "api"] if obj is not None else []

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        scopes = ApiScope.objects.select_related("api")
        if obj is not None:
            scopes = scopes.filter(api=obj.api)
        field = cast(forms.ModelMultipleChoiceField, form.base_fields["scopes"])
        field.queryset = scope_to_tenants(request, scopes)
        field.label_from_instance = lambda s: (  # type: ignore[method-assign,assignment]
            f"{s.value} — {s.description}" if s.description else s.value
        )
        return form

    @admin.display(description="Scopes")
    def scope_list(self, grant: ClientGrant) -> str:
        return " ".join(s.value for s in grant.scopes.all()) or "—"

    def save_model(self, request: HttpRequest, obj: ClientGrant, form: Any, change: bool) -> None:
        values = [s.value for s in form.cleaned_data.get("scopes", [])]
        if change:
            client_grant_set_scopes(grant=obj, scopes=values)
        else:
            created = client_grant_create(client=obj.client, api=obj.api, scopes=values)
            obj.pk, obj.created_at = created.pk, created.created_at

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Scopes were set by the service in save_model.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
