"""The hook runtime, through its public interface only (no Django needed)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from hooks.runtime import (
    HookCrashed,
    HookError,
    HookMemoryLimit,
    HookPool,
    HookResultError,
    HookSyntaxError,
    HookTimeout,
    Limits,
    RunResult,
    StorageSnapshot,
)

ARG_NAMES = ("client", "scope", "audience", "context")
SHORT = Limits(timeout_ms=1000)
# Deadline overrun allowed for the timeout report itself (worker shutdown, IPC).
MARGIN_S = 1.0

SEED_HOOK = """module.exports = function(client, scope, audience, context, cb) {
  var access_token = {};
  access_token['https://foo.com/claim'] = 'bar';
  access_token.scope = scope;
  access_token.scope.push('extra');
  cb(null, access_token);
};"""
GOOD_HOOK = (
    "module.exports = function (client, scope, audience, context, cb) { cb(null, {ok: true}); };"
)


@pytest.fixture
def pool() -> Iterator[HookPool]:
    # One worker, so "the next run" lands where the hostile one ran.
    hook_pool = HookPool(size=1)
    yield hook_pool
    hook_pool.close()


def payload(**overrides: Any) -> dict[str, Any]:
    return {
        "client": {"tenant": "acme", "id": "abc", "name": "Svc", "metadata": {}},
        "scope": ["read:data"],
        "audience": "https://api.example.com/",
        "context": {"ip": "203.0.113.1", "userAgent": "test", "body": {}},
        **overrides,
    }


def run(
    pool: HookPool,
    script: str,
    *,
    limits: Limits = SHORT,
    secrets: Mapping[str, str] | None = None,
    storage: StorageSnapshot | None = None,
    args: Mapping[str, Any] | None = None,
) -> RunResult:
    return pool.run(
        script=script,
        version=hashlib.sha256(script.encode()).hexdigest(),
        arg_names=ARG_NAMES,
        payload=payload() if args is None else args,
        secrets=secrets or {},
        storage=storage,
        limits=limits,
    )


def hook(body: str) -> str:
    return f"module.exports = function (client, scope, audience, context, cb) {{\n{body}\n}};"


def assert_pool_still_works(pool: HookPool) -> None:
    started = time.monotonic()
    assert run(pool, GOOD_HOOK).value == {"ok": True}
    assert time.monotonic() - started < 5


# ---- semantics ------------------------------------------------------------------


def test_seed_hook_adds_claim_and_extra_scope(pool: HookPool) -> None:
    result = run(pool, SEED_HOOK)

    assert result.value == {"https://foo.com/claim": "bar", "scope": ["read:data", "extra"]}
    assert result.duration_ms > 0
    assert result.storage_write is None


def test_synchronous_callback_value_is_returned(pool: HookPool) -> None:
    assert run(pool, hook("cb(null, {n: 1, s: 'x', a: [true, null]});")).value == {
        "n": 1,
        "s": "x",
        "a": [True, None],
    }


def test_callback_after_promise_is_awaited(pool: HookPool) -> None:
    script = hook("Promise.resolve(2).then((n) => n * 21).then((n) => cb(null, {n}));")

    assert run(pool, script).value == {"n": 42}


@pytest.mark.parametrize("delay", [0, 1, 30])
def test_callback_after_set_timeout_is_awaited(pool: HookPool, delay: int) -> None:
    script = hook(f"setTimeout(() => cb(null, {{delay: {delay}}}), {delay});")

    assert run(pool, script).value == {"delay": delay}


def test_async_function_return_value_is_the_result(pool: HookPool) -> None:
    script = """module.exports = async function (client, scope, audience, context) {
      await null;
      return {aud: audience};
    };"""

    assert run(pool, script).value == {"aud": "https://api.example.com/"}


def test_async_function_rejection_is_a_hook_error(pool: HookPool) -> None:
    script = "module.exports = async function () {\n  await null;\n  throw new Error('nope');\n};"

    with pytest.raises(HookError) as caught:
        run(pool, script)

    assert type(caught.value) is HookError
    assert (caught.value.name, caught.value.message, caught.value.line) == ("Error", "nope", 3)


def test_only_the_first_callback_counts(pool: HookPool) -> None:
    script = hook("cb(null, {first: true});\ncb(null, {second: true});\ncb(new Error('late'));")

    assert run(pool, script).value == {"first": True}


def test_callback_without_value_gives_none(pool: HookPool) -> None:
    assert run(pool, hook("cb();")).value is None


def test_thrown_error_reports_name_message_and_user_line(pool: HookPool) -> None:
    script = (
        "// line 1\n"
        "module.exports = function () {\n"
        "  var x = 1;\n"
        "  throw new TypeError('bad ' + x);\n"
        "};"
    )

    with pytest.raises(HookError) as caught:
        run(pool, script)

    error = caught.value
    assert (error.name, error.message, error.line, error.column) == ("TypeError", "bad 1", 4, 9)
    assert error.duration_ms > 0


def test_error_in_a_warm_hook_has_the_users_line(pool: HookPool) -> None:
    script = "var calls = 0;\n" + hook(
        "calls += 1;\nif (calls > 1) throw new Error('again');\ncb();"
    )
    run(pool, script)

    with pytest.raises(HookError) as caught:
        run(pool, script)

    assert (caught.value.message, caught.value.line) == ("again", 4)


def test_error_on_first_line_has_the_users_column(pool: HookPool) -> None:
    with pytest.raises(HookError) as caught:
        run(pool, "module.exports = () => { throw new Error('x'); };")

    assert (caught.value.line, caught.value.column) == (1, 32)


@pytest.mark.parametrize("name", ["InvalidScopeError", "InvalidRequestError", "ServerError"])
def test_oauth_error_classes_keep_their_names(pool: HookPool, name: str) -> None:
    script = hook(f"var e = new {name}('denied');\ncb(e);")

    with pytest.raises(HookError) as caught:
        run(pool, script)

    assert (caught.value.name, caught.value.message, caught.value.line) == (name, "denied", 2)


def test_non_error_passed_to_callback_becomes_the_message(pool: HookPool) -> None:
    with pytest.raises(HookError) as caught:
        run(pool, hook("cb('denied');"))

    assert (caught.value.name, caught.value.message, caught.value.line) == ("Error", "denied", None)


def test_module_exports_must_be_a_function(pool: HookPool) -> None:
    with pytest.raises(HookError) as caught:
        run(pool, "module.exports = 42;")

    assert caught.value.name == "TypeError"
    assert "module.exports" in caught.value.message


def test_hook_error_keeps_the_warm_context(pool: HookPool) -> None:
    script = "var calls = 0;\n" + hook(
        "calls += 1;\nif (calls === 1) cb('first'); else cb(null, {calls});"
    )

    with pytest.raises(HookError):
        run(pool, script)

    assert run(pool, script).value == {"calls": 2}


def test_a_warm_hook_serves_many_distinct_requests_within_its_memory_limit(
    pool: HookPool,
) -> None:
    # Each request's arguments differ (client, IP, body...), and V8 caches
    # each run's source: that garbage once reached the heap limit before V8
    # collected it, and a trivial hook failed for memory after enough requests.
    limits = Limits(timeout_ms=5000, memory_mb=32)
    for n in range(1500):
        args = payload(context={"ip": "203.0.113.1", "body": {"n": f"{n:05d}" * 3000}})
        assert run(pool, SEED_HOOK, limits=limits, args=args).value["scope"] == [
            "read:data",
            "extra",
        ]


# ---- syntax -----------------------------------------------------------------------


def test_syntax_error_reports_line_and_column(pool: HookPool) -> None:
    script = "module.exports = function (a, b, c, d, cb) {\n  var x = ;\n};"

    with pytest.raises(HookSyntaxError) as caught:
        run(pool, script)

    error = caught.value
    assert (error.name, error.line, error.column) == ("SyntaxError", 2, 11)
    assert "Unexpected token" in error.message


def test_check_syntax_reports_line_and_column(pool: HookPool) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        pool.check_syntax("var ok = 1;\nfoo bar;", SHORT)

    assert (caught.value.line, caught.value.column) == (2, 5)


def test_check_syntax_on_line_one_gives_the_users_column(pool: HookPool) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        pool.check_syntax("var = 1;", SHORT)

    assert (caught.value.line, caught.value.column) == (1, 5)


def test_check_syntax_compiles_without_running(pool: HookPool) -> None:
    started = time.monotonic()

    pool.check_syntax("while (true) {}\nmodule.exports = function () {};", SHORT)

    assert time.monotonic() - started < 1


def test_unclosed_brace_is_reported_within_the_script(pool: HookPool) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        pool.check_syntax("module.exports = function () {\n  if (x) {\n", SHORT)

    assert caught.value.line is not None and caught.value.line <= 3


# ---- hostile hooks: time ---------------------------------------------------------------

HANGING_HOOKS = {
    "sync_loop": hook("while (true) {}"),
    "loop_in_then": hook("Promise.resolve().then(() => { while (true) {} });"),
    "loop_after_await": "module.exports = async function () { await null; while (true) {} };",
    "loop_in_set_timeout": hook("setTimeout(() => { while (true) {} }, 5);"),
    "never_calls_back": hook("// nothing"),
    "loop_in_then_after_callback": hook(
        "cb(null, {});\nPromise.resolve().then(() => { while (true) {} });"
    ),
    "top_level_loop": "while (true) {}\nmodule.exports = function () {};",
}


@pytest.mark.parametrize("script", HANGING_HOOKS.values(), ids=HANGING_HOOKS.keys())
def test_hanging_hook_times_out_and_the_next_run_succeeds(pool: HookPool, script: str) -> None:
    started = time.monotonic()

    with pytest.raises(HookTimeout) as caught:
        run(pool, script)

    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + MARGIN_S
    assert caught.value.duration_ms >= 1000
    assert "1000 ms" in caught.value.message
    assert_pool_still_works(pool)


LEFTOVER_TIMERS = {
    "set_before_callback": hook(
        "setTimeout(function spin() { while (true) {} }, 20);\ncb(null, {done: true});"
    ),
    "set_after_callback": hook(
        "cb(null, {done: true});\nsetTimeout(function spin() { while (true) {} }, 1);"
    ),
    "interval": hook(
        "setInterval(function spin() { while (true) {} }, 20);\ncb(null, {done: true});"
    ),
}


@pytest.mark.parametrize("script", LEFTOVER_TIMERS.values(), ids=LEFTOVER_TIMERS.keys())
def test_timer_left_after_callback_never_slows_a_later_run(pool: HookPool, script: str) -> None:
    assert run(pool, script).value == {"done": True}
    time.sleep(0.1)  # the timer is due now

    started = time.monotonic()
    assert run(pool, script).value == {"done": True}
    assert time.monotonic() - started < 0.5


def test_console_output_before_a_timeout_is_kept(pool: HookPool) -> None:
    with pytest.raises(HookTimeout) as caught:
        run(pool, hook("console.log('about to spin');\nwhile (true) {}"))

    assert caught.value.console == "about to spin\n"


# ---- hostile hooks: memory and size -----------------------------------------------------


def test_heap_bomb_hits_the_memory_limit_and_the_next_run_succeeds(pool: HookPool) -> None:
    with pytest.raises(HookMemoryLimit):
        run(pool, hook("var a = [];\nwhile (true) a.push(new Array(1e6));"), limits=Limits())

    assert_pool_still_works(pool)


def test_array_buffer_bomb_hits_the_memory_limit_and_the_next_run_succeeds(
    pool: HookPool,
) -> None:
    script = hook("var a = [];\nwhile (true) a.push(new ArrayBuffer(2 ** 31));")

    with pytest.raises(HookMemoryLimit):
        run(pool, script, limits=Limits())

    assert_pool_still_works(pool)


def test_huge_array_fill_cannot_take_down_the_caller(pool: HookPool) -> None:
    # Kills a V8 process whatever the heap limit: the worker dies, not us.
    script = hook("new Array(3e8).fill(1.5);\ncb(null, {});")

    with pytest.raises((HookMemoryLimit, HookCrashed)):
        run(pool, script, limits=Limits(timeout_ms=15000))

    assert_pool_still_works(pool)


def test_huge_string_result_is_refused_quickly(pool: HookPool) -> None:
    started = time.monotonic()

    with pytest.raises(HookResultError) as caught:
        run(pool, hook("cb(null, 'x'.repeat(100 * 1024 * 1024));"), limits=Limits())

    assert time.monotonic() - started < 2
    assert "larger than 100000 bytes" in caught.value.message
    assert_pool_still_works(pool)


def test_result_over_the_limit_inside_an_object_is_refused(pool: HookPool) -> None:
    with pytest.raises(HookResultError):
        run(pool, hook("cb(null, {a: 'é'.repeat(60000)});"))


@pytest.mark.parametrize(
    "value",
    ["{n: 10n}", "(() => { var o = {}; o.self = o; return o; })()"],
    ids=["bigint", "cyclic"],
)
def test_result_that_is_not_json_is_a_result_error(pool: HookPool, value: str) -> None:
    with pytest.raises(HookResultError) as caught:
        run(pool, hook(f"cb(null, {value});"))

    assert "not JSON-serialisable" in caught.value.message


def test_script_over_the_size_limit_is_refused(pool: HookPool) -> None:
    with pytest.raises(HookError, match="larger than 100 bytes"):
        run(pool, GOOD_HOOK + " " * 100, limits=Limits(max_script_bytes=100))


def test_worker_killed_from_outside_is_replaced(pool: HookPool) -> None:
    run(pool, GOOD_HOOK)
    (pid,) = pool.worker_pids()

    os.kill(pid, 9)
    time.sleep(0.05)

    assert_pool_still_works(pool)
    assert pool.worker_pids() != [pid]


# ---- isolation ------------------------------------------------------------------------


def test_argument_mutation_does_not_leak(pool: HookPool) -> None:
    args = payload()
    script = hook("scope.push('mutated');\nclient.name = 'changed';\ncb(null, {scope});")

    assert run(pool, script, args=args).value == {"scope": ["read:data", "mutated"]}
    assert run(pool, script, args=args).value == {"scope": ["read:data", "mutated"]}
    assert args == payload()


def test_node_and_web_apis_are_absent(pool: HookPool) -> None:
    script = hook(
        "cb(null, [typeof require, typeof process, typeof fetch, typeof XMLHttpRequest,"
        " typeof Buffer]);"
    )

    assert run(pool, script).value == ["undefined"] * 5


def test_hook_versions_do_not_share_globals(pool: HookPool) -> None:
    first = hook("globalThis.leak = context.webtask.secrets.API_KEY;\ncb(null, {});")
    second = hook("cb(null, {leak: typeof leak, other: typeof globalThis.leak});")

    run(pool, first, secrets={"API_KEY": "first-tenant-secret"})

    assert run(pool, second).value == {"leak": "undefined", "other": "undefined"}


def test_secrets_are_in_context_webtask(pool: HookPool) -> None:
    script = hook("cb(null, {key: context.webtask.secrets.API_KEY, ip: context.ip});")

    result = run(pool, script, secrets={"API_KEY": "s3cret"})

    assert result.value == {"key": "s3cret", "ip": "203.0.113.1"}


def test_changed_secrets_reach_a_warm_hook(pool: HookPool) -> None:
    script = hook("cb(null, context.webtask.secrets.API_KEY);")

    assert run(pool, script, secrets={"API_KEY": "old"}).value == "old"
    assert run(pool, script, secrets={"API_KEY": "new"}).value == "new"


def test_worker_environment_excludes_the_parents(
    monkeypatch: pytest.MonkeyPatch, pool: HookPool
) -> None:
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:pw@db/tessera")
    run(pool, GOOD_HOOK)
    (pid,) = pool.worker_pids()

    with open(f"/proc/{pid}/environ", "rb") as environ:
        names = {entry.split(b"=", 1)[0] for entry in environ.read().split(b"\0") if entry}
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        argv = cmdline.read().split(b"\0")

    assert names <= {b"PATH", b"LANG"}
    assert b"-I" in argv


# ---- console --------------------------------------------------------------------------


def test_console_output_is_captured(pool: HookPool) -> None:
    script = hook(
        "console.log('hello', 42, {a: [1]});\nconsole.error('%s=%d', 'n', 7);\ncb(null, {});"
    )

    assert run(pool, script).console == 'hello 42 {"a":[1]}\nn=7\n'


def test_console_output_is_bounded_and_marked(pool: HookPool) -> None:
    script = hook("for (var i = 0; i < 1000; i++) console.log('x'.repeat(100));\ncb(null, {});")

    console = run(pool, script, limits=Limits(max_log_bytes=1000)).console

    assert console.startswith("x" * 100 + "\n")
    assert console.endswith("[console output truncated]\n")
    assert len(console) < 1100


def test_console_output_is_kept_on_error(pool: HookPool) -> None:
    with pytest.raises(HookError) as caught:
        run(pool, hook("console.log('checking');\ncb(new Error('denied'));"))

    assert caught.value.console == "checking\n"


def test_console_output_starts_empty_on_each_run(pool: HookPool) -> None:
    script = hook("console.log('once');\ncb(null, {});")

    run(pool, script)

    assert run(pool, script).console == "once\n"


# ---- storage --------------------------------------------------------------------------


def test_storage_round_trip_comes_back_as_a_write(pool: HookPool) -> None:
    script = hook(
        "context.webtask.storage.get(function (error, data) {\n"
        "  data.count += 1;\n"
        "  context.webtask.storage.set(data, {force: 1}, function (error) {\n"
        "    cb(error, {seen: data.count});\n"
        "  });\n"
        "});"
    )

    result = run(pool, script, storage=StorageSnapshot(data={"count": 1}, etag="e1"))

    assert result.value == {"seen": 2}
    assert result.storage_write is not None
    assert (result.storage_write.data, result.storage_write.force) == ({"count": 2}, True)
    assert result.storage_write.base_etag == "e1"


def test_storage_without_snapshot_gets_undefined(pool: HookPool) -> None:
    script = hook("context.webtask.storage.get((error, data) => cb(error, typeof data));")

    assert run(pool, script).value == "undefined"


def test_storage_set_over_the_limit_calls_back_with_an_error(pool: HookPool) -> None:
    script = hook(
        "context.webtask.storage.set({big: 'x'.repeat(2000)}, function (error) {\n"
        "  cb(null, {error: error && error.message});\n"
        "});"
    )

    result = run(pool, script, limits=Limits(max_storage_bytes=1000))

    assert result.value == {"error": "storage data is larger than 1000 bytes"}
    assert result.storage_write is None


# ---- the pool -------------------------------------------------------------------------


def test_pool_serves_concurrent_threads() -> None:
    hook_pool = HookPool(size=2)
    results: list[Any] = []

    def worker(n: int) -> None:
        for _ in range(20):
            results.append(run(hook_pool, hook(f"cb(null, {n});")).value)

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        hook_pool.close()

    assert sorted(results) == sorted([0, 1, 2, 3] * 20)


def test_pool_works_in_a_forked_child(pool: HookPool) -> None:
    run(pool, GOOD_HOOK)

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        ok = False
        try:
            ok = run(pool, GOOD_HOOK).value == {"ok": True}
            pool.close()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert_pool_still_works(pool)
