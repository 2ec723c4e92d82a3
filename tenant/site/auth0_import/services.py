"""The import's one write: carry out a plan through the apps' services, all
or nothing, each write audited with the import as its source."""

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apis.models import Api
from apis.selectors import api_for_audience
from apis.services import api_create, api_update
from clients.models import Client
from clients.selectors import client_find
from clients.services import (
    client_create,
    client_grant_create,
    client_grant_set_scopes,
    client_rotate_secret,
    client_update,
)
from hooks.action_services import (
    BindingSpec,
    SecretSpec,
    action_create,
    action_deploy,
    action_update,
    bindings_replace,
)
from hooks.choices import ActionStatus
from hooks.models import Action, Hook
from hooks.selectors import action_find
from hooks.services import (
    hook_create,
    hook_disable,
    hook_enable,
    hook_save_script,
    hook_secrets_delete,
    hook_secrets_set,
    hook_update,
)
from tenant.audit import Actor
from tenant.site.auth0_import.export import (
    CREDENTIALS_EXCHANGE,
    ActionSpec,
    ApiSpec,
    ClientSpec,
    GrantSpec,
    HookSpec,
    ImportRefused,
)
from tenant.site.auth0_import.plan import CREATE, UPDATE, Plan, Step
from tenant.text import validation_message


@dataclass
class ImportResult:
    # client_id -> the secret Tessera made for it (the source kept its own).
    new_secrets: dict[str, str] = field(default_factory=dict)
    # API identifier -> the HS256 signing secret Tessera made for it.
    new_signing_secrets: dict[str, str] = field(default_factory=dict)
    # Clients whose secrets came over: their services change only the domain.
    kept_secrets: list[str] = field(default_factory=list)


@transaction.atomic
def auth0_import(*, plan: Plan, actor: Actor) -> ImportResult:
    """Create and update what ``plan`` says, in one transaction: any refusal
    undoes every write before it. Audit rows name the import as source."""
    actor = actor.via_import()
    result = ImportResult()
    try:
        apis = {
            step.spec.identifier: _api(step, plan, actor, result)
            for step in plan.of("resource_server")
        }
        clients = {id(step.spec): _client(step, plan, actor, result) for step in plan.of("client")}
        for step in plan.of("client_grant"):
            _grant(step, plan, apis, clients, actor)
        for step in plan.of("hook"):
            _hook(step, plan, actor)
        for step in plan.of("action"):
            _action(step, plan, actor)
        for step in plan.of("bindings"):
            _bindings(step, plan, actor)
    except ValidationError as error:
        raise ImportRefused(f"The destination refused it: {validation_message(error)}") from None
    except IntegrityError:
        # Someone wrote the same name or id between the plan and this write.
        raise ImportRefused(
            "A change made here during the import conflicts with it; run it again."
        ) from None
    return result


def _refused(step: Step, error: ValidationError) -> ImportRefused:
    """The one line for a write a service refused (the transaction undoes
    every write before it)."""
    return ImportRefused(
        f"The destination refused {step.kind} {_short(step.key)}: "
        + _short(validation_message(error), 500)
    )


def _short(value: str, limit: int = 200) -> str:
    """A value as an error line shows it: a 100 kB name is not repeated whole."""
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"


def _api(step: Step, plan: Plan, actor: Actor, result: ImportResult) -> Api | None:
    spec: ApiSpec = step.spec
    try:
        if step.verb == CREATE:
            api, secret = api_create(
                tenant=plan.tenant,
                name=spec.name,
                identifier=spec.identifier,
                scopes=spec.scopes,
                signing_alg=spec.signing_alg,
                token_lifetime=spec.token_lifetime,
                signing_secret=spec.signing_secret,
                actor=actor,
            )
            if secret and not spec.signing_secret:
                result.new_signing_secrets[spec.identifier] = secret
            return api
        if step.verb == UPDATE:
            api_update(
                api=step.existing,
                name=spec.name,
                token_lifetime=spec.token_lifetime,
                signing_alg=spec.signing_alg,
                scopes=spec.scopes,
                signing_secret=spec.signing_secret,
                actor=actor,
            )
    except ValidationError as error:
        raise _refused(step, error) from None
    return step.existing  # type: ignore[no-any-return]


def _client(step: Step, plan: Plan, actor: Actor, result: ImportResult) -> Client | None:
    spec: ClientSpec = step.spec
    try:
        if step.verb == CREATE:
            client, secret = client_create(
                tenant=plan.tenant,
                name=spec.name,
                metadata=spec.metadata,
                token_endpoint_auth_method=spec.token_endpoint_auth_method,
                client_id=spec.client_id,
                client_secret=spec.client_secret,
                actor=actor,
            )
            if spec.client_secret:
                result.kept_secrets.append(client.client_id)
            else:
                result.new_secrets[client.client_id] = secret
            return client
        if step.verb == UPDATE:
            client_update(
                client=step.existing,
                name=spec.name,
                metadata=spec.metadata,
                token_endpoint_auth_method=spec.token_endpoint_auth_method,
                actor=actor,
            )
            if spec.client_secret and "secret" in step.detail:
                client_rotate_secret(client=step.existing, secret=spec.client_secret, actor=actor)
    except ValidationError as error:
        raise _refused(step, error) from None
    if spec.client_secret and step.existing is not None:
        result.kept_secrets.append(step.existing.client_id)
    return step.existing  # type: ignore[no-any-return]


def _grant(
    step: Step,
    plan: Plan,
    apis: dict[str, Api | None],
    clients: dict[int, Client | None],
    actor: Actor,
) -> None:
    if step.verb not in (CREATE, UPDATE):
        return
    spec, named = step.spec
    assert isinstance(spec, GrantSpec)
    client = named if isinstance(named, Client) else clients.get(id(named))
    if client is None and isinstance(named, ClientSpec) and named.client_id:
        client = client_find(tenant=plan.tenant, client_id=named.client_id)
    api = apis.get(spec.audience) or api_for_audience(tenant=plan.tenant, identifier=spec.audience)
    if client is None or api is None:
        raise ImportRefused(f"Client grant {step.key}: its client or API was not imported.")
    try:
        if step.verb == CREATE:
            client_grant_create(client=client, api=api, scopes=spec.scopes, actor=actor)
        else:
            client_grant_set_scopes(grant=step.existing, scopes=spec.scopes, actor=actor)
    except ValidationError as error:
        raise _refused(step, error) from None


def _hook(step: Step, plan: Plan, actor: Actor) -> None:
    spec: HookSpec
    spec, values, enabled = step.spec
    try:
        if step.verb == CREATE:
            hook_create(
                tenant=plan.tenant,
                name=spec.name,
                script=spec.script,
                enabled=enabled,
                secrets=values,
                dependencies=spec.dependencies,
                actor=actor,
            )
        elif step.verb == UPDATE:
            hook: Hook = step.existing
            hook_update(
                hook=hook, dependencies=spec.dependencies, actor=actor, confirm_failing=True
            )
            if hook.script != spec.script:
                hook_save_script(
                    hook=hook,
                    script=spec.script,
                    base_version=hook.version,
                    actor=actor,
                    confirm_failing=True,  # Auth0 runs it today; the import does not judge it
                )
            stale = set(hook.secrets.values_list("name", flat=True)) - set(spec.secrets)
            if stale:
                hook_secrets_delete(hook=hook, names=stale, actor=actor)
            if values:
                hook_secrets_set(hook=hook, secrets=values, actor=actor)
            if enabled:
                hook_enable(hook=hook, actor=actor, confirm_failing=True)
            else:
                hook_disable(hook=hook, actor=actor)
    except ValidationError as error:
        raise _refused(step, error) from None


def _action(step: Step, plan: Plan, actor: Actor) -> None:
    spec: ActionSpec
    spec, values, runtime, deploy = step.spec
    secrets = [SecretSpec(name, value) for name, value in sorted(values.items())]
    try:
        if step.verb == CREATE:
            action = action_create(
                tenant=plan.tenant,
                name=spec.name,
                code=spec.code,
                runtime=runtime,
                dependencies=spec.dependencies,
                secrets=secrets,
                actor=actor,
            )
        elif step.verb == UPDATE:
            action = action_update(
                action=step.existing,
                code=spec.code,
                runtime=runtime,
                dependencies=spec.dependencies,
                secrets=secrets,
                actor=actor,
            )
        else:
            return
        if action.status != ActionStatus.BUILT:
            message = "; ".join(error["msg"] for error in action.build_errors)
            raise ImportRefused(f"Action {spec.name} does not build: {message}")
        if deploy:
            action_deploy(action=action, actor=actor)
    except ValidationError as error:
        raise _refused(step, error) from None


def _bindings(step: Step, plan: Plan, actor: Actor) -> None:
    if step.verb not in (CREATE, UPDATE):
        return
    specs = []
    for name, display_name in step.spec:
        action: Action | None = action_find(tenant=plan.tenant, name=name)
        if action is None:
            raise ImportRefused(f"Binding of action {name}: the action was not imported.")
        specs.append(BindingSpec(action, display_name))
    try:
        bindings_replace(
            tenant=plan.tenant, trigger_id=CREDENTIALS_EXCHANGE, bindings=specs, actor=actor
        )
    except ValidationError as error:
        raise _refused(step, error) from None
