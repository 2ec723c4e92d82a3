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

from apis.models import Api, ApiScope
from clients.models import Client, ClientGrant
from clients.services import (
    client_create,
    client_delete,
    client_grant_create,
    client_grant_delete,
    client_grant_set_scopes,
    client_rotate_secret,
    client_update,
)
from tenant.admin import (
    TenantScopedAdmin,
    TenantScopedMixin,
    scope_to_tenants,
    secret_once_redirect,
    secret_once_response,
    secret_once_take,
)
from tenant.audit import Actor
from tenant.templatetags.tessera import copy_button, when

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
    """Grants edited on the client's page: an API of the client's tenant and
    a checkbox per scope (only the chosen API's are shown)."""

    model = ClientGrant
    tenant_path = "client__tenant"
    extra = 0
    fields = ["api", "scopes"]
    verbose_name = "grant"
    verbose_name_plural = "grants (APIs this client may get tokens for)"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs["form"] = ClientGrantInlineForm
        formset = super().get_formset(request, obj, **kwargs)
        form = formset.form
        apis = cast(forms.ModelChoiceField, form.base_fields["api"])
        scopes = cast(forms.ModelMultipleChoiceField, form.base_fields["scopes"])
        if obj is not None:  # only the client's own tenant
            apis.queryset = Api.objects.filter(tenant=obj.tenant)
            scopes.queryset = ApiScope.objects.filter(api__tenant=obj.tenant).select_related("api")
        scopes.label_from_instance = scope_label  # type: ignore[method-assign,assignment]
        # No pencil/plus/eye pop-ups beside the API: APIs are edited on their page.
        for flag in ("can_add_related", "can_change_related", "can_view_related"):
            setattr(apis.widget, flag, False)
        return formset

    def get_queryset(self, request: HttpRequest) -> QuerySet[ClientGrant]:
        return super().get_queryset(request).select_related("api").prefetch_related("scopes")


@admin.register(Client)
class ClientAdmin(TenantScopedAdmin):
    form = ClientForm
    list_display = ["name", "client_id_copy", "token_endpoint_auth_method", "updated_when"]
    search_fields = ["name", "client_id"]
    list_filter = ["token_endpoint_auth_method"]
    inlines = [ClientGrantInline]
    actions = ["rotate_secret"]
    change_form_template = "admin/clients/client/change_form.html"

    class Media:
        js = ["tessera/client_grant.js"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["tenant", "name", "token_endpoint_auth_method", "metadata"]
        return ["client_id_copy", *fields] if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["client_id_copy", "tenant"] if obj is not None else []

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        # Grants need the client's tenant to offer its APIs: added once it exists.
        return self.inlines if obj is not None else []

    @admin.display(description="Updated", ordering="updated")
    def updated_when(self, client: Client) -> str:
        return when(client.updated)

    @admin.display(description="Client ID")
    def client_id_copy(self, client: Client) -> str:
        return format_html("<code>{}</code>{}", client.client_id, copy_button(client.client_id))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not ClientGrant:
            super().save_formset(request, form, formset, change)
            return
        actor = Actor.for_user(request.user)
        # What BaseModelFormSet.save() records, for the admin's change message.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for grant_form in formset.forms:
            grant = grant_form.instance
            if formset.can_delete and formset._should_delete_form(grant_form):
                if grant.pk is not None:
                    client_grant_delete(grant=grant, actor=actor)
                    formset.deleted_objects.append(grant)
                continue
            if not grant_form.has_changed():
                continue
            values = [s.value for s in grant_form.cleaned_data.get("scopes", [])]
            if grant.pk is not None:
                client_grant_set_scopes(grant=grant, scopes=values, actor=actor)
                formset.changed_objects.append((grant, grant_form.changed_data))
            else:
                created = client_grant_create(
                    client=form.instance,
                    api=grant_form.cleaned_data["api"],
                    scopes=values,
                    actor=actor,
                )
                formset.new_objects.append(created)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/rotate-secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name="clients_client_rotate_secret",
            ),
            path(
                "<path:object_id>/secret/",
                self.admin_site.admin_view(self.secret_view),
                name="clients_client_secret",
            ),
        ]
        return extra + super().get_urls()

    def save_model(self, request: HttpRequest, obj: Client, form: Any, change: bool) -> None:
        actor = Actor.for_user(request.user)
        if change:
            client_update(
                client=Client.objects.get(pk=obj.pk),
                name=obj.name,
                metadata=obj.metadata,
                token_endpoint_auth_method=obj.token_endpoint_auth_method,
                actor=actor,
            )
            return
        created, secret = client_create(
            tenant=obj.tenant,
            name=obj.name,
            metadata=obj.metadata,
            token_endpoint_auth_method=obj.token_endpoint_auth_method,
            actor=actor,
        )
        obj.pk, obj.client_id = created.pk, created.client_id
        request._tessera_new_secret = secret  # type: ignore[attr-defined]  # per request, not per admin

    def delete_model(self, request: HttpRequest, obj: Client) -> None:
        client_delete(client=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Client]) -> None:
        for client in queryset:
            client_delete(client=client, actor=Actor.for_user(request.user))

    def _show_secret(
        self, request: HttpRequest, client: Client, secret: str, created: bool
    ) -> HttpResponse:
        """Redirect to the page that shows ``secret`` once (POST-redirect-GET)."""
        url = reverse("admin:clients_client_secret", args=[client.pk])
        return secret_once_redirect(request, url=url, secret=secret, created=created)

    def secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        client = self.get_object(request, object_id)
        if client is None or not self.has_view_permission(request, client):
            raise Http404("No such client.")
        kept = secret_once_take(request) or {}
        return secret_once_response(
            self,
            request,
            "admin/clients/client/secret.html",
            title="Client secret",
            client=client,
            secret=kept.get("secret"),
            created=kept.get("created", False),
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
        secret = client_rotate_secret(client=client, actor=Actor.for_user(request.user))
        self.log_change(request, client, "Rotated the client secret.")
        return self._show_secret(request, client, secret, created=False)

    @admin.action(description="Rotate secret of the selected client")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Client]) -> Any:
        if queryset.count() != 1:
            self.message_user(request, "Rotate one client at a time.", messages.ERROR)
            return None
        client = queryset.get()
        secret = client_rotate_secret(client=client, actor=Actor.for_user(request.user))
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


def scope_label(scope: ApiScope) -> str:
    return f"{scope.value} — {scope.description}" if scope.description else scope.value


class ClientGrantForm(forms.ModelForm):
    scopes = forms.ModelMultipleChoiceField(
        queryset=ApiScope.objects.none(), required=False, widget=ScopeCheckboxes
    )

    class Meta:
        model = ClientGrant
        fields = ["client", "api", "scopes"]
        labels = {"api": "API"}

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


class ClientGrantInlineForm(ClientGrantForm):
    """A grant row on the client's page; an existing grant keeps its API."""

    class Meta(ClientGrantForm.Meta):
        fields = ["api", "scopes"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["api"].disabled = True


@admin.register(ClientGrant)
class ClientGrantAdmin(TenantScopedAdmin):
    form = ClientGrantForm
    tenant_path = "client__tenant"
    list_display = ["client", "api_name", "scope_list", "created"]
    search_fields = ["client__name", "client__client_id", "api__name", "api__identifier"]
    list_select_related = ["client", "api"]
    autocomplete_fields = ["client"]

    class Media:
        js = ["tessera/client_grant.js"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # api_name: the model field's label would read "Api".
        return ["client", "api_name", "scopes"] if obj is not None else ["client", "api", "scopes"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["client", "api_name"] if obj is not None else []

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        scopes = ApiScope.objects.select_related("api")
        if obj is not None:
            scopes = scopes.filter(api=obj.api)
        field = cast(forms.ModelMultipleChoiceField, form.base_fields["scopes"])
        field.queryset = scope_to_tenants(request, scopes)
        field.label_from_instance = scope_label  # type: ignore[method-assign,assignment]
        return form

    @admin.display(description="Scopes")
    def scope_list(self, grant: ClientGrant) -> str:
        return " ".join(s.value for s in grant.scopes.all()) or "—"

    @admin.display(description="API", ordering="api__name")
    def api_name(self, grant: ClientGrant) -> str:
        return str(grant.api)

    @admin.display(description="Created", ordering="created_at")
    def created(self, grant: ClientGrant) -> str:
        return when(grant.created_at)

    def save_model(self, request: HttpRequest, obj: ClientGrant, form: Any, change: bool) -> None:
        values = [s.value for s in form.cleaned_data.get("scopes", [])]
        actor = Actor.for_user(request.user)
        if change:
            client_grant_set_scopes(grant=obj, scopes=values, actor=actor)
        else:
            created = client_grant_create(
                client=obj.client, api=obj.api, scopes=values, actor=actor
            )
            obj.pk, obj.created_at = created.pk, created.created_at

    def delete_model(self, request: HttpRequest, obj: ClientGrant) -> None:
        client_grant_delete(grant=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ClientGrant]) -> None:
        for grant in queryset.select_related("client__tenant", "api"):
            client_grant_delete(grant=grant, actor=Actor.for_user(request.user))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Scopes were set by the service in save_model.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
