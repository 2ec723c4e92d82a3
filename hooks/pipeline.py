"""The credentials-exchange hook in the token pipeline (SPEC §4): run the
tenant's enabled hook, filter its result into claims, map its failures to
the OAuth errors of SPEC §3, and record the run."""

import time
from collections.abc import Mapping

from django.core.cache import caches
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from oauthlib.oauth2.rfc6749 import errors

from apis.models import Api
from clients.models import Client
from hooks import runtime
from hooks.choices import RunOutcome, RunSource, TriggerId
from hooks.execution import describe_error, outcome_of, reserved_domains_for, run_hook
from hooks.models import HookStorage
from hooks.points import FilteredClaims, HookResultInvalid, filter_token_claims
from hooks.run_log import RunRecord, record_run
from hooks.selectors import STORAGE_CACHE_SECONDS, enabled_hook_for, storage_cache_key
from tenant import config_cache
from tenant.models import Tenant

FIXED_MESSAGES = {
    RunOutcome.TIMEOUT: "Hook execution timed out.",
    RunOutcome.MEMORY: "Hook exceeded its memory limit.",
    RunOutcome.CRASHED: "Hook execution failed unexpectedly.",
}


def oauth_error_for(error: runtime.HookError) -> errors.OAuth2Error:
    """SPEC §3: the hook's own error classes pick the OAuth error."""
    outcome = outcome_of(error)
    if outcome in FIXED_MESSAGES:
        return errors.ServerError(FIXED_MESSAGES[outcome], status_code=500)
    if isinstance(error, runtime.HookSyntaxError):
        return errors.ServerError("Hook has a syntax error.", status_code=500)
    if error.name == "InvalidScopeError":
        return errors.InvalidScopeError(error.message)
    if error.name == "InvalidRequestError":
        return errors.InvalidRequestError(error.message)
    return errors.ServerError(error.message or "Hook failed.", status_code=500)


def hook_payload(
    *,
    tenant: Tenant,
    client: Client,
    audience: str,
    scope: list[str],
    params: Mapping[str, str],
    ip: str,
    user_agent: str,
) -> dict[str, object]:
    """The hook's arguments; ``body`` never carries the client secret."""
    return {
        "client": {
            "tenant": tenant.slug,
            "id": client.client_id,
            "name": client.name,
            "metadata": dict(client.metadata),
        },
        "scope": list(scope),
        "audience": audience,
        "context": {
            "ip": ip,
            "userAgent": user_agent,
            "body": {k: v for k, v in params.items() if k != "client_secret"},
        },
    }


def save_storage(*, hook_id: int, write: runtime.StorageWrite) -> bool:
    """Persist a hook's storage write unless someone else wrote since it read
    (webtask semantics: ``force`` skips the check). Returns whether it saved."""
    key = storage_cache_key(hook_id)
    with transaction.atomic():
        storage, created = HookStorage.objects.get_or_create(hook_id=hook_id)
        if created:
            # Token requests skip the storage read of a hook without a row
            # (hooks.selectors.enabled_hook_for): from now on, they must read.
            config_cache.invalidate()
        rows = HookStorage.objects.filter(pk=storage.pk)
        if not write.force:
            rows = rows.filter(etag=int(write.base_etag or 0))
        if not rows.update(data=write.data, etag=F("etag") + 1, updated_at=timezone.now()):
            caches["shared"].delete(key)  # our copy was stale: the next run reads the database
            return False
        saved = HookStorage.objects.values_list("data", "etag").get(pk=storage.pk)
        caches["shared"].delete(key)  # until the commit publishes the new copy
        transaction.on_commit(lambda: caches["shared"].set(key, saved, STORAGE_CACHE_SECONDS))
    return True


def credentials_exchange(
    *,
    tenant: Tenant,
    client: Client,
    api: Api,
    scope: list[str],
    params: Mapping[str, str],
    ip: str,
    user_agent: str,
) -> FilteredClaims:
    """Scopes and custom claims for the token, after the enabled hook if any."""
    hook = enabled_hook_for(tenant=tenant, trigger_id=TriggerId.CREDENTIALS_EXCHANGE)
    if hook is None:
        return FilteredClaims(scope=scope)
    payload = hook_payload(
        tenant=tenant,
        client=client,
        audience=api.identifier,
        scope=scope,
        params=params,
        ip=ip,
        user_agent=user_agent,
    )
    started_at = timezone.now()
    start = time.perf_counter()

    def record(outcome: str, console: str, error: str = "") -> None:
        record_run(
            RunRecord(
                tenant_id=tenant.pk,
                hook_id=hook.id,
                hook_version=hook.version,
                source=RunSource.TOKEN,
                started_at=started_at,
                duration_ms=(time.perf_counter() - start) * 1000,
                outcome=outcome,
                console=console,
                error=error,
            )
        )

    try:
        result = run_hook(
            tenant=tenant,
            trigger_id=TriggerId.CREDENTIALS_EXCHANGE,
            script=hook.script,
            version=hook.script_key,
            payload=payload,
            secrets=hook.secrets,
            storage=hook.storage,
        )
    except runtime.HookError as error:
        record(
            outcome_of(error),
            error.console,
            describe_error(error.name, error.message, error.line, error.column),
        )
        raise oauth_error_for(error) from None
    console = result.console
    if result.storage_write is not None and not save_storage(
        hook_id=hook.id, write=result.storage_write
    ):
        console += "\n[tessera] storage.set lost a conflict: another run wrote first\n"
    try:
        claims = filter_token_claims(result.value, reserved_domains=reserved_domains_for(tenant))
    except HookResultInvalid as error:
        record(RunOutcome.ERROR, console, str(error))
        raise errors.ServerError(str(error), status_code=500) from None
    record(RunOutcome.OK, console)
    return claims
