"""Hostile and careless hooks through the real token endpoint, in both
isolation modes: each costs its own request only, and neither the next
request of its tenant nor another tenant's notices."""

import json
import threading
import time

import pytest
from django.test import Client as HttpClient

from hooks.execution import close_hook_runtime
from hooks.models import Hook, HookRun
from hooks.services import hook_create, hook_secrets_set
from tenant.config_cache import invalidate
from tests.factories import TEST_ACTOR, make_api, make_client, make_tenant

pytestmark = pytest.mark.django_db
TIMEOUT_MS = 1000
MARGIN_S = 1.5
GOOD = "module.exports = function(c, s, a, ctx, cb) { cb(null, {scope: s}); };"


def hook(body: str) -> str:
    return f"module.exports = function(client, scope, audience, context, cb) {{\n{body}\n}};"


class World:
    """A tenant with an API, a client granted ``read``, and an enabled hook."""

    def __init__(self, slug: str, script: str = GOOD) -> None:
        self.tenant = make_tenant(slug)
        self.tenant.hook_timeout_ms = TIMEOUT_MS
        self.tenant.save()
        self.audience = f"https://api.{slug}.test/"
        api = make_api(self.tenant, self.audience, scopes=["read"])
        self.client, self.secret = make_client(self.tenant, {api: ["read"]})
        self.hook = hook_create(
            tenant=self.tenant, name="hook", script=script, enabled=True, actor=TEST_ACTOR
        )

    def store(self, script: str) -> None:
        """Put a script live as if it had been saved before validation existed."""
        Hook.objects.filter(pk=self.hook.pk).update(script=script)
        invalidate()

    def token(self):
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client.client_id,
            "client_secret": self.secret,
            "audience": self.audience,
        }
        return HttpClient().post(
            f"/{self.tenant.slug}/oauth/token", json.dumps(body), content_type="application/json"
        )


def claims(response) -> dict:
    import jwt

    assert response.status_code == 200, response.content
    return jwt.decode(response.json()["access_token"], options={"verify_signature": False})


SERVER_ERROR = (500, "server_error")
# name -> (script, expected (status, error), expected words in the description)
HOSTILE = {
    "sync loop": (hook("while (true) {}"), SERVER_ERROR, "timed out"),
    "loop in then": (
        hook("Promise.resolve().then(() => { while (true) {} });"),
        SERVER_ERROR,
        "timed out",
    ),
    "recursive microtasks": (
        hook("(function f() { Promise.resolve().then(f); })();"),
        SERVER_ERROR,
        "timed out",
    ),
    "self-rescheduling setTimeout": (
        hook("(function f() { setTimeout(f, 1); })();"),
        SERVER_ERROR,
        "timed out",
    ),
    "setInterval": (hook("setInterval(() => {}, 1);"), SERVER_ERROR, "timed out"),
    # Memory or time, whichever runs out first on a loaded machine; the
    # runtime suite pins the memory limit itself with a longer timeout.
    "heap bomb": (
        hook("var a = []; while (true) a.push(new Array(1e6).fill(1));"),
        SERVER_ERROR,
        "Hook e",
    ),
    "huge array fill": (hook("new Array(3e8).fill(1.5); cb(null, {});"), SERVER_ERROR, ""),
    "ArrayBuffer 2**31": (hook("new ArrayBuffer(2 ** 31); cb(null, {});"), SERVER_ERROR, ""),
    "string doubling": (hook("var s = 'x'; while (true) s += s;"), SERVER_ERROR, ""),
    "deep recursion": (
        hook("(function r() { r(); })();"),
        SERVER_ERROR,
        "Maximum call stack size exceeded",
    ),
    "cb never called": (hook("// nothing"), SERVER_ERROR, "without calling back"),
    # Fifty times the limit; the replacer refuses it without copying it.
    "5 MB result": (
        hook("cb(null, {'https://x.test/big': 'x'.repeat(5e6)});"),
        SERVER_ERROR,
        "larger than",
    ),
    "circular result": (
        hook("var o = {}; o.self = o; cb(null, o);"),
        SERVER_ERROR,
        "not JSON-serialisable",
    ),
    "throwing getter": (
        hook("cb(null, {get ['https://x.test/g']() { throw new Error('getter'); }});"),
        SERVER_ERROR,
        "getter",
    ),
    "throwing toJSON": (
        hook("cb(null, {toJSON() { throw new Error('toJSON'); }});"),
        SERVER_ERROR,
        "toJSON",
    ),
    "throw 42": (hook("throw 42;"), SERVER_ERROR, "42"),
    "throw null": (hook("throw null;"), SERVER_ERROR, "the hook threw null"),
    "cb with text": (hook("cb('text');"), SERVER_ERROR, "text"),
    "BigInt in result": (hook("cb(null, {n: 10n});"), SERVER_ERROR, "not JSON-serialisable"),
    "loop in module body": (
        "while (true) {}\nmodule.exports = function (c, s, a, ctx, cb) { cb(null, {}); };",
        SERVER_ERROR,
        "timed out",
    ),
    "module.exports = 42": ("module.exports = 42;", SERVER_ERROR, "module.exports"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_hook_costs_its_own_request_only(isolation, name):
    script, (status, error), words = HOSTILE[name]
    hostile, neighbour = World("hostile"), World("neighbour")
    hostile.store(script)

    started = time.monotonic()
    response = hostile.token()

    assert time.monotonic() - started < TIMEOUT_MS / 1000 + MARGIN_S
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json()["error"] == error
    assert words in response.json()["error_description"]
    assert claims(neighbour.token())["scope"] == "read"
    hostile.store(GOOD)
    assert claims(hostile.token())["scope"] == "read"


@pytest.mark.parametrize(
    "body, expected",
    [
        ("cb(null, {scope: ['first']}); cb(null, {scope: ['second']});", "first"),
        (
            "for (var i = 0; i < 200; i++) console.log('x'.repeat(5e4));"
            " cb(null, {scope: ['ok']});",
            "ok",
        ),
        ("cb(null, {scope: ['ok'], 'https://x.test/s': Symbol('s')});", "ok"),
    ],
    ids=["cb twice: the first counts", "10 MB of console output", "a Symbol is dropped"],
)
def test_careless_hook_still_gets_its_token(isolation, body, expected):
    world = World("careless", hook(body))

    assert claims(world.token())["scope"] == expected
    run = HookRun.objects.get(hook=world.hook)
    assert len(run.console.encode()) <= 16_384 + 100


def test_the_host_is_out_of_reach(isolation):
    world = World(
        "prober",
        hook(
            "var g = this.constructor.constructor('return this')();\n"
            "var names = Object.getOwnPropertyNames(g).filter((n) => typeof g[n] === 'function');\n"
            "cb(null, {scope: ['read'], 'https://x.test/globals': names.sort(),\n"
            "  'https://x.test/same': g === globalThis, 'https://x.test/host': typeof __tessera_host});"
        ),
    )

    token = claims(world.token())

    assert token["https://x.test/same"] is True
    assert token["https://x.test/host"] == "undefined"
    standard = {
        "Object",
        "Function",
        "Array",
        "Number",
        "Boolean",
        "String",
        "Symbol",
        "BigInt",
        "Date",
        "RegExp",
        "Error",
        "EvalError",
        "RangeError",
        "ReferenceError",
        "SyntaxError",
        "TypeError",
        "URIError",
        "InternalError",
        "AggregateError",
        "SuppressedError",
        "Promise",
        "Proxy",
        "Map",
        "Set",
        "WeakMap",
        "WeakSet",
        "WeakRef",
        "FinalizationRegistry",
        "ArrayBuffer",
        "SharedArrayBuffer",
        "DataView",
        "Int8Array",
        "Uint8Array",
        "Uint8ClampedArray",
        "Int16Array",
        "Uint16Array",
        "Int32Array",
        "Uint32Array",
        "BigInt64Array",
        "BigUint64Array",
        "Float16Array",
        "Float32Array",
        "Float64Array",
        "Iterator",
        "DisposableStack",
        "AsyncDisposableStack",
        "DOMException",
        "parseInt",
        "parseFloat",
        "isNaN",
        "isFinite",
        "decodeURI",
        "decodeURIComponent",
        "encodeURI",
        "encodeURIComponent",
        "escape",
        "unescape",
        "eval",
        "queueMicrotask",
        "btoa",
        "atob",
    }
    documented = {
        "InvalidScopeError",
        "InvalidRequestError",
        "ServerError",
        "setTimeout",
        "setInterval",
        "setImmediate",
        "clearTimeout",
        "clearInterval",
        "clearImmediate",
        # fetch, done by the host under the egress policy (web.js)
        "fetch",
        "Headers",
        "Request",
        "Response",
        "AbortController",
        "AbortSignal",
        "TextEncoder",
        "TextDecoder",
        "URL",
        "URLSearchParams",
        "Blob",
        "File",
        "FormData",
        # CommonJS require and Node's Buffer global (modules.js)
        "require",
        "Buffer",
    }
    assert set(token["https://x.test/globals"]) <= standard | documented


def test_prototype_pollution_stays_in_its_own_tenant(isolation):
    polluter = World(
        "polluter",
        hook("Object.prototype.polluted = 'yes'; Array.prototype.push = null; cb(null, {});"),
    )
    victim = World(
        "victim",
        hook(
            "var s = []; s.push('read'); cb(null, {scope: s, 'https://x.test/p': ({}).polluted || 'no'});"
        ),
    )

    assert polluter.token().status_code == 200
    assert claims(victim.token())["https://x.test/p"] == "no"


CACHING_HOOK = hook(
    "globalThis.cached = globalThis.cached || context.webtask.secrets.API_KEY;\n"
    "cb(null, {scope: scope, 'https://x.test/key': globalThis.cached});"
)


def test_two_tenants_with_one_script_never_see_each_others_secrets(isolation):
    first, second = World("first", CACHING_HOOK), World("second", CACHING_HOOK)
    hook_secrets_set(hook=first.hook, secrets={"API_KEY": "first-secret"}, actor=TEST_ACTOR)
    hook_secrets_set(hook=second.hook, secrets={"API_KEY": "second-secret"}, actor=TEST_ACTOR)

    for _ in range(2):
        assert claims(first.token())["https://x.test/key"] == "first-secret"
        assert claims(second.token())["https://x.test/key"] == "second-secret"


def test_a_test_run_never_shares_globals_with_token_runs(isolation):
    from hooks.trial_run import hook_test_run

    world = World("runner", CACHING_HOOK)
    hook_secrets_set(hook=world.hook, secrets={"API_KEY": "live"}, actor=TEST_ACTOR)
    assert claims(world.token())["https://x.test/key"] == "live"
    hook_secrets_set(hook=world.hook, secrets={"API_KEY": "edited"}, actor=TEST_ACTOR)

    report = hook_test_run(
        tenant=world.tenant,
        script=CACHING_HOOK,
        payload={"scope": ["read"], "context": {}},
        hook=world.hook,
    )

    assert report.claims == {"https://x.test/key": "edited"}


def test_breaker_fails_a_repeatedly_timing_out_hook_fast(isolation, settings):
    looping, neighbour = World("looping"), World("calm")
    # Wall-clock timeouts that cost little CPU: the breaker waits for a few.
    looping.store(hook("(function f() { setTimeout(f, 1); })();"))
    for _ in range(settings.TESSERA_HOOK_BREAKER_FAILURES):
        assert looping.token().status_code == 500

    started = time.monotonic()
    refused = looping.token()

    assert time.monotonic() - started < 0.5
    assert refused.status_code == 503
    assert refused.json()["error"] == "temporarily_unavailable"
    assert int(refused["Retry-After"]) >= 1
    outcomes = list(HookRun.objects.filter(hook=looping.hook).values_list("outcome", flat=True))
    assert outcomes.count("timeout") == settings.TESSERA_HOOK_BREAKER_FAILURES
    assert outcomes.count("refused") == 1
    assert claims(neighbour.token())["scope"] == "read"
    # A new version of the hook is a new context, with a closed breaker.
    looping.store(GOOD)
    assert claims(looping.token())["scope"] == "read"


@pytest.mark.django_db(transaction=True)
def test_a_hooks_throw_null_is_its_own_error_and_never_opens_the_breaker(isolation, settings):
    throwing, neighbour = World("throwing", hook("throw null;")), World("calm")

    for _ in range(settings.TESSERA_HOOK_BREAKER_FAILURES + 2):
        response = throwing.token()
        assert response.status_code == 500, response.content
        assert response.json()["error"] == "server_error"
        assert "the hook threw null" in response.json()["error_description"]
        assert "memory" not in response.json()["error_description"]

    outcomes = set(HookRun.objects.filter(hook=throwing.hook).values_list("outcome", flat=True))
    assert outcomes == {"error"}
    assert claims(neighbour.token())["scope"] == "read"


def test_a_heap_bomb_of_small_objects_is_a_memory_failure_at_the_token_endpoint(isolation):
    bomb = World("bomb", hook("var a = [];\nwhile (true) a.push({a: 1, b: [1, 2, 3]});"))
    bomb.tenant.hook_memory_mb = 32
    bomb.tenant.hook_timeout_ms = 15000
    bomb.tenant.hook_cpu_ms = 10000
    bomb.tenant.save()
    invalidate()

    response = bomb.token()

    assert response.status_code == 500, response.content
    assert "Hook exceeded its memory limit" in response.json()["error_description"]
    assert HookRun.objects.get(hook=bomb.hook).outcome == "memory"


@pytest.mark.django_db(transaction=True)
def test_a_tenant_over_its_concurrency_cap_is_refused_and_others_are_not(
    isolation, settings, live_server
):
    import urllib.error
    import urllib.request

    settings.TESSERA_HOOK_TENANT_CONCURRENCY = 1
    settings.PUBLIC_URL = live_server.url
    close_hook_runtime()
    slow, other = World("slow", hook("setTimeout(() => cb(null, {scope}), 600);")), World("other")

    def post(world: World) -> tuple[int, dict]:
        body = json.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": world.client.client_id,
                "client_secret": world.secret,
                "audience": world.audience,
            }
        ).encode()
        request = urllib.request.Request(
            f"{live_server.url}/{world.tenant.slug}/oauth/token",
            body,
            {"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    results: list[tuple[int, dict]] = []
    threads = [threading.Thread(target=lambda: results.append(post(slow))) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    assert post(other)[0] == 200
    for thread in threads:
        thread.join()

    statuses = sorted(status for status, _ in results)
    assert statuses[0] == 200
    assert 429 in statuses
    refused = next(body for status, body in results if status == 429)
    assert refused["error"] == "too_many_requests"


def test_a_run_that_burns_its_cpu_budget_trips_the_breaker_at_once(isolation):
    looping, neighbour = World("burner"), World("quiet")
    looping.tenant.hook_cpu_ms = 200
    looping.tenant.save()
    looping.store(hook("while (true) {}"))

    first = looping.token()
    started = time.monotonic()
    second = looping.token()

    assert (first.status_code, first.json()["error"]) == (500, "server_error")
    assert time.monotonic() - started < 0.5
    assert (second.status_code, second.json()["error"]) == (503, "temporarily_unavailable")
    run = HookRun.objects.filter(hook=looping.hook).earliest("started_at")
    assert "CPU budget of 200 ms" in run.error
    assert claims(neighbour.token())["scope"] == "read"
