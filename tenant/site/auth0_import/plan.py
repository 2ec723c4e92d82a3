"""The plan of an import: each object of the source against the destination
tenant, ``create``, ``update`` (only with ``overwrite``), ``unchanged``, or
``differs`` (left alone), and what cannot come over.

Planning reads the destination and writes nothing; it also compiles every
script and builds every Action, so that a script that cannot run stops the
import before anything is written (and shows in a dry run).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError

from apis.choices import SigningAlgorithm
from apis.models import Api
from apis.selectors import api_list
from clients.models import Client
from clients.selectors import client_grant_list, client_ids_elsewhere, client_list
from hooks.action_services import action_build, all_changes_deployed, deployed_version
from hooks.choices import ActionRuntime, ActionStatus
from hooks.execution import check_script
from hooks.models import Action, Hook
from hooks.selectors import action_list, hook_list, hook_secrets, trigger_bindings
from tenant.crypto import decrypt
from tenant.models import Tenant
from tenant.site.auth0_import.export import (
    CREDENTIALS_EXCHANGE,
    ActionSpec,
    ClientSpec,
    Export,
    ImportRefused,
)
from tenant.text import validation_message

CREATE, UPDATE, UNCHANGED, DIFFERS = "create", "update", "unchanged", "differs"


@dataclass
class Step:
    """One object of the source and what the import does with it."""

    kind: str
    key: str
    verb: str
    detail: str = ""
    spec: Any = None
    existing: Any = None


@dataclass
class Plan:
    tenant: Tenant
    source: str
    steps: list[Step] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Step]:
        return [step for step in self.steps if step.kind == kind]

    def count(self, verb: str) -> int:
        return sum(1 for step in self.steps if step.verb == verb)

    @property
    def writes(self) -> bool:
        return any(step.verb in (CREATE, UPDATE) for step in self.steps)

    @property
    def new_secrets(self) -> int:
        """Clients that get a secret of Tessera's making (the source kept theirs)."""
        return sum(
            1 for step in self.of("client") if step.verb == CREATE and not step.spec.client_secret
        )

    def lines(self) -> list[str]:
        shown = [
            f"{step.verb:<9} {step.kind} {step.key}" + (f"  ({step.detail})" if step.detail else "")
            for step in self.steps
        ]
        return [*shown, f"Plan: {self.summary}."]

    @property
    def summary(self) -> str:
        return ", ".join(
            f"{self.count(verb)} {verb}" for verb in (CREATE, UPDATE, UNCHANGED, DIFFERS)
        )


def _differences(pairs: Mapping[str, tuple[Any, Any]]) -> list[str]:
    return [name for name, (ours, theirs) in pairs.items() if ours != theirs]


def _step(
    kind: str, key: str, spec: Any, existing: Any, differ: list[str], overwrite: bool
) -> Step:
    if existing is None:
        return Step(kind, key, CREATE, spec=spec)
    if not differ:
        return Step(kind, key, UNCHANGED, spec=spec, existing=existing)
    detail = "differs in " + ", ".join(differ)
    if overwrite:
        return Step(kind, key, UPDATE, detail, spec, existing)
    return Step(
        kind, key, DIFFERS, detail + "; left alone (--overwrite replaces it)", spec, existing
    )


def make_plan(
    *,
    tenant: Tenant,
    export: Export,
    hook_secrets_given: Mapping[str, Mapping[str, str]] | None = None,
    action_secrets_given: Mapping[str, Mapping[str, str]] | None = None,
    overwrite: bool = False,
) -> Plan:
    """Compare ``export`` with ``tenant``; raises :class:`ImportRefused` for
    input that cannot come over at all."""
    plan = Plan(tenant=tenant, source=export.source, left_out=list(export.left_out))
    apis = _plan_apis(plan, export, overwrite)
    clients = _plan_clients(plan, export, overwrite)
    _plan_grants(plan, export, apis, clients, overwrite)
    _plan_hooks(plan, export, hook_secrets_given or {}, overwrite)
    _plan_actions(plan, export, action_secrets_given or {}, overwrite)
    return plan


def _scope_list(api: Api) -> list[tuple[str, str]]:
    return [(s.value, s.description) for s in api.scopes.all()]


def _plan_apis(plan: Plan, export: Export, overwrite: bool) -> dict[str, list[str]]:
    """Plans the APIs; returns each audience the grants may name with its scopes."""
    existing = {api.identifier: api for api in api_list(tenant=plan.tenant)}
    audiences = {
        identifier: [value for value, _ in _scope_list(api)]
        for identifier, api in existing.items()
        if not api.is_system
    }
    seen: set[str] = set()
    for spec in export.resource_servers:
        if spec.identifier in seen:
            raise ImportRefused(f"Resource server {spec.identifier} appears twice in the source.")
        seen.add(spec.identifier)
        if spec.signing_alg not in SigningAlgorithm.values:
            raise ImportRefused(
                f"Resource server {spec.identifier} signs with {spec.signing_alg}; Tessera "
                f"signs with {' or '.join(SigningAlgorithm.values)}."
            )
        api = existing.get(spec.identifier)
        if api is not None and api.is_system:
            plan.left_out.append(f"resource server {spec.identifier} (this tenant's own API)")
            continue
        differ = []
        if api is not None:
            differ = _differences(
                {
                    "name": (spec.name, api.name),
                    "scopes": (sorted(spec.scopes), sorted(_scope_list(api))),
                    "signing_alg": (spec.signing_alg, api.signing_alg),
                    "token_lifetime": (spec.token_lifetime, api.token_lifetime),
                }
            )
            if (
                spec.signing_secret
                and spec.signing_alg == SigningAlgorithm.HS256
                and (
                    not api.signing_secret_encrypted
                    or decrypt(api.signing_secret_encrypted) != spec.signing_secret
                )
            ):
                differ.append("signing secret")
        step = _step("resource_server", spec.identifier, spec, api, differ, overwrite)
        if (
            spec.signing_alg == SigningAlgorithm.HS256
            and not spec.signing_secret
            and step.verb == CREATE
        ):
            step.detail = "HS256: the source kept its signing secret; a new one is made"
        plan.steps.append(step)
        if step.verb in (CREATE, UPDATE) or api is None:
            audiences[spec.identifier] = [value for value, _ in spec.scopes]
    return audiences


def _plan_clients(plan: Plan, export: Export, overwrite: bool) -> dict[str, ClientSpec | Client]:
    """Plans the clients; returns what a grant may name (client id or, as in
    Deploy CLI files, name) with the client it means."""
    existing = list(client_list(tenant=plan.tenant))
    by_id = {client.client_id: client for client in existing}
    by_name: dict[str, Client] = {}
    for client in existing:
        by_name.setdefault(client.name, client)
    ids = [spec.client_id for spec in export.clients if spec.client_id]
    if len(set(ids)) != len(ids):
        raise ImportRefused("The source lists a client_id twice.")
    elsewhere = client_ids_elsewhere(tenant=plan.tenant, client_ids=ids)
    known: dict[str, ClientSpec | Client] = {**by_name, **by_id}
    for spec in export.clients:
        if spec.client_id in elsewhere:
            raise ImportRefused(
                f"Client {spec.name}: its client_id {spec.client_id} is already used by "
                "another tenant of this Tessera; client ids are unique across tenants."
            )
        found = by_id.get(spec.client_id) if spec.client_id else by_name.get(spec.name)
        differ = []
        if found is not None:
            differ = _differences(
                {
                    "name": (spec.name, found.name),
                    "metadata": (spec.metadata, found.metadata),
                    "token_endpoint_auth_method": (
                        spec.token_endpoint_auth_method,
                        found.token_endpoint_auth_method,
                    ),
                }
            )
            if spec.client_secret and not check_password(spec.client_secret, found.client_secret):
                differ.append("secret")
        key = f"{spec.name} ({spec.client_id or 'new client_id'})"
        step = _step("client", key, spec, found, differ, overwrite)
        if step.verb == CREATE:
            step.detail = "secret kept" if spec.client_secret else "new secret (--secrets-out)"
        if spec.description:
            plan.left_out.append(f"client {spec.name}: description (Tessera keeps none)")
        plan.steps.append(step)
        known[spec.name] = spec
        if spec.client_id:
            known[spec.client_id] = spec
    return known


def _plan_grants(
    plan: Plan,
    export: Export,
    audiences: dict[str, list[str]],
    clients: dict[str, ClientSpec | Client],
    overwrite: bool,
) -> None:
    existing = {
        (grant.client.client_id, grant.api.identifier): grant
        for grant in client_grant_list(tenant=plan.tenant).prefetch_related("scopes")
    }
    steps = {step.spec.name: step for step in plan.of("client")}
    for spec in export.client_grants:
        client = clients.get(spec.client)
        name = client.name if client is not None else spec.client
        # A Deploy CLI export leaves the Management API itself out (it knows
        # it by name), not always the grants to it.
        if spec.audience in export.system_audiences or (
            spec.audience not in audiences and spec.audience.endswith("/api/v2/")
        ):
            plan.left_out.append(f"grant of {name} to the source's Management API")
            continue
        if client is None:
            raise ImportRefused(
                f"Client grant to {spec.audience} names client {spec.client}, which is neither "
                "in the source nor in the tenant."
            )
        if spec.audience not in audiences:
            raise ImportRefused(
                f"Client grant of {name} names audience {spec.audience}, which is neither in "
                "the source nor in the tenant."
            )
        unknown = sorted(set(spec.scopes) - set(audiences[spec.audience]))
        if unknown:
            raise ImportRefused(
                f"Client grant of {name} to {spec.audience} names scopes the API does not "
                f"define: {', '.join(unknown)}."
            )
        # A client planned as created has no client id yet unless it keeps one.
        client_step = steps.get(client.name) if isinstance(client, ClientSpec) else None
        destination_id = (
            client.client_id
            if isinstance(client, Client)
            else (client_step.existing.client_id if client_step and client_step.existing else None)
        )
        grant = existing.get((destination_id or "", spec.audience))
        differ = []
        if grant is not None:
            current = sorted(s.value for s in grant.scopes.all())
            differ = _differences({"scope": (sorted(set(spec.scopes)), current)})
        step = _step("client_grant", f"{name} → {spec.audience}", spec, grant, differ, overwrite)
        step.spec = (spec, client)
        plan.steps.append(step)


def _secrets(
    kind: str,
    name: str,
    declared: Mapping[str, str | None],
    given: Mapping[str, Any],
    stored: Mapping[str, str],
) -> tuple[dict[str, str], list[str]]:
    """The secrets' values (from the source, else the secrets file, else
    what the destination already holds under that name) and the names still
    without one."""
    extra = given.get(name) or {}
    if not isinstance(extra, Mapping) or not all(isinstance(v, str) for v in extra.values()):
        raise ImportRefused(f"The {kind} secrets file must map {name} to an object of strings.")
    values = {key: value for key, value in declared.items() if value is not None}
    values.update({key: value for key, value in extra.items() if key in declared})
    values.update({key: stored[key] for key in declared if key not in values and key in stored})
    missing = sorted(set(declared) - set(values))
    return values, missing


def _plan_hooks(plan: Plan, export: Export, given: Mapping[str, Any], overwrite: bool) -> None:
    existing = {hook.name: hook for hook in hook_list(tenant=plan.tenant)}
    enabled_now = [hook for hook in existing.values() if hook.enabled]
    for spec in export.hooks:
        try:
            check_script(tenant=plan.tenant, script=spec.script)
        except ValidationError as error:
            raise ImportRefused(f"Hook {spec.name}: {validation_message(error)}") from None
        hook: Hook | None = existing.get(spec.name)
        stored = hook_secrets(hook=hook) if hook is not None else {}
        values, missing = _secrets("hook", spec.name, spec.secrets, given, stored)
        enabled = spec.enabled and not missing
        differ = []
        if hook is not None:
            differ = _differences(
                {
                    "script": (spec.script, hook.script),
                    "enabled": (enabled, hook.enabled),
                    "dependencies": (spec.dependencies, hook.dependencies),
                    "secrets": (values, stored),
                }
            )
        step = _step("hook", spec.name, (spec, values, enabled), hook, differ, overwrite)
        if missing:
            step.detail = (step.detail + "; " if step.detail else "") + (
                f"comes over disabled: no value for secret {', '.join(missing)} (--hook-secrets)"
            )
            plan.notes.append(f"Hook {spec.name} is disabled: its secrets {missing} have no value.")
        elif enabled and step.verb in (CREATE, UPDATE):
            others = [h.name for h in enabled_now if h.name != spec.name]
            if others:
                step.detail = (step.detail + "; " if step.detail else "") + (
                    f"enabling it disables hook {others[0]}"
                )
        plan.steps.append(step)


def _runtime(spec: ActionSpec, plan: Plan) -> str:
    if spec.runtime in ActionRuntime.values:
        return spec.runtime
    label = ActionRuntime.NODE18 if spec.runtime.startswith("node18") else ActionRuntime.NODE22
    plan.notes.append(f"Action {spec.name}: runtime {spec.runtime} is labelled {label}.")
    return str(label)


def _plan_actions(plan: Plan, export: Export, given: Mapping[str, Any], overwrite: bool) -> None:
    existing = {action.name: action for action in action_list(tenant=plan.tenant)}
    deployable: set[str] = {
        action.name for action in existing.values() if deployed_version(action=action)
    }
    for spec in export.actions:
        build = action_build(tenant=plan.tenant, code=spec.code)
        if build.status != ActionStatus.BUILT:
            message = "; ".join(error["msg"] for error in build.errors)
            raise ImportRefused(f"Action {spec.name} does not build: {message}")
        action: Action | None = existing.get(spec.name)
        current = (
            {s.name: decrypt(s.value_encrypted) for s in action.secrets.all()}
            if action is not None
            else {}
        )
        values, missing = _secrets("action", spec.name, spec.secrets, given, current)
        runtime = _runtime(spec, plan)
        deploy = spec.deployed and not missing
        differ = []
        if action is not None:
            live = deployed_version(action=action)
            differ = _differences(
                {
                    "code": (spec.code, action.code),
                    "runtime": (runtime, action.runtime),
                    "dependencies": (spec.dependencies, action.dependencies),
                    "secrets": (values, {k: v for k, v in current.items() if k in values}),
                    "deployed version": (
                        deploy,
                        deploy and all_changes_deployed(action=action, deployed=live),
                    ),
                }
            )
        step = _step(
            "action", spec.name, (spec, values, runtime, deploy), action, differ, overwrite
        )
        if missing:
            step.detail = (step.detail + "; " if step.detail else "") + (
                f"not deployed: no value for secret {', '.join(missing)} (--action-secrets)"
            )
            plan.notes.append(
                f"Action {spec.name} is not deployed: secrets {missing} have no value."
            )
        plan.steps.append(step)
        if step.verb in (CREATE, UPDATE) and deploy:
            deployable.add(spec.name)
        elif step.verb in (CREATE, UPDATE):
            deployable.discard(spec.name)
    if export.bindings is None:
        return
    wanted = []
    for entry in export.bindings:
        if entry.action_name not in deployable:
            plan.left_out.append(f"binding of action {entry.action_name} (not deployed here)")
            continue
        wanted.append((entry.action_name, entry.display_name or entry.action_name))
    flow = [
        (b.action.name, b.display_name)
        for b in trigger_bindings(tenant=plan.tenant, trigger_id=CREDENTIALS_EXCHANGE)
    ]
    order = " → ".join(name for name, _ in wanted) or "none"
    if not flow:
        verb = CREATE if wanted else UNCHANGED
        plan.steps.append(Step("bindings", CREDENTIALS_EXCHANGE, verb, order, wanted))
    else:
        step = _step(
            "bindings",
            CREDENTIALS_EXCHANGE,
            wanted,
            flow,
            ["order"] if flow != wanted else [],
            overwrite,
        )
        step.detail = f"{order}; {step.detail}" if step.detail else order
        plan.steps.append(step)
