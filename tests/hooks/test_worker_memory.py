"""``RLIMIT_DATA`` on hook worker processes (``TESSERA_HOOK_ISOLATION=process``):
memory each context may take within its own limit, but the worker cannot
hold in total, ends in a clean error for the run that asks for it, and the
server and the other tenants carry on."""

import hashlib
import json
from collections.abc import Iterator

import jwt
import pytest
from django.test import Client as HttpClient

from hooks.execution import close_hook_runtime
from hooks.runtime import HookCrashed, HookMemoryLimit, HookPool, Limits
from hooks.services import hook_create
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

MB = 1 << 20
ARG_NAMES = ("client", "scope", "audience", "context")
PAYLOAD = {
    "client": {"tenant": "acme", "id": "abc", "name": "Svc", "metadata": {}},
    "scope": ["read:data"],
    "audience": "https://api.example.com/",
    "context": {"ip": "203.0.113.1", "userAgent": "test", "body": {}},
}
ROOMY = Limits(timeout_ms=10_000, cpu_ms=10_000, memory_mb=512)


def hook_holding(megabytes: int) -> str:
    """A hook whose warm context keeps an ArrayBuffer of ``megabytes`` alive."""
    return (
        f"globalThis.kept = new ArrayBuffer({megabytes} * 1024 * 1024);\n"
        "module.exports = function (client, scope, audience, context, cb) {\n"
        "  cb(null, { scope: scope, 'https://example.com/kept': kept.byteLength });\n"
        "};"
    )


def run(pool: HookPool, script: str, key: str) -> object:
    return pool.run(
        context_key=(key, hashlib.sha256(script.encode()).hexdigest()),
        script=script,
        arg_names=ARG_NAMES,
        payload=PAYLOAD,
        secrets={},
        storage=None,
        limits=ROOMY,
    ).value


@pytest.fixture
def small_pool() -> Iterator[HookPool]:
    pool = HookPool(size=1, data_limit_mb=256)
    yield pool
    pool.close()


def test_an_allocation_past_the_workers_data_limit_is_a_clean_error(small_pool):
    # 300 MB is within the context's 512 MB, not within the worker's 256 MB.
    with pytest.raises((HookMemoryLimit, HookCrashed)):
        run(small_pool, hook_holding(300), "big")
    assert run(small_pool, hook_holding(1), "small") == {
        "scope": ["read:data"],
        "https://example.com/kept": MB,
    }


# --- through the token endpoint, with the product's own worker limit (1 GB) ---


@pytest.fixture
def one_worker(settings) -> Iterator[None]:
    settings.TESSERA_HOOK_ISOLATION = "process"
    settings.TESSERA_HOOK_WORKERS = 1
    close_hook_runtime()
    yield
    close_hook_runtime()


class World:
    def __init__(self, slug: str, megabytes: int) -> None:
        self.tenant = make_tenant(slug)
        self.tenant.hook_memory_mb = 512
        self.tenant.hook_timeout_ms = 10_000
        self.tenant.hook_cpu_ms = 10_000
        self.tenant.save()
        self.audience = f"https://api.{slug}.test/"
        api = make_api(self.tenant, self.audience, scopes=["read"])
        self.client, self.secret = make_client(self.tenant, {api: ["read"]})
        hook_create(
            tenant=self.tenant,
            name="h",
            script=hook_holding(megabytes),
            enabled=True,
            actor=TEST_ACTOR,
        )

    def token(self):  # type: ignore[no-untyped-def]
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.secret,
            "audience": self.audience,
        }
        return HttpClient().post(
            f"/{self.tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
        )


def kept(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return int(claims["https://example.com/kept"])


@pytest.mark.django_db
def test_warm_contexts_past_the_workers_data_limit_make_room_for_the_next(one_worker):
    # Each tenant's context holds 400 MB, within its own 512 MB; the one
    # worker they share cannot hold three of them under its 1 GB RLIMIT_DATA:
    # the oldest warm context is dropped before the third runs
    # (engine.make_room), so the third tenant is not refused for the others'.
    first, second, third = World("first", 400), World("second", 400), World("third", 400)
    assert kept(first.token()) == 400 * MB
    assert kept(second.token()) == 400 * MB

    assert kept(third.token()) == 400 * MB
    # The server goes on: a tenant with a small hook, and the first tenant
    # (its context warm again, or rebuilt in a new worker), get their tokens.
    assert kept(World("small", 1).token()) == MB
    assert kept(first.token()) == 400 * MB
