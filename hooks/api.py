"""Management API v2: ``hooks`` and ``hooks/{id}/secrets``, shaped like
Auth0's, writing through ``hooks.services`` like the dashboard and the CLI."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hooks.choices import TriggerId
from hooks.models import MAX_SECRETS_PER_HOOK, Hook, HookSecret
from hooks.selectors import hook_find, hook_list, hook_secret_names
from hooks.services import (
    hook_change,
    hook_create,
    hook_delete,
    hook_secrets_delete,
    hook_secrets_set,
)
from tenant.management_api import (
    FIELD_PARAMETERS,
    LIST_PARAMETERS,
    ApiError,
    ManagementView,
    created,
    found,
    invalid_body,
    paginated,
    query_bool,
    select_fields,
    validated,
)
from tenant.models import Tenant

VALUE_NOT_SHOWN = "_VALUE_NOT_SHOWN_"
# Auth0's hook name rule.
NAME_PATTERN = r"^[a-zA-Z0-9]([ \-a-zA-Z0-9]*[a-zA-Z0-9])?$"


def get_hook(tenant: Tenant, public_id: str) -> Hook:
    """The tenant's hook by API id; another tenant's is the same 404 as none."""
    return found(hook_find(tenant=tenant, public_id=public_id), "hook")


class DependenciesField(serializers.DictField):
    child = serializers.CharField(max_length=100)


class HookOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    triggerId = serializers.CharField(source="trigger_id")
    enabled = serializers.BooleanField()
    script = serializers.CharField()
    dependencies = DependenciesField()


def render_hook(hook: Hook) -> dict[str, Any]:
    return dict(HookOutputSerializer(hook).data)


class HookListView(ManagementView):
    serializer_class = HookOutputSerializer
    scopes = {"GET": "read:hooks", "POST": "create:hooks"}

    @extend_schema_serializer(component_name="HookListInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.RegexField(NAME_PATTERN, max_length=100)
        script = serializers.CharField(trim_whitespace=False, allow_blank=False)
        triggerId = serializers.ChoiceField(choices=TriggerId.values)
        enabled = serializers.BooleanField(required=False, default=False)
        dependencies = DependenciesField(required=False, default=dict)

    @extend_schema(
        parameters=[
            *LIST_PARAMETERS,
            OpenApiParameter("enabled", bool),
            OpenApiParameter("triggerId", str),
        ],
        responses=HookOutputSerializer(many=True),
    )
    def get(self, request: Request, **kwargs: Any) -> Response:
        enabled = None
        if request.query_params.get("enabled") not in (None, ""):
            enabled = query_bool(request, "enabled", True)
        hooks = hook_list(
            tenant=self.tenant,
            enabled=enabled,
            trigger_id=request.query_params.get("triggerId"),
        ).order_by("id")
        return paginated(request, "hooks", hooks, render_hook)

    @extend_schema(request=InputSerializer, responses={201: HookOutputSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        data = validated(self.InputSerializer, request.data)
        hook = hook_create(
            tenant=self.tenant,
            name=data["name"],
            script=data["script"],
            trigger_id=data["triggerId"],
            enabled=data["enabled"],
            dependencies=data["dependencies"],
            actor=self.actor,
        )
        return created(render_hook(hook))


class HookDetailView(ManagementView):
    serializer_class = HookOutputSerializer
    scopes = {"GET": "read:hooks", "PATCH": "update:hooks", "DELETE": "delete:hooks"}

    @extend_schema_serializer(component_name="HookDetailInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.RegexField(NAME_PATTERN, max_length=100, required=False)
        script = serializers.CharField(trim_whitespace=False, required=False)
        enabled = serializers.BooleanField(required=False)
        dependencies = DependenciesField(required=False)

    @extend_schema(parameters=FIELD_PARAMETERS)
    def get(self, request: Request, hook_id: str, **kwargs: Any) -> Response:
        return Response(select_fields(request, render_hook(get_hook(self.tenant, hook_id))))

    @extend_schema(request=InputSerializer)
    def patch(self, request: Request, hook_id: str, **kwargs: Any) -> Response:
        hook = get_hook(self.tenant, hook_id)
        data = validated(self.InputSerializer, request.data, immutable=("triggerId",))
        hook = hook_change(
            hook=hook,
            name=data.get("name"),
            dependencies=data.get("dependencies"),
            script=data.get("script"),
            enabled=data.get("enabled"),
            actor=self.actor,
        )
        return Response(render_hook(hook))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, hook_id: str, **kwargs: Any) -> Response:
        hook_delete(hook=get_hook(self.tenant, hook_id), actor=self.actor)
        return Response(status=204)


SECRET_NAMES = {"application/json": {"type": "array", "items": {"type": "string"}}}


class SecretsSerializer(serializers.Serializer):
    secrets = serializers.DictField(child=serializers.CharField())


def secrets_body(data: Any, *, allow_not_shown: bool) -> dict[str, str]:
    """A ``{name: value}`` body; ``_VALUE_NOT_SHOWN_`` values are left alone
    (they are what a read returned) where ``allow_not_shown``."""
    if not isinstance(data, dict) or not data:
        raise invalid_body("Expected a non-empty object of secret names to values.")
    if len(data) > MAX_SECRETS_PER_HOOK:
        raise invalid_body(f"A hook has at most {MAX_SECRETS_PER_HOOK} secrets.")
    for name, value in data.items():
        if not isinstance(value, str):
            raise invalid_body(f"Secret {name} must be a string.")
        if value == VALUE_NOT_SHOWN and not allow_not_shown:
            raise invalid_body(f"Secret {name} has no value.")
    return {name: value for name, value in data.items() if value != VALUE_NOT_SHOWN}


class HookSecretsView(ManagementView):
    # Documented as a free-form object: {name: value}, read back as _VALUE_NOT_SHOWN_.
    serializer_class = SecretsSerializer
    scopes = {
        "GET": "read:hooks",
        "POST": "create:hooks",
        "PATCH": "update:hooks",
        "DELETE": "delete:hooks",
    }

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, hook_id: str, **kwargs: Any) -> Response:
        names = hook_secret_names(hook=get_hook(self.tenant, hook_id))
        return Response({name: VALUE_NOT_SHOWN for name in names})

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: None})
    def post(self, request: Request, hook_id: str, **kwargs: Any) -> Response:
        hook = get_hook(self.tenant, hook_id)
        secrets = secrets_body(request.data, allow_not_shown=False)
        hook_secrets_set(hook=hook, secrets=secrets, must_exist=False, actor=self.actor)
        return Response(status=201)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: None})
    def patch(self, request: Request, hook_id: str, **kwargs: Any) -> Response:
        hook = get_hook(self.tenant, hook_id)
        secrets = secrets_body(request.data, allow_not_shown=True)
        if secrets:
            try:
                hook_secrets_set(hook=hook, secrets=secrets, must_exist=True, actor=self.actor)
            except HookSecret.DoesNotExist as error:
                raise ApiError(
                    404, f"Secret does not exist: {error}.", "inexistent_hook_secret"
                ) from None
        return Response(status=200)

    @extend_schema(request=SECRET_NAMES, responses={204: None})
    def delete(self, request: Request, hook_id: str, **kwargs: Any) -> Response:
        hook = get_hook(self.tenant, hook_id)
        names = request.data
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise invalid_body("Expected a non-empty array of secret names.")
        try:
            hook_secrets_delete(hook=hook, names=names, actor=self.actor)
        except HookSecret.DoesNotExist as error:
            raise ApiError(
                404, f"Secret does not exist: {error}.", "inexistent_hook_secret"
            ) from None
        return Response(status=204)
