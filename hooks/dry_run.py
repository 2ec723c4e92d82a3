"""What a change would do to a tenant's token requests, before it is live.

A dry run replays inputs through the live flow (the enabled hook, then the
bound Actions) and through the candidate (the same flow with the change
made: a saved or restored hook script, a hook enabled, an Action version
deployed, a new binding order), and compares the outcomes per input. The
inputs are, in order: the tenant's recorded token requests
(``hooks.recorded_inputs``); for each client with a grant but no recorded
request, an input built from its real metadata and grant; the point's sample
only when the tenant has no client.

Runs are test runs (the governor's test-run cap and breaker, never the token
path's), in the production sandbox, with the scripts' secrets and storage
read but nothing written back and no run records, within
``TESSERA_DRY_RUN_SECONDS`` in all.

A change is refused (:class:`GoLiveRefused`) only for a regression: the
candidate fails for a real input where the live flow succeeds, or fails for
every real input. The sample never refuses anything.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from hooks import runtime
from hooks.choices import HookKind, RunOutcome, RunSource
from hooks.dependencies import Lock, packages_for
from hooks.execution import Execution, describe_error, execute, limits_for
from hooks.models import Action, ActionVersion, Hook, RecordedInput, TriggerBinding
from hooks.points import POINTS, credentials_exchange_payload
from hooks.selectors import action_cache, hook_secrets, hook_storage
from tenant.crypto import decrypt
from tenant.models import Tenant

RECORDED, FROM_GRANT, SAMPLE = "recorded", "grant", "sample"
BUSY_PAUSE_S = 0.05


# --- the inputs -----------------------------------------------------------------


@dataclass(frozen=True)
class GrantInput:
    """A client's real name, metadata and one grant (audience and scopes)."""

    client_id: str
    name: str
    metadata: Mapping[str, str]
    audience: str
    scopes: list[str]


@dataclass(frozen=True)
class TenantClients:
    """How many clients a tenant has, and every grant, by client then API."""

    count: int
    grants: list[GrantInput]


class ClientInputs:
    """Where a dry run learns the tenant's clients and grants: the clients
    app registers its selector here (hooks never imports clients)."""

    def __init__(self) -> None:
        self._source: Callable[..., TenantClients] | None = None

    def register(self, source: Callable[..., TenantClients]) -> None:
        """``source(tenant=)`` answers the tenant's clients and their grants."""
        self._source = source

    def __call__(self, *, tenant: Tenant) -> TenantClients:
        return self._source(tenant=tenant) if self._source else TenantClients(0, [])


client_inputs = ClientInputs()


@dataclass(frozen=True)
class ReplayInput:
    source: str  # RECORDED, FROM_GRANT or SAMPLE
    client_id: str
    client_name: str
    audience: str
    requested_scope: str
    payload: dict[str, Any]


def _as_today(
    payload: dict[str, Any], grant: GrantInput | None, requested: str
) -> dict[str, Any] | None:
    """A recorded request's arguments as the request would give them now:
    the client's current name and metadata, the scopes its grant gives
    today; None when it would now be refused before any hook runs (client
    or grant gone, a requested scope no longer granted)."""
    if grant is None:
        return None
    wanted = list(dict.fromkeys(requested.split()))
    if any(scope not in grant.scopes for scope in wanted):
        return None
    scope = [s for s in grant.scopes if s in wanted] if wanted else list(grant.scopes)
    client = {**(payload.get("client") or {}), "name": grant.name, "metadata": dict(grant.metadata)}
    return {**payload, "client": client, "scope": scope}


def replay_inputs(*, tenant: Tenant, trigger_id: str) -> list[ReplayInput]:
    """The inputs a dry run replays, in order (see the module's docstring);
    recorded requests as they would be made today (``_as_today``)."""
    recorded = RecordedInput.objects.filter(tenant=tenant, trigger_id=trigger_id).order_by(
        "-last_seen_at", "-id"
    )[: settings.TESSERA_RECORDED_INPUTS_PER_TENANT]
    clients = client_inputs(tenant=tenant)
    grants = {(grant.client_id, grant.audience): grant for grant in clients.grants}
    inputs = []
    for row in recorded:
        current = grants.get((row.client_id, row.audience))
        payload = _as_today(row.payload, current, row.requested_scope)
        if current is not None and payload is not None:
            inputs.append(
                ReplayInput(
                    RECORDED,
                    row.client_id,
                    current.name,
                    row.audience,
                    row.requested_scope,
                    payload,
                )
            )
    called = {item.client_id for item in inputs}
    for grant in clients.grants:
        if grant.client_id in called:
            continue
        called.add(grant.client_id)
        payload = credentials_exchange_payload(
            tenant_slug=tenant.slug,
            client_id=grant.client_id,
            client_name=grant.name,
            client_metadata=grant.metadata,
            audience=grant.audience,
            scope=grant.scopes,
            params={
                "grant_type": "client_credentials",
                "client_id": grant.client_id,
                "audience": grant.audience,
            },
            ip="",
            user_agent="",
            hostname=tenant.domain or "",
        )
        inputs.append(
            ReplayInput(FROM_GRANT, grant.client_id, grant.name, grant.audience, "", payload)
        )
    if clients.count == 0:
        sample = dict(POINTS[trigger_id].sample_payload)
        client = sample.get("client") or {}
        inputs.append(
            ReplayInput(
                SAMPLE,
                str(client.get("id", "")),
                str(client.get("name", "")),
                str(sample.get("audience", "")),
                "",
                sample,
            )
        )
    return inputs


# --- the flows ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One script of a flow: the point's hook or a bound Action's version."""

    name: str
    script: str
    secrets: Mapping[str, str]
    storage_hook_id: int | None = None  # a Hook's storage, read, never written
    cache_id: int | str | None = None  # its api.cache, read, never written
    lock: Lock | None = None  # the npm packages it runs with


@dataclass(frozen=True)
class Flow:
    hook: Step | None
    actions: tuple[Step, ...] = ()

    @property
    def empty(self) -> bool:
        return self.hook is None and not self.actions


def _hook_step(hook: Hook, script: str, lock: Lock | None = None) -> Step:
    return Step(
        name=hook.name,
        script=script,
        secrets=hook_secrets(hook=hook),
        storage_hook_id=hook.pk,
        cache_id=hook.pk if hook.kind == HookKind.ACTION else None,
        lock=hook.dependency_lock if lock is None else lock,
    )


def _version_step(action: Action, code: str, secrets: Mapping[str, str], lock: Lock | None) -> Step:
    return Step(
        name=action.name,
        script=code,
        secrets=secrets,
        cache_id=f"action:{action.public_id}",
        lock=lock,
    )


def _deployed_step(action: Action) -> Step | None:
    version = action.versions.filter(deployed=True).first()
    if version is None:
        return None
    secrets = {name: decrypt(value) for name, value in version.secrets_encrypted.items()}
    return _version_step(action, version.code, secrets, version.dependency_lock)


def _bound_actions(tenant: Tenant, trigger_id: str) -> list[Action]:
    bindings = TriggerBinding.objects.filter(tenant=tenant, trigger_id=trigger_id)
    return [b.action for b in bindings.select_related("action").order_by("position")]


def live_flow(*, tenant: Tenant, trigger_id: str) -> Flow:
    """What token requests run now, read from the database."""
    hook = Hook.objects.filter(tenant=tenant, trigger_id=trigger_id, enabled=True).first()
    steps = [_deployed_step(action) for action in _bound_actions(tenant, trigger_id)]
    return Flow(
        hook=_hook_step(hook, hook.script) if hook else None,
        actions=tuple(step for step in steps if step is not None),
    )


def hook_candidate(*, hook: Hook, script: str, lock: Lock | None = None) -> Flow:
    """The flow with ``hook`` enabled and running ``script`` (with the
    packages of ``lock``, the hook's own by default)."""
    live = live_flow(tenant=hook.tenant, trigger_id=hook.trigger_id)
    return Flow(hook=_hook_step(hook, script, lock), actions=live.actions)


def action_candidate(*, action: Action, version: ActionVersion | None = None) -> Flow | None:
    """The flow with ``action`` running its draft (or ``version``'s code), with
    the draft's secrets, as a deploy or rollback would; None when no trigger
    runs the Action (its deploy changes no token request)."""
    bound = _bound_actions(action.tenant, action.trigger_id)
    if all(item.pk != action.pk for item in bound):
        return None
    secrets = {s.name: decrypt(s.value_encrypted) for s in action.secrets.all()}
    code, lock = (
        (version.code, version.dependency_lock)
        if version is not None
        else (action.code, action.dependency_lock)
    )
    live = live_flow(tenant=action.tenant, trigger_id=action.trigger_id)
    steps = []
    for item in bound:
        step = (
            _version_step(action, code, secrets, lock)
            if item.pk == action.pk
            else _deployed_step(item)
        )
        if step is not None:
            steps.append(step)
    return Flow(hook=live.hook, actions=tuple(steps))


def bindings_candidate(*, tenant: Tenant, trigger_id: str, actions: Sequence[Action]) -> Flow:
    """The flow with ``actions`` bound, in this order."""
    live = live_flow(tenant=tenant, trigger_id=trigger_id)
    steps = [_deployed_step(action) for action in actions]
    return Flow(hook=live.hook, actions=tuple(step for step in steps if step is not None))


# --- running --------------------------------------------------------------------


@dataclass
class Outcome:
    """What one flow did with one input."""

    ok: bool
    outcome: str
    scope: list[str] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # "Name: message (line L, column C)"
    line: int | None = None
    step: str = ""  # the script that failed
    console: str = ""
    ran: bool = True  # False: no flow, the token carries the granted scope

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": self.outcome,
            "scope": self.scope,
            "claims": self.claims,
            "error": self.error,
            "line": self.line,
            "step": self.step,
            "console": self.console,
            "ran": self.ran,
        }


@dataclass
class Replayed:
    """One input, through the live flow and through the candidate."""

    input: ReplayInput
    live: Outcome
    candidate: Outcome

    @property
    def real(self) -> bool:
        return self.input.source != SAMPLE

    @property
    def regression(self) -> bool:
        return self.real and self.live.ok and not self.candidate.ok

    @property
    def claim_changes(self) -> list[dict[str, Any]]:
        if not (self.live.ok and self.candidate.ok):
            return []
        names = sorted(set(self.live.claims) | set(self.candidate.claims))
        return [
            {
                "name": name,
                "live": self.live.claims.get(name),
                "candidate": self.candidate.claims.get(name),
                "change": "added"
                if name not in self.live.claims
                else "removed"
                if name not in self.candidate.claims
                else "changed",
            }
            for name in names
            if self.live.claims.get(name, _MISSING) != self.candidate.claims.get(name, _MISSING)
        ]

    @property
    def scope_added(self) -> list[str]:
        if not (self.live.ok and self.candidate.ok):
            return []
        return [s for s in self.candidate.scope if s not in self.live.scope]

    @property
    def scope_removed(self) -> list[str]:
        if not (self.live.ok and self.candidate.ok):
            return []
        return [s for s in self.live.scope if s not in self.candidate.scope]

    @property
    def changed(self) -> bool:
        return self.live.ok != self.candidate.ok or bool(
            self.claim_changes or self.scope_added or self.scope_removed
        )

    def as_json(self) -> dict[str, Any]:
        item = self.input
        return {
            "source": item.source,
            "client_id": item.client_id,
            "client_name": item.client_name,
            "audience": item.audience,
            "requested_scope": item.requested_scope,
            "live": self.live.as_json(),
            "candidate": self.candidate.as_json(),
            "regression": self.regression,
            "changed": self.changed,
            "claim_changes": self.claim_changes,
            "scope_added": self.scope_added,
            "scope_removed": self.scope_removed,
        }


_MISSING = object()


def _client_label(item: ReplayInput) -> str:
    return f"{item.client_name} ({item.client_id})" if item.client_name else item.client_id


@dataclass
class DryRun:
    """The replay of every input, and the verdict."""

    replayed: list[Replayed]
    not_run: int = 0  # inputs left when the time budget ran out
    duration_ms: float = 0.0

    @property
    def real(self) -> list[Replayed]:
        return [item for item in self.replayed if item.real]

    @property
    def regressions(self) -> list[Replayed]:
        return [item for item in self.replayed if item.regression]

    @property
    def fails_everywhere(self) -> bool:
        real = self.real
        return bool(real) and all(not item.candidate.ok for item in real)

    @property
    def refuses(self) -> bool:
        """Whether going live needs a confirmation: a regression, or a
        candidate that fails for every real input."""
        return bool(self.regressions) or self.fails_everywhere

    def failing(self) -> list[Replayed]:
        """The real inputs going live would fail."""
        judged = self.real if self.fails_everywhere else self.regressions
        return [item for item in judged if not item.candidate.ok]

    def clients_failing(self) -> list[str]:
        return sorted({_client_label(item.input) for item in self.failing()})

    def recorded_failing(self) -> int:
        return sum(1 for item in self.failing() if item.input.source == RECORDED)

    def clients_changed(self) -> list[str]:
        return sorted(
            {_client_label(item.input) for item in self.real if item.changed and item.candidate.ok}
        )

    def summary(self) -> dict[str, Any]:
        """What the audit trail keeps of the dry run (no payloads, no claims)."""
        sources = [item.input.source for item in self.replayed]
        return {
            "inputs": len(self.replayed),
            "recorded": sources.count(RECORDED),
            "from_grants": sources.count(FROM_GRANT),
            "sample": sources.count(SAMPLE),
            "not_run": self.not_run,
            "regressions": len(self.regressions),
            "candidate_failures": sum(1 for item in self.replayed if not item.candidate.ok),
            "clients_failing": self.clients_failing(),
            "recorded_requests_failing": self.recorded_failing(),
            "clients_changed": self.clients_changed(),
            "refused": self.refuses,
            "duration_ms": round(self.duration_ms, 1),
        }

    def as_json(self) -> dict[str, Any]:
        return {**self.summary(), "replayed": [item.as_json() for item in self.replayed]}

    def refusal(self, name: str) -> str:
        """Why going live with ``name`` needs a confirmation."""
        failing = self.failing()
        first = failing[0].candidate if failing else None
        reason = f" ({first.error})" if first and first.error else ""
        clients = ", ".join(self.clients_failing())
        recorded = self.recorded_failing()
        where = (
            f"every client it was tried on ({clients})"
            if self.fails_everywhere
            else f"{len(self.clients_failing())} client(s) it serves today: {clients}"
        )
        return (
            f"{name} would fail for {where}{reason}; {recorded} recorded "
            f"request{'s' if recorded != 1 else ''} would fail."
        )


class GoLiveRefused(ValidationError):
    """Going live would break token requests that work today (see
    :attr:`DryRun.refuses`); ``dry_run`` says which and how."""

    def __init__(self, *, name: str, dry_run: DryRun) -> None:
        super().__init__(dry_run.refusal(name), code="go_live_refused")
        self.dry_run = dry_run


def _failed(execution: Execution, step: Step) -> Outcome:
    error = execution.error
    if error is not None:
        text = describe_error(error.name, error.message, error.line, error.column)
        line = error.line
    else:
        text, line = f"InvalidResult: {execution.invalid_result}", None
    return Outcome(
        ok=False,
        outcome=execution.outcome,
        error=text,
        line=line,
        step=step.name,
        console=execution.console,
    )


def _busy(execution: Execution) -> bool:
    return isinstance(execution.error, runtime.HookBusy)


def _run_step(
    tenant: Tenant, trigger_id: str, step: Step, payload: Mapping[str, Any], deadline: float
) -> Execution:
    while True:
        execution = execute(
            tenant=tenant,
            trigger_id=trigger_id,
            source=RunSource.TEST,
            script=step.script,
            payload=payload,
            secrets=step.secrets,
            storage=hook_storage(hook_id=step.storage_hook_id)
            if step.storage_hook_id is not None and "storage" in step.script
            else None,
            cache=action_cache(hook_id=step.cache_id) if step.cache_id is not None else None,
            packages=packages_for(step.lock),
            deadline=deadline,
        )
        # Another author's test runs hold the slots: wait for one, within the budget.
        if not _busy(execution) or time.monotonic() + BUSY_PAUSE_S >= deadline:
            return execution
        time.sleep(BUSY_PAUSE_S)


def run_flow(
    *, tenant: Tenant, trigger_id: str, flow: Flow, payload: Mapping[str, Any], deadline: float
) -> Outcome:
    """What token requests would get from ``flow`` for ``payload``, as
    ``hooks.pipeline.credentials_exchange`` runs it, writing nothing."""
    scope = list(payload.get("scope") or [])
    if flow.empty:
        return Outcome(ok=True, outcome=RunOutcome.OK, scope=scope, ran=False)
    claims: dict[str, Any] = {}
    consoles = []
    if flow.hook is not None:
        execution = _run_step(tenant, trigger_id, flow.hook, payload, deadline)
        if not execution.ok:
            return _failed(execution, flow.hook)
        scope, claims = list(execution.claims.scope), dict(execution.claims.claims)
        consoles.append(execution.console)
    for step in flow.actions:
        step_payload = {**payload, "accessToken": {"scope": scope, "customClaims": claims}}
        execution = _run_step(tenant, trigger_id, step, step_payload, deadline)
        if not execution.ok:
            return _failed(execution, step)
        claims.update(execution.claims.claims)
        consoles.append(execution.console)
    return Outcome(
        ok=True, outcome=RunOutcome.OK, scope=scope, claims=claims, console="".join(consoles)
    )


def dry_run(
    *,
    tenant: Tenant,
    trigger_id: str,
    candidate: Flow,
    live: Flow | None = None,
    inputs: list[ReplayInput] | None = None,
) -> DryRun:
    """Replay the inputs through ``live`` (default: what runs now) and
    ``candidate``, within ``TESSERA_DRY_RUN_SECONDS``. An input whose run
    the budget cut short is counted in ``not_run``, never judged."""
    started = time.monotonic()
    deadline = started + settings.TESSERA_DRY_RUN_SECONDS
    live = live if live is not None else live_flow(tenant=tenant, trigger_id=trigger_id)
    inputs = inputs if inputs is not None else replay_inputs(tenant=tenant, trigger_id=trigger_id)
    report = DryRun(replayed=[])
    # Each input at most a run's timeout: the budget is never a script's fault.
    per_run_s = limits_for(tenant).timeout_ms / 1000
    for position, item in enumerate(inputs):
        if time.monotonic() >= deadline:
            report.not_run = len(inputs) - position
            break
        outcomes = [
            run_flow(
                tenant=tenant,
                trigger_id=trigger_id,
                flow=flow,
                payload=item.payload,
                deadline=min(deadline, time.monotonic() + per_run_s),
            )
            for flow in (live, candidate)
        ]
        cut_short = time.monotonic() >= deadline and any(
            outcome.outcome in (RunOutcome.TIMEOUT, RunOutcome.REFUSED) for outcome in outcomes
        )
        if cut_short:
            report.not_run = len(inputs) - position
            break
        report.replayed.append(Replayed(item, outcomes[0], outcomes[1]))
    report.duration_ms = (time.monotonic() - started) * 1000
    return report


def check_go_live(
    *, name: str, tenant: Tenant, trigger_id: str, candidate: Flow, confirm_failing: bool
) -> DryRun:
    """Dry-run ``candidate``; raise :class:`GoLiveRefused` for a regression
    unless ``confirm_failing``. Call it before any transaction or lock: a
    slow script must not hold a row while it runs."""
    report = dry_run(tenant=tenant, trigger_id=trigger_id, candidate=candidate)
    if report.refuses and not confirm_failing:
        raise GoLiveRefused(name=name, dry_run=report)
    return report


def audit_summary(report: DryRun | None, *, confirmed: bool) -> dict[str, Any]:
    """The ``dry_run`` field of a go-live's audit entry."""
    if report is None:
        return {"skipped": "no token request runs what changed"}
    summary = report.summary()
    if report.refuses:
        summary["confirmed"] = confirmed
    return summary
