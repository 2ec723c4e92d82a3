"""Per-process memo of tenant configuration for the token hot path.

Token requests outnumber configuration changes by orders of magnitude, so
the lookups of a token request (tenant, client, API, grant, enabled hook,
signing key) are memoised in each server process. Correctness across servers
rests on one *generation* value in the shared cache (Redis in production):
every configuration write replaces it (the "shared" cache: Redis, or
a file cache when there is no Redis), each request reads it once (one cache
GET), and an entry is served only to requests that saw the generation under
which it was loaded. An entry loaded while a change was committing is thus
never served after that change's generation is published.
"""

import contextvars
import secrets
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.apps import apps
from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

T = TypeVar("T")

GENERATION_KEY = "tessera:config-generation"
MAX_ENTRIES = 50_000

_request_generation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tessera_config_generation", default=None
)
_entries: dict[Hashable, tuple[str, Any]] = {}
_lock = threading.Lock()


def current_generation() -> str:
    """The shared generation, created on first use."""
    shared = caches["shared"]
    generation = shared.get(GENERATION_KEY)
    if generation is None:
        shared.add(GENERATION_KEY, secrets.token_hex(8), timeout=None)
        generation = shared.get(GENERATION_KEY)
    return str(generation)


def _publish() -> None:
    caches["shared"].set(GENERATION_KEY, secrets.token_hex(8), timeout=None)


def invalidate() -> None:
    """Configuration changed: publish a new generation now, and again once the
    transaction commits (so nothing read before the commit outlives it)."""
    _publish()
    transaction.on_commit(_publish)


def memoized(key: Hashable, loader: Callable[[], T]) -> T:
    """``loader()``, memoised for requests of the same generation. Outside a
    request (commands, services) it always loads."""
    generation = _request_generation.get()
    if generation is None:
        return loader()
    entry = _entries.get(key)
    if entry is not None and entry[0] == generation:
        return entry[1]  # type: ignore[no-any-return]
    value = loader()
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[key] = (generation, value)
    return value


class ConfigGenerationMiddleware:
    """Reads the generation once per request for ``memoized`` lookups."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        token = _request_generation.set(current_generation())
        try:
            return self.get_response(request)
        finally:
            _request_generation.reset(token)


# Models whose rows a token request reads.
CONFIG_MODELS = (
    "tenant.Tenant",
    "tenant.SigningKey",
    "apis.Api",
    "apis.ApiScope",
    "clients.Client",
    "clients.ClientGrant",
    "hooks.Hook",
    "hooks.HookSecret",
)


def _on_change(**kwargs: Any) -> None:
    invalidate()


def connect_invalidation() -> None:
    """Invalidate on every save and delete of configuration (QuerySet.update
    bypasses signals: services that use it call ``invalidate`` themselves)."""
    for label in CONFIG_MODELS:
        model = apps.get_model(label)
        post_save.connect(_on_change, sender=model, dispatch_uid=f"config-save-{label}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"config-delete-{label}")
    grant_scopes = apps.get_model("clients.ClientGrant").scopes.through
    m2m_changed.connect(_on_change, sender=grant_scopes, dispatch_uid="config-grant-scopes")
