"""Reads for tenants and their keys."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from tenant.activity import DURATION_BUCKETS_MS
from tenant.config_cache import memoized
from tenant.crypto import UnreadableSecretError, decrypt
from tenant.models import (
    MAX_TOKEN_LIFETIME,
    AuditEntry,
    HookActivity,
    SigningKey,
    Tenant,
    TokenActivity,
)


@dataclass(frozen=True)
class LoadedSigningKey:
    kid: str
    private_key: RSAPrivateKey


logger = logging.getLogger(__name__)

# Parsing a PEM costs ~50 ms; a kid never changes its key, so parse each once.
_loaded_keys: dict[str, RSAPrivateKey] = {}
# Slugs of the tenants whose active signing key this process could not
# decrypt when it last tried: their token requests answer 500, /readyz names them.
_unreadable_keys: set[str] = set()


def tenant_get(*, slug: str) -> Tenant:
    """The tenant with ``slug``; raises ``Tenant.DoesNotExist``."""
    tenant = memoized(
        ("tenant", slug),
        lambda: Tenant.objects.filter(slug=slug).first(),
        remember_missing=False,  # any path segment can be a slug
    )
    if tenant is None:
        raise Tenant.DoesNotExist(slug)
    return tenant


def tenant_for_domain(*, host: str) -> Tenant | None:
    """The tenant served on ``host`` (no port), if any."""
    host = host.lower()
    return memoized(
        ("tenant-domain", host),
        lambda: Tenant.objects.filter(domain=host).first(),
        remember_missing=False,  # any Host header
    )


def _load_active_key(tenant: Tenant) -> LoadedSigningKey:
    kid, encrypted = SigningKey.objects.filter(tenant=tenant, retired_at__isnull=True).values_list(
        "kid", "private_key_encrypted"
    )[0]
    if kid not in _loaded_keys:
        try:
            pem = decrypt(encrypted)
        except UnreadableSecretError:
            if tenant.slug not in _unreadable_keys:
                _unreadable_keys.add(tenant.slug)
                logger.error(
                    "Tenant %s: its signing key %s cannot be decrypted with this server's "
                    "TESSERA_KEK; its tokens are refused with a 500 until it can be.",
                    tenant.slug,
                    kid,
                )
            raise
        key = load_pem_private_key(pem.encode(), password=None)
        assert isinstance(key, RSAPrivateKey)
        _loaded_keys[kid] = key
    _unreadable_keys.discard(tenant.slug)
    return LoadedSigningKey(kid=kid, private_key=_loaded_keys[kid])


def signing_key_active(*, tenant: Tenant) -> LoadedSigningKey:
    """The tenant's current RS256 signing key, parsed once per process."""
    return memoized(("signing-key", tenant.pk), lambda: _load_active_key(tenant))


def tenants_with_unreadable_keys() -> list[str]:
    """The slugs of existing tenants whose signing key this process found it
    cannot decrypt (at warm-up or on a token request), sorted."""
    if not _unreadable_keys:
        return []
    slugs = Tenant.objects.filter(slug__in=_unreadable_keys).values_list("slug", flat=True)
    return sorted(slugs)


def tenant_jwks(*, tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    """The tenant's JWK Set: the active key and keys retired too recently for
    every token they signed to have expired (tokens live at most 30 days)."""
    cutoff = timezone.now() - timedelta(seconds=MAX_TOKEN_LIFETIME)
    keys = SigningKey.objects.filter(tenant=tenant).filter(
        Q(retired_at__isnull=True) | Q(retired_at__gt=cutoff)
    )
    return {"keys": [key.public_jwk for key in keys]}


def audit_entries(
    *,
    tenant: Tenant,
    object_type: str | None = None,
    object_id: object = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEntry]:
    """The tenant's audit trail, newest first, optionally of one object,
    by one actor (name or id), of one action, or within a time range
    (``since`` included, ``until`` excluded)."""
    entries = AuditEntry.objects.filter(tenant=tenant)
    if object_type is not None:
        entries = entries.filter(object_type=object_type)
    if object_id is not None:
        entries = entries.filter(object_id=str(object_id))
    if actor is not None:
        entries = entries.filter(Q(actor_name=actor) | Q(actor_id=actor))
    if action is not None:
        entries = entries.filter(action=action)
    if since is not None:
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        entries = entries.filter(created_at__lt=until)
    return entries


def recent_audit_entries(*, tenants: QuerySet[Tenant]) -> QuerySet[AuditEntry]:
    """The newest changes of several tenants (the dashboard's home page)."""
    return AuditEntry.objects.filter(tenant__in=tenants).select_related("tenant")


def audit_choices(*, tenant: Tenant) -> dict[str, list[str]]:
    """The actors, object types and actions the tenant's trail holds, for
    the audit page's filters."""
    entries = AuditEntry.objects.filter(tenant=tenant).order_by()
    return {
        "actor": sorted(set(entries.exclude(actor_name="").values_list("actor_name", flat=True))),
        "object_type": sorted(set(entries.values_list("object_type", flat=True))),
        "action": sorted(set(entries.values_list("action", flat=True))),
    }


# The landing page's two windows: how far back, and the width of a point.
ACTIVITY_WINDOWS: dict[str, tuple[int, int]] = {"hour": (3600, 60), "day": (86400, 900)}
TOP_CLIENTS = 5


def _percentile(buckets: list[int], quantile: float) -> float | None:
    """The ``quantile`` of durations counted in ``DURATION_BUCKETS_MS``
    buckets, interpolated within its bucket; None without any."""
    total = sum(buckets)
    if not total:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            lower = DURATION_BUCKETS_MS[index - 1] if index else 0
            upper = DURATION_BUCKETS_MS[min(index, len(DURATION_BUCKETS_MS) - 1)]
            return round(lower + (upper - lower) * (rank - seen) / count, 2)
        seen += count
    return float(DURATION_BUCKETS_MS[-1])


def activity_series(*, tenant: Tenant, window: str, now: datetime | None = None) -> dict[str, Any]:
    """The tenant's token requests (by outcome, by its busiest clients) and
    hook runs (p50, p99 duration in ms, error rate) over ``window``
    ("hour" or "day"), one point per step, from the pre-aggregated counts
    (``tenant.activity``): a few grouped reads, never the run records."""
    span, step = ACTIVITY_WINDOWS[window]
    now_s = int((now or timezone.now()).timestamp())
    first = (now_s // step - (span // step - 1)) * step
    points = span // step
    since = datetime.fromtimestamp(first, UTC)
    times = [first + index * step for index in range(points)]

    def slot(minute: datetime) -> int:
        return min(max(int(minute.timestamp()) - first, 0) // step, points - 1)

    tokens = TokenActivity.objects.filter(tenant=tenant, minute__gte=since).order_by()
    outcomes: dict[str, list[int]] = {}
    for minute, outcome, count in (
        tokens.values("minute", "outcome")
        .annotate(n=Sum("count"))
        .values_list("minute", "outcome", "n")
    ):
        outcomes.setdefault(outcome, [0] * points)[slot(minute)] += count
    busiest = [
        client_id
        for client_id, _ in tokens.values("client_id")
        .annotate(n=Sum("count"))
        .order_by("-n", "client_id")
        .values_list("client_id", "n")[:TOP_CLIENTS]
    ]
    clients: dict[str, list[int]] = {client_id: [0] * points for client_id in busiest}
    for minute, client_id, count in (
        tokens.filter(client_id__in=busiest)
        .values("minute", "client_id")
        .annotate(n=Sum("count"))
        .values_list("minute", "client_id", "n")
    ):
        clients[client_id][slot(minute)] += count
    totals = [sum(series[index] for series in outcomes.values()) for index in range(points)]
    shown = [sum(series[index] for series in clients.values()) for index in range(points)]
    others = [total - part for total, part in zip(totals, shown, strict=True)]

    buckets = [[0] * (len(DURATION_BUCKETS_MS) + 1) for _ in range(points)]
    failed = [0] * points
    for minute, is_failed, bucket, count in (
        HookActivity.objects.filter(tenant=tenant, minute__gte=since)
        .order_by()
        .values("minute", "failed", "bucket")
        .annotate(n=Sum("count"))
        .values_list("minute", "failed", "bucket", "n")
    ):
        index = slot(minute)
        buckets[index][min(bucket, len(DURATION_BUCKETS_MS))] += count
        if is_failed:
            failed[index] += count
    runs = [sum(point) for point in buckets]
    return {
        "window": window,
        "step": step,
        "t": times,
        "outcomes": outcomes,
        "clients": clients,
        "other_clients": others if any(others) else None,
        "requests": sum(totals),
        "runs": sum(runs),
        "p50": [_percentile(point, 0.5) for point in buckets],
        "p99": [_percentile(point, 0.99) for point in buckets],
        "error_rate": [
            round(100 * bad / total, 2) if total else None
            for bad, total in zip(failed, runs, strict=True)
        ],
    }
