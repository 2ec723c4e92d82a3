"""Management API v2: ``tenants/settings``, shaped like Auth0's for the fields
Tessera has (``friendly_name``, the tenant's name), plus Tessera's own
``tessera_egress_hosts``: the only hosts the tenant's hooks may call."""

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hooks.selectors import tenant_egress_list
from hooks.services import tenant_settings_update
from tenant.management_api import (
    FIELD_PARAMETERS,
    ManagementView,
    invalid_body,
    select_fields,
    validated,
)
from tenant.models import Tenant

EGRESS_HOSTS_HELP = (
    "Tessera: the only hosts the tenant's Hooks and Actions may call (`host`, `*.domain`, an "
    "address or network, each with an optional `:port`). Empty: the operator's policy alone. "
    "It narrows the operator's policy, never widens it."
)


class TenantSettingsOutputSerializer(serializers.Serializer):
    friendly_name = serializers.CharField(help_text="The tenant's name.")
    tessera_egress_hosts = serializers.ListField(
        child=serializers.CharField(), help_text=EGRESS_HOSTS_HELP
    )


def render_settings(tenant: Tenant) -> dict[str, Any]:
    return {
        "friendly_name": tenant.name,
        "tessera_egress_hosts": tenant_egress_list(tenant=tenant),
    }


class TenantSettingsView(ManagementView):
    serializer_class = TenantSettingsOutputSerializer
    scopes = {"GET": "read:tenant_settings", "PATCH": "update:tenant_settings"}

    @extend_schema_serializer(component_name="TenantSettingsInput")
    class InputSerializer(serializers.Serializer):
        friendly_name = serializers.CharField(
            max_length=Tenant._meta.get_field("name").max_length, required=False
        )
        tessera_egress_hosts = serializers.ListField(
            child=serializers.CharField(max_length=300, trim_whitespace=False, allow_blank=True),
            max_length=200,
            required=False,
            help_text=EGRESS_HOSTS_HELP,
        )

    @extend_schema(parameters=FIELD_PARAMETERS, responses=TenantSettingsOutputSerializer)
    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(select_fields(request, render_settings(self.tenant)))

    @extend_schema(request=InputSerializer, responses=TenantSettingsOutputSerializer)
    def patch(self, request: Request, **kwargs: Any) -> Response:
        if isinstance(request.data, dict):
            unknown = sorted(set(request.data) - set(self.InputSerializer().fields))
            if unknown:  # Auth0's words for a field it does not take
                raise invalid_body(f"Additional properties not allowed: {', '.join(unknown)}")
        data = validated(self.InputSerializer, request.data)
        tenant = tenant_settings_update(
            tenant=self.tenant,
            friendly_name=data.get("friendly_name"),
            egress_hosts=data.get("tessera_egress_hosts"),
            actor=self.actor,
        )
        return Response(render_settings(tenant))
