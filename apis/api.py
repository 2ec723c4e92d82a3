"""Management API v2: ``resource-servers``, shaped like Auth0's, writing
through ``apis.services``."""

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apis.choices import SigningAlgorithm
from apis.models import MAX_TOKEN_LIFETIME, Api
from apis.selectors import api_find, api_list
from apis.services import BuiltInApi, api_create, api_delete, api_update
from tenant.management_api import (
    FIELD_PARAMETERS,
    LIST_PARAMETERS,
    ApiError,
    ManagementView,
    created,
    found,
    paginated,
    select_fields,
    validated,
)
from tenant.models import Tenant


def get_api(tenant: Tenant, id_or_identifier: str) -> Api:
    """By API id, or (as Auth0 allows) by identifier; another tenant's is a 404."""
    return found(api_find(tenant=tenant, id_or_identifier=id_or_identifier), "resource_server")


class ScopeSerializer(serializers.Serializer):
    value = serializers.CharField(max_length=280)
    description = serializers.CharField(
        max_length=500, required=False, default="", allow_blank=True
    )


class ResourceServerOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    name = serializers.CharField()
    identifier = serializers.CharField()
    is_system = serializers.BooleanField()
    signing_alg = serializers.CharField()
    token_lifetime = serializers.IntegerField()
    scopes = serializers.SerializerMethodField()

    def get_scopes(self, api: Api) -> list[dict[str, str]]:
        return [{"value": s.value, "description": s.description} for s in api.scopes.all()]


# Auth0 lists its own Management API under this name, and Auth0's tools know
# it by the name: the Deploy CLI (8.x) leaves out of its plan only the
# resource server named so (``is_system`` alone does not spare it, and an
# import with AUTH0_ALLOW_DELETE would try to delete it).
AUTH0_MANAGEMENT_API_NAME = "Auth0 Management API"


def render_api(api: Api, signing_secret: str | None = None) -> dict[str, Any]:
    body = dict(ResourceServerOutputSerializer(api).data)
    if api.is_system:
        body["name"] = AUTH0_MANAGEMENT_API_NAME
    if signing_secret:
        body["signing_secret"] = signing_secret  # shown in this response only
    return body


def _scopes(data: dict[str, Any]) -> list[tuple[str, str]] | None:
    if "scopes" not in data:
        return None
    return [(s["value"], s.get("description", "")) for s in data["scopes"]]


class ResourceServerListView(ManagementView):
    serializer_class = ResourceServerOutputSerializer
    scopes = {"GET": "read:resource_servers", "POST": "create:resource_servers"}

    @extend_schema_serializer(component_name="ResourceServerListInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        identifier = serializers.CharField(max_length=600)
        scopes = ScopeSerializer(many=True, required=False)
        signing_alg = serializers.ChoiceField(SigningAlgorithm.values, required=False)
        token_lifetime = serializers.IntegerField(
            min_value=1, max_value=MAX_TOKEN_LIFETIME, required=False
        )

    @extend_schema(parameters=LIST_PARAMETERS, responses=ResourceServerOutputSerializer(many=True))
    def get(self, request: Request, **kwargs: Any) -> Response:
        return paginated(request, "resource_servers", api_list(tenant=self.tenant), render_api)

    @extend_schema(request=InputSerializer, responses={201: ResourceServerOutputSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        data = validated(self.InputSerializer, request.data)
        api, secret = api_create(
            tenant=self.tenant,
            name=data.get("name") or data["identifier"],
            identifier=data["identifier"],
            scopes=_scopes(data) or [],
            signing_alg=data.get("signing_alg", SigningAlgorithm.RS256),
            token_lifetime=data.get("token_lifetime", 86_400),
            actor=self.actor,
        )
        return created(render_api(api, secret))


class ResourceServerDetailView(ManagementView):
    serializer_class = ResourceServerOutputSerializer
    scopes = {
        "GET": "read:resource_servers",
        "PATCH": "update:resource_servers",
        "DELETE": "delete:resource_servers",
    }

    @extend_schema_serializer(component_name="ResourceServerDetailInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False)
        scopes = ScopeSerializer(many=True, required=False)
        signing_alg = serializers.ChoiceField(SigningAlgorithm.values, required=False)
        token_lifetime = serializers.IntegerField(
            min_value=1, max_value=MAX_TOKEN_LIFETIME, required=False
        )

    @extend_schema(parameters=FIELD_PARAMETERS)
    def get(self, request: Request, rs_id: str, **kwargs: Any) -> Response:
        return Response(select_fields(request, render_api(get_api(self.tenant, rs_id))))

    @extend_schema(request=InputSerializer)
    def patch(self, request: Request, rs_id: str, **kwargs: Any) -> Response:
        api = get_api(self.tenant, rs_id)
        data = validated(self.InputSerializer, request.data, immutable=("identifier",))
        try:
            secret = api_update(
                api=api,
                name=data.get("name"),
                token_lifetime=data.get("token_lifetime"),
                signing_alg=data.get("signing_alg"),
                scopes=_scopes(data),
                actor=self.actor,
            )
        except BuiltInApi as error:
            raise ApiError(403, " ".join(error.messages), "operation_not_supported") from None
        api.refresh_from_db()
        return Response(render_api(api, secret))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, rs_id: str, **kwargs: Any) -> Response:
        try:
            api_delete(api=get_api(self.tenant, rs_id), actor=self.actor)
        except BuiltInApi as error:
            raise ApiError(403, " ".join(error.messages), "operation_not_supported") from None
        return Response(status=204)
