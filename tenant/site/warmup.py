"""Warming a server process before its first request.

A fresh process would otherwise parse each tenant's signing key (≈ 50 ms
each) and load enabled hooks on the first token requests that need them.
``warm()`` runs at import of ``tenant.site.wsgi`` (so in each granian or gunicorn
worker) and is the one place more warm-up belongs.
"""

import gc
import logging
import time

from django.db import DatabaseError

from tenant import config_cache

logger = logging.getLogger(__name__)


def warm() -> None:
    """Check the KEK, then load the generation, every active signing key,
    every enabled hook, every trigger's bound Actions and each tenant's list
    of hosts its hooks may call into this process's memo. A database that
    does not answer is logged, not raised: the server starts, and
    ``/readyz`` says it is not ready. A tenant whose keys cannot be
    decrypted is logged and skipped: the others are served, and ``/readyz``
    names it. A KEK that cannot serve the database at all raises
    ``KekError``."""
    from hooks.points import POINTS
    from hooks.selectors import bound_actions_for, enabled_hook_for, tenant_egress_hosts
    from tenant.crypto import UnreadableSecretError, check_kek
    from tenant.models import Tenant
    from tenant.selectors import signing_key_active

    started = time.perf_counter()
    try:
        check_kek()
        generation = config_cache.check_now()
        with config_cache.request_scope(generation):
            tenants = list(Tenant.objects.all())
            enabled = skipped = 0
            for tenant in tenants:
                try:
                    signing_key_active(tenant=tenant)
                    for trigger_id in POINTS:  # "no hook" and "no binding" are memoised too
                        hook = enabled_hook_for(tenant=tenant, trigger_id=trigger_id)
                        enabled += hook is not None
                        bound_actions_for(tenant=tenant, trigger_id=trigger_id)
                    tenant_egress_hosts(tenant=tenant)
                except UnreadableSecretError as error:
                    skipped += 1
                    logger.error("Warm-up skipped tenant %s: %s", tenant.slug, error)
    except DatabaseError as error:
        logger.error("Warm-up skipped, the database does not answer: %s", error)
    else:
        logger.info(
            "Warmed %d tenants and %d enabled hooks in %.0f ms",
            len(tenants) - skipped,
            enabled,
            (time.perf_counter() - started) * 1000,
        )
    freeze_long_lived()


def freeze_long_lived() -> None:
    """Keep what the process has loaded so far (modules, settings, the memo)
    out of the garbage collector's passes. Without it, a full pass walks
    about 125,000 objects: measured up to 96 ms with every request waiting,
    against 2 ms after. Frozen cycles are never collected, which costs at
    most this one warm-up's worth of memory."""
    gc.collect()
    gc.freeze()
