"""The inputs of token requests, kept to replay a change on before it goes
live (``hooks.dry_run``).

A token request that runs a point's flow hands its hook arguments here. The
request pays for a dictionary lookup and a comparison: a per-process memo
remembers which (tenant, point, client, audience, requested scope) it has
recorded and what the stored arguments depend on (the client's name and
metadata, the granted scope), so that a repeated request writes nothing. A
row is written, by the run log's writer thread with the run records, only
when the key is new to this process, what it depends on changed, or it was
last written ``REFRESH_SECONDS`` ago (so that a client that keeps calling
keeps its row past the retention). Nothing secret is kept: the client secret
never reaches the arguments (``hooks.points.credentials_exchange_payload``),
client assertions are left out here, and hook and Action secrets are added
by the runtime, never part of the arguments.
"""

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hooks.models import RecordedInput
from hooks.runtime.json_text import compact_encoder

REFRESH_SECONDS = 3600.0
MEMO_SIZE = 20_000
# Body parameters that authenticate the client: never recorded.
SECRET_PARAMS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})

_encode = compact_encoder(ascii_only=False, default=str)


class InputRecord(NamedTuple):
    tenant_id: int
    trigger_id: str
    key: str
    client_id: str
    client_name: str
    audience: str
    requested_scope: str
    payload: dict[str, Any]
    size_bytes: int
    seen_at: datetime


class _Memo(NamedTuple):
    name: Any
    metadata: Any
    scope: Any
    written_at: float


_memo: dict[tuple[int, str, Any, Any, Any], _Memo] = {}
_memo_lock = threading.Lock()


def forget() -> None:
    """Forget what this process recorded (a new database in tests)."""
    with _memo_lock:
        _memo.clear()


def _without_secrets(payload: Mapping[str, Any]) -> dict[str, Any]:
    recorded = dict(payload)
    context = dict(recorded.get("context") or {})
    context.pop("webtask", None)
    body = context.get("body")
    if isinstance(body, Mapping):
        context["body"] = {k: v for k, v in body.items() if k not in SECRET_PARAMS}
    recorded["context"] = context
    return recorded


def input_key(client_id: str, audience: str, requested_scope: str) -> str:
    """The deduplication key of a recorded input."""
    text = _encode([client_id, audience, " ".join(sorted(requested_scope.split()))])
    return hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()


def worth_recording(
    *, tenant_id: int, trigger_id: str, payload: Mapping[str, Any]
) -> InputRecord | None:
    """The record to write for this token request's arguments, or None when
    this process already recorded them (the common case: no allocation
    beyond the lookup). Called on the token path."""
    if not settings.TESSERA_RECORD_HOOK_INPUTS:
        return None
    client = payload.get("client") or {}
    context = payload.get("context") or {}
    body = context.get("body") or {}
    client_id, audience = client.get("id", ""), payload.get("audience", "")
    requested = body.get("scope", "")
    memo_key = (tenant_id, trigger_id, client_id, audience, requested)
    name, metadata, scope = client.get("name"), client.get("metadata"), payload.get("scope")
    now = time.monotonic()
    seen = _memo.get(memo_key)
    if (
        seen is not None
        and now - seen.written_at < REFRESH_SECONDS
        and seen.scope == scope
        and seen.name == name
        and seen.metadata == metadata
    ):
        return None
    with _memo_lock:
        if len(_memo) >= MEMO_SIZE:
            _memo.pop(next(iter(_memo)))  # the oldest written
        _memo.pop(memo_key, None)
        _memo[memo_key] = _Memo(name, metadata, scope, now)
    recorded = _without_secrets(payload)
    size = len(_encode(recorded).encode(errors="surrogatepass"))
    if size > settings.TESSERA_RECORDED_INPUT_MAX_BYTES:
        return None  # remembered all the same: a request this big is not measured again
    return InputRecord(
        tenant_id=tenant_id,
        trigger_id=trigger_id,
        key=input_key(str(client_id), str(audience), str(requested)),
        client_id=str(client_id),
        client_name=str(name or ""),
        audience=str(audience),
        requested_scope=str(requested),
        payload=recorded,
        size_bytes=size,
        seen_at=timezone.now(),
    )


def unremember(records: Iterable[InputRecord]) -> None:
    """Records that could not be written are recorded again next time."""
    with _memo_lock:
        for record in records:
            client = record.payload.get("client") or {}
            body = (record.payload.get("context") or {}).get("body") or {}
            _memo.pop(
                (
                    record.tenant_id,
                    record.trigger_id,
                    client.get("id", ""),
                    record.payload.get("audience", ""),
                    body.get("scope", ""),
                ),
                None,
            )


def write_inputs(records: list[InputRecord]) -> None:
    """Upsert the records (the latest per key wins), then keep each touched
    tenant's point to its newest ``TESSERA_RECORDED_INPUTS_PER_TENANT``."""
    latest: dict[tuple[int, str, str], InputRecord] = {}
    for record in records:
        latest[(record.tenant_id, record.trigger_id, record.key)] = record
    rows = [
        RecordedInput(
            tenant_id=r.tenant_id,
            trigger_id=r.trigger_id,
            key=r.key,
            client_id=r.client_id[:255],
            client_name=r.client_name[:255],
            audience=r.audience,
            requested_scope=r.requested_scope,
            payload=r.payload,
            size_bytes=r.size_bytes,
            last_seen_at=r.seen_at,
        )
        for r in latest.values()
    ]
    with transaction.atomic():
        RecordedInput.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["tenant", "trigger_id", "key"],
            update_fields=["client_name", "payload", "size_bytes", "last_seen_at"],
        )
        limit = settings.TESSERA_RECORDED_INPUTS_PER_TENANT
        for tenant_id, trigger_id in {(r.tenant_id, r.trigger_id) for r in latest.values()}:
            recorded = RecordedInput.objects.filter(tenant_id=tenant_id, trigger_id=trigger_id)
            beyond = list(
                recorded.order_by("-last_seen_at", "-id").values_list("pk", flat=True)[limit:]
            )
            if beyond:
                RecordedInput.objects.filter(pk__in=beyond).delete()


def prune_inputs(*, cutoff: datetime) -> int:
    """Delete inputs last seen before ``cutoff``; returns how many."""
    deleted, _ = RecordedInput.objects.filter(last_seen_at__lt=cutoff).delete()
    return deleted


def retention_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.TESSERA_HOOK_RUN_RETENTION_DAYS)
