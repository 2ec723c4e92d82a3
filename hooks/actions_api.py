"""Management API v2: ``actions/*``, shaped like Auth0's (field names from
its Management API reference and the go-auth0 and auth0-python sources),
writing through ``hooks.action_services``.

Lists take ``page`` (from 0) and ``per_page`` (at most 100) and answer
``{<items>, total, page, per_page}``, as Auth0 does for Actions.
"""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from hooks.action_services import (
    ActionNameTaken,
    ActionNotBuilt,
    ActionStillBound,
    BindingRefused,
    BindingSpec,
    SecretSpec,
    action_create,
    action_delete,
    action_deploy,
    action_rollback,
    action_update,
    all_changes_deployed,
    bindings_replace,
)
from hooks.choices import ActionRuntime, ActionStatus, RunSource, TriggerId
from hooks.dependencies import packages_for
from hooks.execution import execute
from hooks.models import (
    CREDENTIALS_EXCHANGE_VERSION,
    MAX_BINDINGS_PER_TRIGGER,
    MAX_DEPENDENCIES_PER_ACTION,
    MAX_SECRET_NAME_CHARS,
    MAX_SECRET_VALUE_CHARS,
    MAX_SECRETS_PER_ACTION,
    Action,
    ActionVersion,
    TriggerBinding,
)
from hooks.points import POINTS
from hooks.selectors import (
    action_cache,
    action_execution,
    action_find,
    action_list,
    action_version_find,
    trigger_binding_find,
    trigger_bindings,
)
from tenant.crypto import decrypt
from tenant.management_api import (
    MAX_PER_PAGE,
    ApiError,
    ManagementView,
    conflict,
    created,
    found,
    invalid_body,
    not_found,
    page_query,
    query_bool,
    validated,
)
from tenant.models import Tenant

PAGE_PARAMETERS = [
    OpenApiParameter("page", int, description="Page index, from 0."),
    OpenApiParameter("per_page", int, description=f"Items per page, at most {MAX_PER_PAGE}."),
]


def _time(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _page(request: Request, key: str, items: list[Any] | QuerySet[Any], render: Any) -> Response:
    page, per_page = page_query(request)
    total = items.count() if isinstance(items, QuerySet) else len(items)
    rows = [render(item) for item in items[page * per_page : (page + 1) * per_page]]
    return Response({key: rows, "total": total, "page": page, "per_page": per_page})


def get_action(tenant: Tenant, action_id: str) -> Action:
    """The tenant's Action by id; another tenant's is the same 404 as none."""
    return found(action_find(tenant=tenant, public_id=action_id), "action")


def get_version(action: Action, version_id: str) -> ActionVersion:
    return found(action_version_find(action=action, public_id=version_id), "action_version")


def _triggers(action: Action) -> list[dict[str, str]]:
    return [{"id": action.trigger_id, "version": action.trigger_version}]


def _secret_names(rows: Any) -> list[dict[str, Any]]:
    return [{"name": row.name, "updated_at": _time(row.updated_at)} for row in rows]


def render_version(version: ActionVersion, action: Action | None = None) -> dict[str, Any]:
    action = action or version.action
    return {
        "id": version.public_id,
        "action_id": action.public_id,
        "code": version.code,
        "dependencies": version.dependencies,
        "deployed": version.deployed,
        "runtime": version.runtime,
        "secrets": [
            {"name": name, "updated_at": _time(version.created_at)}
            for name in sorted(version.secrets_encrypted)
        ],
        "status": "built",
        "number": version.number,
        "errors": [],
        "action": {
            "id": action.public_id,
            "name": action.name,
            "supported_triggers": _triggers(action),
            "created_at": _time(action.created_at),
            "updated_at": _time(action.updated_at),
        },
        "built_at": _time(version.created_at),
        "created_at": _time(version.created_at),
        "updated_at": _time(version.created_at),
        "supported_triggers": _triggers(action),
    }


def render_action(action: Action) -> dict[str, Any]:
    deployed = action.versions.filter(deployed=True).first()
    body: dict[str, Any] = {
        "id": action.public_id,
        "name": action.name,
        "supported_triggers": _triggers(action),
        "all_changes_deployed": all_changes_deployed(action=action, deployed=deployed),
        "created_at": _time(action.created_at),
        "updated_at": _time(action.updated_at),
        "code": action.code,
        "dependencies": action.dependencies,
        "runtime": action.runtime,
        "secrets": _secret_names(action.secrets.all()),
        "status": action.status,
        "built_at": _time(action.built_at),
        "deploy": False,
    }
    if action.build_errors:
        body["errors"] = action.build_errors
    if deployed is not None:
        body["deployed_version"] = render_version(deployed, action)
    return body


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF would turn 1 into "1"; Auth0 refuses it)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class TriggerSerializer(serializers.Serializer):
    id = serializers.ChoiceField(choices=TriggerId.values)
    version = serializers.CharField(max_length=8, required=False)
    url = serializers.CharField(required=False, allow_blank=True)


class DependencySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=214)
    version = serializers.CharField(max_length=100, required=False, default="latest")
    registry_url = serializers.CharField(max_length=500, required=False)


class SecretSerializer(serializers.Serializer):
    name = serializers.RegexField(rf"^[A-Za-z0-9_.-]{{1,{MAX_SECRET_NAME_CHARS}}}$")
    value = StrictCharField(max_length=MAX_SECRET_VALUE_CHARS, required=False, allow_blank=True)
    updated_at = serializers.CharField(required=False)


def _secret_specs(data: list[dict[str, Any]]) -> list[SecretSpec]:
    return [SecretSpec(item["name"], item.get("value")) for item in data]


def _trigger_of(data: dict[str, Any]) -> tuple[str, str]:
    triggers = data["supported_triggers"]
    if len(triggers) != 1:
        raise invalid_body("An action supports exactly one trigger.")
    version = triggers[0].get("version") or CREDENTIALS_EXCHANGE_VERSION
    if version != CREDENTIALS_EXCHANGE_VERSION:
        raise invalid_body(
            f"Trigger {triggers[0]['id']} version {version} is not supported "
            f"(use {CREDENTIALS_EXCHANGE_VERSION})."
        )
    return triggers[0]["id"], version


def _written(call: Any) -> Action:
    """Run a service write; its typed refusals become Auth0's errors."""
    try:
        return call()  # type: ignore[no-any-return]
    except ActionNameTaken as error:
        raise conflict(" ".join(error.messages), "action_conflict") from None


class ActionOutputSerializer(serializers.Serializer):
    """Documents an Action (the body is built by ``render_action``)."""

    id = serializers.CharField()
    name = serializers.CharField()
    supported_triggers = TriggerSerializer(many=True)
    all_changes_deployed = serializers.BooleanField()
    code = serializers.CharField()
    dependencies = DependencySerializer(many=True)
    runtime = serializers.CharField()
    secrets = serializers.ListField(child=serializers.DictField())
    status = serializers.CharField()
    deployed_version = serializers.DictField(required=False)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ActionListView(ManagementView):
    serializer_class = ActionOutputSerializer
    scopes = {"GET": "read:actions", "POST": "create:actions"}

    @extend_schema_serializer(component_name="ActionCreateInput")
    class InputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=100)
        supported_triggers = TriggerSerializer(many=True)
        code = StrictCharField(trim_whitespace=False, allow_blank=True)
        runtime = serializers.ChoiceField(
            choices=ActionRuntime.values, required=False, default=ActionRuntime.NODE22
        )
        dependencies = serializers.ListField(
            child=DependencySerializer(),
            required=False,
            default=list,
            max_length=MAX_DEPENDENCIES_PER_ACTION,
        )
        secrets = serializers.ListField(
            child=SecretSerializer(),
            required=False,
            default=list,
            max_length=MAX_SECRETS_PER_ACTION,
        )
        deploy = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        parameters=[
            *PAGE_PARAMETERS,
            OpenApiParameter("triggerId", str),
            OpenApiParameter("actionName", str),
            OpenApiParameter("deployed", bool),
            OpenApiParameter("installed", bool),
        ],
        responses=ActionOutputSerializer(many=True),
    )
    def get(self, request: Request, **kwargs: Any) -> Response:
        params = request.query_params
        actions = action_list(
            tenant=self.tenant,
            trigger_id=params.get("triggerId"),
            name=params.get("actionName"),
            deployed=None
            if params.get("deployed") in (None, "")
            else query_bool(request, "deployed", True),
        )
        if query_bool(request, "installed", False):
            actions = actions.none()  # no marketplace integrations here
        return _page(request, "actions", actions, render_action)

    @extend_schema(request=InputSerializer, responses={201: ActionOutputSerializer})
    def post(self, request: Request, **kwargs: Any) -> Response:
        data = validated(self.InputSerializer, request.data)
        trigger_id, trigger_version = _trigger_of(data)
        action = _written(
            lambda: action_create(
                tenant=self.tenant,
                name=data["name"],
                code=data["code"],
                trigger_id=trigger_id,
                trigger_version=trigger_version,
                runtime=data["runtime"],
                dependencies=data["dependencies"],
                secrets=_secret_specs(data["secrets"]),
                actor=self.actor,
            )
        )
        if data["deploy"] and action.status == ActionStatus.BUILT:
            _deploy(action, self)
        return created(render_action(action))


class ActionDetailView(ManagementView):
    serializer_class = ActionOutputSerializer
    scopes = {"GET": "read:actions", "PATCH": "update:actions", "DELETE": "delete:actions"}

    @extend_schema_serializer(component_name="ActionUpdateInput")
    class InputSerializer(serializers.Serializer):
        name = StrictCharField(max_length=100, required=False)
        supported_triggers = TriggerSerializer(many=True, required=False)
        code = StrictCharField(trim_whitespace=False, allow_blank=True, required=False)
        runtime = serializers.ChoiceField(choices=ActionRuntime.values, required=False)
        dependencies = serializers.ListField(
            child=DependencySerializer(), required=False, max_length=MAX_DEPENDENCIES_PER_ACTION
        )
        secrets = serializers.ListField(
            child=SecretSerializer(), required=False, max_length=MAX_SECRETS_PER_ACTION
        )

    def get(self, request: Request, action_id: str, **kwargs: Any) -> Response:
        return Response(render_action(get_action(self.tenant, action_id)))

    @extend_schema(request=InputSerializer)
    def patch(self, request: Request, action_id: str, **kwargs: Any) -> Response:
        action = get_action(self.tenant, action_id)
        data = validated(self.InputSerializer, request.data)
        if "supported_triggers" in data and _trigger_of(data) != (
            action.trigger_id,
            action.trigger_version,
        ):
            raise invalid_body("An action's trigger cannot be changed.")
        action = _written(
            lambda: action_update(
                action=action,
                actor=self.actor,
                name=data.get("name"),
                code=data.get("code"),
                runtime=data.get("runtime"),
                dependencies=data.get("dependencies"),
                secrets=_secret_specs(data["secrets"]) if "secrets" in data else None,
            )
        )
        return Response(render_action(action))

    @extend_schema(parameters=[OpenApiParameter("force", bool)], responses={204: None})
    def delete(self, request: Request, action_id: str, **kwargs: Any) -> Response:
        action = get_action(self.tenant, action_id)
        try:
            action_delete(
                action=action, actor=self.actor, force=query_bool(request, "force", False)
            )
        except ActionStillBound as error:
            raise conflict(" ".join(error.messages), "action_bound") from None
        return Response(status=204)


def _deploy(action: Action, view: ManagementView) -> ActionVersion:
    try:
        return action_deploy(action=action, actor=view.actor)
    except ActionNotBuilt as error:
        raise ApiError(400, " ".join(error.messages), "action_not_built") from None


class VersionOutputSerializer(serializers.Serializer):
    """Documents an Action version (the body is built by ``render_version``)."""

    id = serializers.CharField()
    action_id = serializers.CharField()
    code = serializers.CharField()
    dependencies = DependencySerializer(many=True)
    deployed = serializers.BooleanField()
    runtime = serializers.CharField()
    status = serializers.CharField()
    number = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class ActionDeployView(ManagementView):
    serializer_class = VersionOutputSerializer
    scopes = {"POST": "create:actions"}

    @extend_schema(request=None, responses=VersionOutputSerializer)
    def post(self, request: Request, action_id: str, **kwargs: Any) -> Response:
        action = get_action(self.tenant, action_id)
        return Response(render_version(_deploy(action, self), action))


class ActionVersionListView(ManagementView):
    serializer_class = VersionOutputSerializer
    scopes = {"GET": "read:actions"}

    @extend_schema(parameters=PAGE_PARAMETERS, responses=VersionOutputSerializer(many=True))
    def get(self, request: Request, action_id: str, **kwargs: Any) -> Response:
        action = get_action(self.tenant, action_id)
        versions = action.versions.order_by("-number")
        return _page(request, "versions", versions, lambda v: render_version(v, action))


class ActionVersionDetailView(ManagementView):
    serializer_class = VersionOutputSerializer
    scopes = {"GET": "read:actions"}

    def get(self, request: Request, action_id: str, version_id: str, **kwargs: Any) -> Response:
        action = get_action(self.tenant, action_id)
        return Response(render_version(get_version(action, version_id), action))


class ActionVersionDeployView(ManagementView):
    serializer_class = VersionOutputSerializer
    scopes = {"POST": "create:actions"}

    @extend_schema(request=OpenApiTypes.OBJECT, responses=VersionOutputSerializer)
    def post(self, request: Request, action_id: str, version_id: str, **kwargs: Any) -> Response:
        action = get_action(self.tenant, action_id)
        version = get_version(action, version_id)
        new = action_rollback(action=action, version=version, actor=self.actor)
        return Response(render_version(new, action))


class ActionTestView(ManagementView):
    """Run the draft (saved code, draft secrets) in the production sandbox
    on ``payload`` as the event; nothing it writes is kept."""

    serializer_class = serializers.Serializer
    scopes = {"POST": "create:actions"}

    class InputSerializer(serializers.Serializer):
        payload = serializers.DictField()

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, action_id: str, **kwargs: Any) -> Response:
        action = get_action(self.tenant, action_id)
        data = validated(self.InputSerializer, request.data)
        event = {**POINTS[action.trigger_id].action_sample_payload["event"], **data["payload"]}
        execution = execute(
            tenant=self.tenant,
            trigger_id=action.trigger_id,
            source=RunSource.TEST,
            script=action.code,
            payload={"event": event},
            secrets={s.name: decrypt(s.value_encrypted) for s in action.secrets.all()},
            storage=None,
            cache=action_cache(hook_id=f"action:{action.public_id}"),
            packages=packages_for(action.dependency_lock),
        )
        result: dict[str, Any] = {
            "logs": execution.console,
            "stats": {"total_request_duration_ms": round(execution.duration_ms, 3)},
        }
        if execution.ok:
            result["accessToken"] = {
                "scope": execution.claims.scope,
                "customClaims": execution.claims.claims,
            }
            if execution.claims.dropped:
                result["dropped"] = [
                    {"name": d.name, "reason": d.reason} for d in execution.claims.dropped
                ]
        elif execution.error is not None:
            result["error"] = {
                "name": execution.error.name,
                "message": execution.error.message,
                "line": execution.error.line,
                "column": execution.error.column,
            }
        else:
            result["error"] = {"name": "InvalidResult", "message": execution.invalid_result}
        return Response({"payload": result})


class TriggerListView(ManagementView):
    serializer_class = serializers.Serializer
    scopes = {"GET": "read:actions"}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(
            {
                "triggers": [
                    {
                        "id": trigger_id,
                        "version": CREDENTIALS_EXCHANGE_VERSION,
                        "status": "CURRENT",
                        "runtimes": list(ActionRuntime.values),
                        "default_runtime": ActionRuntime.NODE22,
                        "compatible_triggers": [],
                        "binding_policy": "trigger-bound",
                    }
                    for trigger_id in TriggerId.values
                ]
            }
        )


def render_binding(binding: TriggerBinding) -> dict[str, Any]:
    action = binding.action
    return {
        "id": binding.public_id,
        "trigger_id": binding.trigger_id,
        "display_name": binding.display_name or action.name,
        "action": render_action(action),
        "created_at": _time(binding.created_at),
        "updated_at": _time(binding.updated_at),
    }


class BindingRefSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["action_id", "action_name", "binding_id"])
    value = serializers.CharField(max_length=255)


class BindingInputSerializer(serializers.Serializer):
    ref = BindingRefSerializer()
    display_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    secrets = serializers.ListField(child=serializers.DictField(), required=False)


def _known_trigger(trigger_id: str) -> str:
    if trigger_id not in TriggerId.values:
        raise not_found("trigger")
    return trigger_id


class TriggerBindingsView(ManagementView):
    serializer_class = serializers.Serializer
    scopes = {"GET": "read:actions", "PATCH": "update:actions"}

    class InputSerializer(serializers.Serializer):
        # Longer lists are refused with Auth0's limit, not the list's length.
        bindings = serializers.ListField(child=BindingInputSerializer(), max_length=100)

    @extend_schema(parameters=PAGE_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, trigger_id: str, **kwargs: Any) -> Response:
        bindings = trigger_bindings(tenant=self.tenant, trigger_id=_known_trigger(trigger_id))
        return _page(request, "bindings", bindings, render_binding)

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def patch(self, request: Request, trigger_id: str, **kwargs: Any) -> Response:
        _known_trigger(trigger_id)
        data = validated(self.InputSerializer, request.data)
        if len(data["bindings"]) > MAX_BINDINGS_PER_TRIGGER:
            raise invalid_body(f"A trigger has at most {MAX_BINDINGS_PER_TRIGGER} bound actions.")
        specs = [self._spec(item, trigger_id) for item in data["bindings"]]
        try:
            saved = bindings_replace(
                tenant=self.tenant, trigger_id=trigger_id, bindings=specs, actor=self.actor
            )
        except BindingRefused as error:
            raise invalid_body(" ".join(error.messages)) from None
        return Response({"bindings": [render_binding(binding) for binding in saved]})

    def _spec(self, item: dict[str, Any], trigger_id: str) -> BindingSpec:
        """The Action a binding names (by id, name or existing binding id),
        looked up in this tenant only."""
        kind, value = item["ref"]["type"], item["ref"]["value"]
        if kind == "action_id":
            action = action_find(tenant=self.tenant, public_id=value)
        elif kind == "action_name":
            action = action_find(tenant=self.tenant, name=value)
        else:
            binding = trigger_binding_find(
                tenant=self.tenant, trigger_id=trigger_id, public_id=value
            )
            action = binding.action if binding is not None else None
        if action is None:
            raise ApiError(404, f"Action not found: {value}.", "inexistent_action")
        return BindingSpec(action, item.get("display_name") or action.name)


class ExecutionView(ManagementView):
    serializer_class = serializers.Serializer
    scopes = {"GET": "read:actions"}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, execution_id: str, **kwargs: Any) -> Response:
        run = found(action_execution(tenant=self.tenant, execution_id=execution_id), "execution")
        created_at = _time(run.started_at)
        return Response(
            {
                "id": run.execution_id,
                "trigger_id": TriggerId.CREDENTIALS_EXCHANGE,
                "status": "final" if run.outcome == "ok" else "partial",
                "results": [
                    {
                        "action_name": result.get("action_name"),
                        "error": result.get("error") or {},
                        "started_at": result.get("started_at"),
                        "ended_at": result.get("ended_at"),
                    }
                    for result in run.results or []
                ],
                "created_at": created_at,
                "updated_at": created_at,
            }
        )


class ModuleListView(ManagementView):
    """Auth0's shared Action modules: none here (the Deploy CLI reads them)."""

    serializer_class = serializers.Serializer
    scopes = {"GET": "read:actions"}

    @extend_schema(parameters=PAGE_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, **kwargs: Any) -> Response:
        return _page(request, "modules", [], dict)
