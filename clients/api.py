"""Management API v2: ``clients`` (+ ``rotate-secret``) and
``client-grants``, shaped like Auth0's, writing through ``clients.services``."""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apis.selectors import api_for_audience
from clients.choices import TokenEndpointAuthMethod
from clients.models import Client, ClientGrant
from clients.selectors import client_find, client_grant_find, client_grant_list, client_list
from clients.services import (
    client_create,
    client_delete,
    client_grant_create,
    client_grant_delete,
    client_grant_set_scopes,
    client_rotate_secret,
    client_update,
)
from tenant.management_api import (
    CHECKPOINT_PARAMETERS,
    FIELD_PARAMETERS,
    LIST_PARAMETERS,
    ManagementView,
    checkpoint_paginated,
    created,
    found,
    invalid_body,
    paginated,
    select_fields,
    validated,
)
from tenant.models import Tenant

GRANT_TYPES = ["client_credentials"]


def get_client(tenant: Tenant, client_id: str) -> Client:
    return found(client_find(tenant=tenant, client_id=client_id), "client")


def get_grant(tenant: Tenant, public_id: str) -> ClientGrant:
    return found(client_grant_find(tenant=tenant, public_id=public_id), "client_grant")


class ClientOutputSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    name = serializers.CharField()
    tenant = serializers.CharField(source="tenant.slug")
    app_type = serializers.SerializerMethodField()
    is_first_party = serializers.SerializerMethodField()
    grant_types = serializers.SerializerMethodField()
    client_metadata = serializers.DictField(source="metadata", child=serializers.CharField())
    token_endpoint_auth_method = serializers.CharField()

    def get_app_type(self, client: Client) -> str:
        return "non_interactive"

    def get_is_first_party(self, client: Client) -> bool:
        return True

    def get_grant_types(self, client: Client) -> list[str]:
        return GRANT_TYPES


def render_client(client: Client, secret: str | None = None) -> dict[str, Any]:
    body = dict(ClientOutputSerializer(client).data)
    if secret:
        body["client_secret"] = secret  # in the create / rotate response only
    return body


def _check_app(data: dict[str, Any]) -> None:
    if data.get("app_type") not in (None, "non_interactive"):
        raise invalid_body("app_type must be non_interactive: Tessera issues client credentials.")
    if "grant_types" in data and list(data["grant_types"]) != GRANT_TYPES:
        raise invalid_body('grant_types must be ["client_credentials"].')


class ClientInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    app_type = serializers.CharField(required=False)
    grant_types = serializers.ListField(child=serializers.CharField(), required=False)
    client_metadata = serializers.DictField(
        child=serializers.CharField(max_length=255, allow_blank=True), required=False
    )
    token_endpoint_auth_method = serializers.ChoiceField(
        TokenEndpointAuthMethod.values, required=False
    )


class ClientListView(ManagementView):
    serializer_class = ClientOutputSerializer
    scopes = {"GET": "read:clients", "POST": "create:clients"}

    @extend_schema(parameters=LIST_PARAMETERS, responses=ClientOutputSerializer(many=True))
    def get(self, request: Request, **kwargs: Any) -> Response:
        return paginated(request, "clients", client_list(tenant=self.tenant), render_client)

    @extend_schema(request=ClientInputSerializer, responses={201: ClientOutputSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        data = validated(ClientInputSerializer, request.data)
        _check_app(data)
        client, secret = client_create(
            tenant=self.tenant,
            name=data["name"],
            metadata=data.get("client_metadata"),
            token_endpoint_auth_method=data.get(
                "token_endpoint_auth_method", TokenEndpointAuthMethod.CLIENT_SECRET_POST
            ),
            actor=self.actor,
        )
        return created(render_client(client, secret))


class ClientDetailView(ManagementView):
    serializer_class = ClientOutputSerializer
    scopes = {"GET": "read:clients", "PATCH": "update:clients", "DELETE": "delete:clients"}

    @extend_schema_serializer(component_name="ClientDetailInput")
    class InputSerializer(ClientInputSerializer):
        name = serializers.CharField(max_length=255, required=False)

    @extend_schema(parameters=FIELD_PARAMETERS)
    def get(self, request: Request, client_id: str, **kwargs: Any) -> Response:
        return Response(select_fields(request, render_client(get_client(self.tenant, client_id))))

    @extend_schema(request=InputSerializer)
    def patch(self, request: Request, client_id: str, **kwargs: Any) -> Response:
        client = get_client(self.tenant, client_id)
        data = validated(self.InputSerializer, request.data)
        _check_app(data)
        client = client_update(
            client=client,
            name=data.get("name"),
            metadata=data.get("client_metadata"),
            token_endpoint_auth_method=data.get("token_endpoint_auth_method"),
            actor=self.actor,
        )
        return Response(render_client(client))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, client_id: str, **kwargs: Any) -> Response:
        client_delete(client=get_client(self.tenant, client_id), actor=self.actor)
        return Response(status=204)


class ClientRotateSecretView(ManagementView):
    serializer_class = ClientOutputSerializer
    scopes = {"POST": "update:clients"}

    @extend_schema(request=None)
    def post(self, request: Request, client_id: str, **kwargs: Any) -> Response:
        client = get_client(self.tenant, client_id)
        secret = client_rotate_secret(client=client, actor=self.actor)
        return Response(render_client(client, secret))


class ClientGrantOutputSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    client_id = serializers.CharField(source="client.client_id")
    audience = serializers.CharField(source="api.identifier")
    scope = serializers.SerializerMethodField()

    def get_scope(self, grant: ClientGrant) -> list[str]:
        return [s.value for s in grant.scopes.order_by("id")]


def render_grant(grant: ClientGrant) -> dict[str, Any]:
    return dict(ClientGrantOutputSerializer(grant).data)


class ClientGrantListView(ManagementView):
    serializer_class = ClientGrantOutputSerializer
    scopes = {"GET": "read:client_grants", "POST": "create:client_grants"}

    @extend_schema_serializer(component_name="ClientGrantListInput")
    class InputSerializer(serializers.Serializer):
        client_id = serializers.CharField(max_length=100)
        audience = serializers.CharField(max_length=600)
        scope = serializers.ListField(child=serializers.CharField(max_length=280))

    @extend_schema(
        parameters=[
            *LIST_PARAMETERS,
            *CHECKPOINT_PARAMETERS,
            OpenApiParameter("audience", str),
            OpenApiParameter("client_id", str),
        ],
        responses=ClientGrantOutputSerializer(many=True),
    )
    def get(self, request: Request, **kwargs: Any) -> Response:
        grants = client_grant_list(
            tenant=self.tenant,
            audience=request.query_params.get("audience"),
            client_id=request.query_params.get("client_id"),
        )
        return checkpoint_paginated(
            request, "client_grants", grants.order_by("id"), render_grant, "public_id"
        ) or paginated(request, "client_grants", grants, render_grant)

    @extend_schema(request=InputSerializer, responses={201: ClientGrantOutputSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        data = validated(self.InputSerializer, request.data)
        client = get_client(self.tenant, data["client_id"])
        api = found(
            api_for_audience(tenant=self.tenant, identifier=data["audience"]), "resource_server"
        )
        grant = client_grant_create(client=client, api=api, scopes=data["scope"], actor=self.actor)
        return created(render_grant(grant))


class ClientGrantDetailView(ManagementView):
    serializer_class = ClientGrantOutputSerializer
    scopes = {
        "GET": "read:client_grants",
        "PATCH": "update:client_grants",
        "DELETE": "delete:client_grants",
    }

    @extend_schema_serializer(component_name="ClientGrantDetailInput")
    class InputSerializer(serializers.Serializer):
        scope = serializers.ListField(child=serializers.CharField(max_length=280))

    @extend_schema(parameters=FIELD_PARAMETERS)
    def get(self, request: Request, grant_id: str, **kwargs: Any) -> Response:
        return Response(select_fields(request, render_grant(get_grant(self.tenant, grant_id))))

    @extend_schema(request=InputSerializer)
    def patch(self, request: Request, grant_id: str, **kwargs: Any) -> Response:
        grant = get_grant(self.tenant, grant_id)
        data = validated(self.InputSerializer, request.data)
        grant = client_grant_set_scopes(grant=grant, scopes=data["scope"], actor=self.actor)
        return Response(render_grant(grant))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, grant_id: str, **kwargs: Any) -> Response:
        client_grant_delete(grant=get_grant(self.tenant, grant_id), actor=self.actor)
        return Response(status=204)
