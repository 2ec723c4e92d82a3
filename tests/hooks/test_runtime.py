"""The hook runtime, through its public interface only (no Django needed).

One behaviour suite for both isolation modes: every test that takes
``runtime`` runs against the in-process runtime and the worker pool."""

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
    HookStalled,
    HookSyntaxError,
    HookTimeout,
    InProcessRuntime,
    Limits,
    RunResult,
    StorageSnapshot,
)
from tests.factories import SEED_HOOK

Runtime = InProcessRuntime | HookPool

ARG_NAMES = ("client", "scope", "audience", "context")
# Wall clock and CPU budget alike: whichever a hanging hook meets first ends it at 1 s.
SHORT = Limits(timeout_ms=1000, cpu_ms=1000)
# Deadline overrun allowed for the timeout report itself (worker shutdown, IPC).
MARGIN_S = 1.0

GOOD_HOOK = (
    "module.exports = function (client, scope, audience, context, cb) { cb(null, {ok: true}); };"
)


@pytest.fixture(params=["inprocess", "process"])
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    # One worker, so "the next run" lands where the hostile one ran.
    engine: Runtime = InProcessRuntime() if request.param == "inprocess" else HookPool(size=1)
    yield engine
    engine.close()


@pytest.fixture
def pool() -> Iterator[HookPool]:
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
    runtime: Runtime,
    script: str,
    *,
    limits: Limits = SHORT,
    secrets: Mapping[str, str] | None = None,
    storage: StorageSnapshot | None = None,
    args: Mapping[str, Any] | None = None,
    key: str = "acme",
) -> RunResult:
    return runtime.run(
        context_key=(key, hashlib.sha256(script.encode()).hexdigest()),
        script=script,
        arg_names=ARG_NAMES,
        payload=payload() if args is None else args,
        secrets=secrets or {},
        storage=storage,
        limits=limits,
    )


def hook(body: str) -> str:
    return f"module.exports = function (client, scope, audience, context, cb) {{\n{body}\n}};"


def assert_still_works(runtime: Runtime) -> None:
    started = time.monotonic()
    assert run(runtime, GOOD_HOOK).value == {"ok": True}
    assert time.monotonic() - started < 5


# ---- semantics ------------------------------------------------------------------


def test_seed_hook_adds_claim_and_extra_scope(runtime: Runtime) -> None:
    result = run(runtime, SEED_HOOK)

    assert result.value == {"https://foo.com/claim": "bar", "scope": ["read:data", "extra"]}
    assert result.duration_ms > 0
    assert result.storage_write is None


def test_synchronous_callback_value_is_returned(runtime: Runtime) -> None:
    assert run(runtime, hook("cb(null, {n: 1, s: 'x', a: [true, null]});")).value == {
        "n": 1,
        "s": "x",
        "a": [True, None],
    }


def test_callback_after_promise_is_awaited(runtime: Runtime) -> None:
    script = hook("Promise.resolve(2).then((n) => n * 21).then((n) => cb(null, {n}));")

    assert run(runtime, script).value == {"n": 42}


@pytest.mark.parametrize("delay", [0, 1, 30])
def test_callback_after_set_timeout_is_awaited(runtime: Runtime, delay: int) -> None:
    script = hook(f"setTimeout(() => cb(null, {{delay: {delay}}}), {delay});")

    assert run(runtime, script).value == {"delay": delay}


def test_async_function_return_value_is_the_result(runtime: Runtime) -> None:
    script = """module.exports = async function (client, scope, audience, context) {
      await null;
      return {aud: audience};
    };"""

    assert run(runtime, script).value == {"aud": "https://api.example.com/"}


def test_async_function_rejection_is_a_hook_error(runtime: Runtime) -> None:
    script = "module.exports = async function () {\n  await null;\n  throw new Error('nope');\n};"

    with pytest.raises(HookError) as caught:
        run(runtime, script)

    assert type(caught.value) is HookError
    assert (caught.value.name, caught.value.message, caught.value.line) == ("Error", "nope", 3)


def test_only_the_first_callback_counts(runtime: Runtime) -> None:
    script = hook("cb(null, {first: true});\ncb(null, {second: true});\ncb(new Error('late'));")

    assert run(runtime, script).value == {"first": True}


def test_callback_without_value_gives_none(runtime: Runtime) -> None:
    assert run(runtime, hook("cb();")).value is None


def test_thrown_error_reports_name_message_and_user_line(runtime: Runtime) -> None:
    script = (
        "// line 1\n"
        "module.exports = function () {\n"
        "  var x = 1;\n"
        "  throw new TypeError('bad ' + x);\n"
        "};"
    )

    with pytest.raises(HookError) as caught:
        run(runtime, script)

    error = caught.value
    assert (error.name, error.message, error.line, error.column) == ("TypeError", "bad 1", 4, 32)
    assert error.duration_ms > 0


def test_error_in_a_warm_hook_has_the_users_line(runtime: Runtime) -> None:
    script = "var calls = 0;\n" + hook(
        "calls += 1;\nif (calls > 1) throw new Error('again');\ncb();"
    )
    run(runtime, script)

    with pytest.raises(HookError) as caught:
        run(runtime, script)

    assert (caught.value.message, caught.value.line) == ("again", 4)


def test_error_on_first_line_has_the_users_column(runtime: Runtime) -> None:
    with pytest.raises(HookError) as caught:
        run(runtime, "module.exports = () => { throw new Error('x'); };")

    assert (caught.value.line, caught.value.column) == (1, 36)


@pytest.mark.parametrize("name", ["InvalidScopeError", "InvalidRequestError", "ServerError"])
def test_oauth_error_classes_keep_their_names(runtime: Runtime, name: str) -> None:
    script = hook(f"var e = new {name}('denied');\ncb(e);")

    with pytest.raises(HookError) as caught:
        run(runtime, script)

    assert (caught.value.name, caught.value.message, caught.value.line) == (name, "denied", 2)


def test_non_error_passed_to_callback_becomes_the_message(runtime: Runtime) -> None:
    with pytest.raises(HookError) as caught:
        run(runtime, hook("cb('denied');"))

    assert (caught.value.name, caught.value.message, caught.value.line) == ("Error", "denied", None)


def test_module_exports_must_be_a_function(runtime: Runtime) -> None:
    with pytest.raises(HookError) as caught:
        run(runtime, "module.exports = 42;")

    assert caught.value.name == "TypeError"
    assert "module.exports" in caught.value.message


def test_hook_error_keeps_the_warm_context(runtime: Runtime) -> None:
    script = "var calls = 0;\n" + hook(
        "calls += 1;\nif (calls === 1) cb('first'); else cb(null, {calls});"
    )

    with pytest.raises(HookError):
        run(runtime, script)

    assert run(runtime, script).value == {"calls": 2}


def test_a_warm_hook_serves_many_distinct_requests_within_its_memory_limit(
    runtime: Runtime,
) -> None:
    # Each request's arguments differ (client, IP, body...), and V8 caches
    # each run's source: that garbage once reached the heap limit before V8
    # collected it, and a trivial hook failed for memory after enough requests.
    limits = Limits(timeout_ms=5000, memory_mb=32)
    for n in range(1500):
        args = payload(context={"ip": "203.0.113.1", "body": {"n": f"{n:05d}" * 3000}})
        assert run(runtime, SEED_HOOK, limits=limits, args=args).value["scope"] == [
            "read:data",
            "extra",
        ]


# ---- syntax -----------------------------------------------------------------------


def check(runtime: Runtime, script: str, limits: Limits) -> str:
    return runtime.check(script=script, limits=limits)


def test_syntax_error_reports_line_and_column(runtime: Runtime) -> None:
    script = "module.exports = function (a, b, c, d, cb) {\n  var x = ;\n};"

    with pytest.raises(HookSyntaxError) as caught:
        run(runtime, script)

    error = caught.value
    assert (error.name, error.line, error.column) == ("SyntaxError", 2, 11)
    assert "unexpected token" in error.message.lower()


def test_check_syntax_reports_line_and_column(runtime: Runtime) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        check(runtime, "var ok = 1;\nfoo bar;", SHORT)

    assert (caught.value.line, caught.value.column) == (2, 5)


def test_check_syntax_on_line_one_gives_the_users_column(runtime: Runtime) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        check(runtime, "var = 1;", SHORT)

    assert (caught.value.line, caught.value.column) == (1, 5)


def test_check_runs_the_module_body_within_the_limits(runtime: Runtime) -> None:
    started = time.monotonic()

    with pytest.raises(HookTimeout):
        check(runtime, "while (true) {}\nmodule.exports = function () {};", SHORT)

    assert time.monotonic() - started < 1 + MARGIN_S


@pytest.mark.parametrize("script", ["", "var x = 1;", "module.exports = 42;", "exports.x = 1;"])
def test_check_refuses_a_module_that_exports_no_hook(runtime: Runtime, script: str) -> None:
    with pytest.raises(HookError) as caught:
        check(runtime, script, SHORT)

    assert caught.value.name == "TypeError"
    assert "module.exports must be a function" in caught.value.message


def test_check_names_what_the_module_exports(runtime: Runtime) -> None:
    assert check(runtime, SEED_HOOK, SHORT) == "hook"


def test_unclosed_brace_is_reported_within_the_script(runtime: Runtime) -> None:
    with pytest.raises(HookSyntaxError) as caught:
        check(runtime, "module.exports = function () {\n  if (x) {\n", SHORT)

    assert caught.value.line is not None and caught.value.line <= 3


# ---- hostile hooks: time ---------------------------------------------------------------

HANGING_HOOKS = {
    "sync_loop": hook("while (true) {}"),
    "loop_in_then": hook("Promise.resolve().then(() => { while (true) {} });"),
    "loop_after_await": "module.exports = async function () { await null; while (true) {} };",
    "loop_in_set_timeout": hook("setTimeout(() => { while (true) {} }, 5);"),
    "loop_in_then_after_callback": hook(
        "cb(null, {});\nPromise.resolve().then(() => { while (true) {} });"
    ),
    "top_level_loop": "while (true) {}\nmodule.exports = function () {};",
}


@pytest.mark.parametrize("script", HANGING_HOOKS.values(), ids=HANGING_HOOKS.keys())
def test_hanging_hook_times_out_and_the_next_run_succeeds(runtime: Runtime, script: str) -> None:
    started = time.monotonic()

    with pytest.raises(HookTimeout) as caught:
        run(runtime, script)

    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + MARGIN_S
    assert caught.value.duration_ms >= 1000
    assert "1000 ms" in caught.value.message
    assert_still_works(runtime)


@pytest.mark.parametrize(
    "body",
    ["// nothing", "new Promise(() => {}).then(() => cb(null, {}));"],
    ids=["returns", "awaits-forever"],
)
def test_hook_that_can_never_call_back_fails_at_once(runtime: Runtime, body: str) -> None:
    started = time.monotonic()

    with pytest.raises(HookStalled) as caught:
        run(runtime, hook(body))

    assert time.monotonic() - started < 0.5
    assert "without calling back" in caught.value.message
    assert_still_works(runtime)


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
def test_timer_left_after_callback_never_slows_a_later_run(runtime: Runtime, script: str) -> None:
    assert run(runtime, script).value == {"done": True}
    time.sleep(0.1)  # the timer is due now

    started = time.monotonic()
    assert run(runtime, script).value == {"done": True}
    assert time.monotonic() - started < 0.5


def test_console_output_before_a_timeout_is_kept(runtime: Runtime) -> None:
    with pytest.raises(HookTimeout) as caught:
        run(runtime, hook("console.log('about to spin');\nwhile (true) {}"))

    assert caught.value.console == "about to spin\n"


# The first run keeps some 29 of its 32 MB in a global, then (for "over")
# takes 4.5 MB more in one native step, within the engine's reserve above the
# limit, and waits on a timer past its deadline; later runs only count.
KEEPER = hook(
    "globalThis.runs = (globalThis.runs || 0) + 1;\n"
    "if (!context.extra) return cb(null, {runs: globalThis.runs});\n"
    "globalThis.kept = [];\n"
    "while (kept.length < 20) kept.push(new Array(65536).fill(1.5));\n"
    "if (context.extra === 'over') kept.push(new Uint8Array(9 << 19));\n"
    "setTimeout(() => cb(null, {}), 60000);"
)


@pytest.mark.parametrize("extra, runs", [("within", 2), ("over", 1)])
def test_a_sandbox_out_of_time_waiting_is_kept_unless_it_holds_too_much(
    runtime: Runtime, extra: str, runs: int
) -> None:
    limits = Limits(timeout_ms=1000, cpu_ms=1000, memory_mb=32)
    hog = payload(context={"extra": extra})

    with pytest.raises(HookTimeout, match="did not finish"):
        run(runtime, KEEPER, args=hog, limits=limits)

    assert run(runtime, KEEPER, limits=limits).value == {"runs": runs}


# ---- hostile hooks: memory and size -----------------------------------------------------


# Filling 128 MB takes QuickJS about half a second of CPU, as much as the
# default CPU budget: these tests give time enough for memory to run out first.
MEMORY_BOUND = Limits(timeout_ms=15000, cpu_ms=10000)


def test_heap_bomb_hits_the_memory_limit_and_the_next_run_succeeds(runtime: Runtime) -> None:
    with pytest.raises(HookMemoryLimit):
        run(runtime, hook("var a = [];\nwhile (true) a.push(new Array(1e6));"), limits=MEMORY_BOUND)

    assert_still_works(runtime)


def test_array_buffer_bomb_hits_the_memory_limit_and_the_next_run_succeeds(
    runtime: Runtime,
) -> None:
    script = hook("var a = [];\nwhile (true) a.push(new ArrayBuffer(2 ** 30));")

    with pytest.raises(HookMemoryLimit):
        run(runtime, script, limits=MEMORY_BOUND)

    assert_still_works(runtime)


def test_huge_array_fill_cannot_take_down_the_caller(runtime: Runtime) -> None:
    # Kills a V8 process whatever the heap limit: the worker dies, not us.
    script = hook("new Array(3e8).fill(1.5);\ncb(null, {});")

    with pytest.raises((HookMemoryLimit, HookCrashed)):
        run(runtime, script, limits=MEMORY_BOUND)

    assert_still_works(runtime)


def test_huge_string_result_is_refused_quickly(runtime: Runtime) -> None:
    started = time.monotonic()

    with pytest.raises(HookResultError) as caught:
        run(runtime, hook("cb(null, 'x'.repeat(10 * 1024 * 1024));"), limits=Limits())

    assert time.monotonic() - started < 2
    assert "larger than 100000 bytes" in caught.value.message
    assert_still_works(runtime)


def test_result_over_the_limit_inside_an_object_is_refused(runtime: Runtime) -> None:
    with pytest.raises(HookResultError):
        run(runtime, hook("cb(null, {a: 'é'.repeat(60000)});"))


def test_many_small_strings_over_the_limit_are_refused(runtime: Runtime) -> None:
    with pytest.raises(HookResultError, match="larger than 100000 bytes"):
        run(runtime, hook("cb(null, {a: new Array(2000).fill('x'.repeat(60))});"))


def test_result_just_under_the_limit_is_kept(runtime: Runtime) -> None:
    result = run(runtime, hook("cb(null, {a: 'x'.repeat(99000)});"))

    assert len(result.value["a"]) == 99000


@pytest.mark.parametrize(
    "value",
    ["{n: 10n}", "(() => { var o = {}; o.self = o; return o; })()"],
    ids=["bigint", "cyclic"],
)
def test_result_that_is_not_json_is_a_result_error(runtime: Runtime, value: str) -> None:
    with pytest.raises(HookResultError) as caught:
        run(runtime, hook(f"cb(null, {value});"))

    assert "not JSON-serialisable" in caught.value.message


def test_script_over_the_size_limit_is_refused(runtime: Runtime) -> None:
    with pytest.raises(HookError, match="larger than 100 bytes"):
        run(runtime, GOOD_HOOK + " " * 100, limits=Limits(max_script_bytes=100))


def test_worker_killed_from_outside_is_replaced(pool: HookPool) -> None:
    run(pool, GOOD_HOOK)
    (pid,) = pool.worker_pids()

    os.kill(pid, 9)
    time.sleep(0.05)

    assert_still_works(pool)
    assert pool.worker_pids() != [pid]


# ---- isolation ------------------------------------------------------------------------


def test_argument_mutation_does_not_leak(runtime: Runtime) -> None:
    args = payload()
    script = hook("scope.push('mutated');\nclient.name = 'changed';\ncb(null, {scope});")

    assert run(runtime, script, args=args).value == {"scope": ["read:data", "mutated"]}
    assert run(runtime, script, args=args).value == {"scope": ["read:data", "mutated"]}
    assert args == payload()


def test_host_apis_are_absent_and_fetch_and_require_are_the_hosts(runtime: Runtime) -> None:
    script = hook(
        "cb(null, [typeof process, typeof XMLHttpRequest, typeof Deno,"
        " typeof fetch, typeof Headers, typeof AbortSignal.timeout, typeof require,"
        " typeof Buffer]);"
    )

    assert run(runtime, script).value == ["undefined"] * 3 + ["function"] * 5


def test_hook_versions_do_not_share_globals(runtime: Runtime) -> None:
    first = hook("globalThis.leak = context.webtask.secrets.API_KEY;\ncb(null, {});")
    second = hook("cb(null, {leak: typeof leak, other: typeof globalThis.leak});")

    run(runtime, first, secrets={"API_KEY": "first-tenant-secret"})

    assert run(runtime, second).value == {"leak": "undefined", "other": "undefined"}


def test_changed_limits_reach_a_warm_hook(runtime: Runtime) -> None:
    script = hook(
        "globalThis.runs = (globalThis.runs || 0) + 1;\n"
        "cb(null, {runs: runs, big: new Array(200000).fill(1.5).length});"
    )
    roomy = Limits(timeout_ms=1000, cpu_ms=1000, memory_mb=64)
    tight = Limits(timeout_ms=1000, cpu_ms=1000, memory_mb=1)

    assert [run(runtime, script, limits=roomy).value["runs"] for _ in range(2)] == [1, 2]
    with pytest.raises(HookMemoryLimit):
        run(runtime, script, limits=tight)
    assert run(runtime, script, limits=roomy).value["big"] == 200000


def test_secrets_are_in_context_webtask(runtime: Runtime) -> None:
    script = hook("cb(null, {key: context.webtask.secrets.API_KEY, ip: context.ip});")

    result = run(runtime, script, secrets={"API_KEY": "s3cret"})

    assert result.value == {"key": "s3cret", "ip": "203.0.113.1"}


def test_changed_secrets_reach_a_warm_hook(runtime: Runtime) -> None:
    script = hook("cb(null, context.webtask.secrets.API_KEY);")

    assert run(runtime, script, secrets={"API_KEY": "old"}).value == "old"
    assert run(runtime, script, secrets={"API_KEY": "new"}).value == "new"


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

    assert names <= {b"PATH", b"LANG", b"TESSERA_NPM_STORE"}  # a folder, not a secret
    assert b"-I" in argv


# ---- console --------------------------------------------------------------------------


def test_console_output_is_captured(runtime: Runtime) -> None:
    script = hook(
        "console.log('hello', 42, {a: [1]});\nconsole.error('%s=%d', 'n', 7);\ncb(null, {});"
    )

    assert run(runtime, script).console == 'hello 42 {"a":[1]}\nn=7\n'


def test_console_output_is_bounded_and_marked(runtime: Runtime) -> None:
    script = hook("for (var i = 0; i < 1000; i++) console.log('x'.repeat(100));\ncb(null, {});")

    console = run(runtime, script, limits=Limits(max_log_bytes=1000)).console

    assert console.startswith("x" * 100 + "\n")
    assert console.endswith("[console output truncated]\n")
    assert len(console) < 1100


def test_console_output_is_kept_on_error(runtime: Runtime) -> None:
    with pytest.raises(HookError) as caught:
        run(runtime, hook("console.log('checking');\ncb(new Error('denied'));"))

    assert caught.value.console == "checking\n"


def test_console_output_starts_empty_on_each_run(runtime: Runtime) -> None:
    script = hook("console.log('once');\ncb(null, {});")

    run(runtime, script)

    assert run(runtime, script).console == "once\n"


# ---- storage --------------------------------------------------------------------------


def test_storage_round_trip_comes_back_as_a_write(runtime: Runtime) -> None:
    script = hook(
        "context.webtask.storage.get(function (error, data) {\n"
        "  data.count += 1;\n"
        "  context.webtask.storage.set(data, {force: 1}, function (error) {\n"
        "    cb(error, {seen: data.count});\n"
        "  });\n"
        "});"
    )

    result = run(runtime, script, storage=StorageSnapshot(data={"count": 1}, etag="e1"))

    assert result.value == {"seen": 2}
    assert result.storage_write is not None
    assert (result.storage_write.data, result.storage_write.force) == ({"count": 2}, True)
    assert result.storage_write.base_etag == "e1"


def test_storage_without_snapshot_gets_undefined(runtime: Runtime) -> None:
    script = hook("context.webtask.storage.get((error, data) => cb(error, typeof data));")

    assert run(runtime, script).value == "undefined"


def test_storage_set_over_the_limit_calls_back_with_an_error(runtime: Runtime) -> None:
    script = hook(
        "context.webtask.storage.set({big: 'x'.repeat(2000)}, function (error) {\n"
        "  cb(null, {error: error && error.message});\n"
        "});"
    )

    result = run(runtime, script, limits=Limits(max_storage_bytes=1000))

    assert result.value == {"error": "storage data is larger than 1000 bytes"}
    assert result.storage_write is None


# ---- threads and processes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [InProcessRuntime, lambda: HookPool(size=2)], ids=["inprocess", "process"]
)
def test_runtime_serves_concurrent_threads(make: Any) -> None:
    engine: Runtime = make()
    results: list[Any] = []

    def worker(n: int) -> None:
        for _ in range(20):
            results.append(run(engine, hook(f"cb(null, {n});")).value)

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        engine.close()

    assert sorted(results) == sorted([0, 1, 2, 3] * 20)


def test_pool_works_in_a_forked_child(runtime: Runtime) -> None:
    run(runtime, GOOD_HOOK)

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        ok = False
        try:
            ok = run(runtime, GOOD_HOOK).value == {"ok": True}
            runtime.close()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert_still_works(runtime)


def test_warm_contexts_beyond_the_limit_drop_the_least_recently_used() -> None:
    """README: TESSERA_HOOK_WARM_CONTEXTS idle warm contexts per server
    process, least recently used dropped first (a dropped one starts with
    new globals)."""
    engine = InProcessRuntime(max_contexts=2)
    counter = hook("globalThis.runs = (globalThis.runs || 0) + 1;\ncb(null, {runs: runs});")

    def runs(key: str) -> int:
        return int(run(engine, counter, key=key).value["runs"])

    try:
        assert [runs("a"), runs("b"), runs("a")] == [1, 1, 2]
        assert runs("c") == 1  # over the limit: "b" was used least recently
        assert runs("a") == 3  # kept warm
        assert runs("b") == 1  # started over
    finally:
        engine.close()


def test_a_warm_context_moves_between_threads_and_still_stops_deep_recursion() -> None:
    """One warm copy of a hook serves the runs of every thread, one run at a
    time; QuickJS measures each run's stack on the thread it runs on, so a
    deep recursion is a RangeError wherever it runs, never a crash."""
    engine = InProcessRuntime()
    recursive = hook(
        "globalThis.runs = (globalThis.runs || 0) + 1;\n"
        "if (client.metadata.deep) { const f = (n) => f(n + 1) + 1; f(0); }\n"
        "cb(null, {runs: runs});"
    )
    deep = payload(client={"tenant": "acme", "id": "abc", "name": "S", "metadata": {"deep": 1}})
    seen: list[object] = []

    def on_a_thread(args: Mapping[str, Any] | None) -> None:
        try:
            seen.append(run(engine, recursive, args=args).value["runs"])
        except HookError as error:
            seen.append(error.name)

    try:
        on_a_thread(None)  # made on this thread
        for args in (deep, None, deep, None):
            thread = threading.Thread(target=on_a_thread, args=(args,))
            thread.start()
            thread.join(30)
        assert seen == [1, "RangeError", 3, "RangeError", 5]  # one copy throughout
    finally:
        engine.close()


# ---- a bare null: the hook's throw, or the engine out of memory -----------------------

# QuickJS throws a bare null when it cannot even allocate its out-of-memory
# error, which is what a small-object heap bomb ends with; a hook's own
# `throw null` must not be taken for one (it would count toward the breaker).
SMALL_HEAP = Limits(timeout_ms=15000, cpu_ms=10000, memory_mb=32)


@pytest.mark.parametrize(
    "body",
    [
        "throw null;",
        "return Promise.reject(null);",
        "setTimeout(() => { throw null; }, 1);",
        # Some 14 of its 32 MB in use, and garbage cycles collected meanwhile.
        "globalThis.k = [];\nwhile (k.length < 10) k.push(new Array(65536).fill(1.5));\n"
        "for (var i = 0; i < 3e5; i++) { var o = {}; o.self = o; }\nthrow null;",
    ],
    ids=["throw", "rejection", "in a timer", "with 14 of 32 MB in use"],
)
def test_a_hooks_own_throw_null_is_an_ordinary_hook_error(runtime: Runtime, body: str) -> None:
    with pytest.raises(HookError) as caught:
        run(runtime, hook(body), limits=SMALL_HEAP)

    assert type(caught.value) is HookError
    assert caught.value.name == "Error"
    assert caught.value.message == "the hook threw null"
    assert_still_works(runtime)


@pytest.mark.parametrize(
    "body",
    [
        "var a = [];\nwhile (true) a.push({a: 1, b: [1, 2, 3]});",
        "globalThis.kept = [];\nwhile (true) kept.push({a: 1, b: [1, 2, 3]});",
        # Catching the failure and throwing its null on gains nothing.
        "var a = [];\ntry { while (true) a.push({a: 1, b: [1, 2, 3]}); } catch (e) { throw e; }",
        "var a = [];\nwhile (true) a.push(new Array(1e5).fill(1.5));",
        # Many small objects in one native call, past the engine's reserve.
        "var s = '[' + '{\"a\": [1, 2]},'.repeat(4e5) + '1]';\nJSON.parse(s);\ncb(null, {});",
    ],
    ids=["small objects", "small objects in a global", "rethrown", "large arrays", "JSON.parse"],
)
def test_a_heap_bomb_of_small_objects_is_still_a_memory_failure(
    runtime: Runtime, body: str
) -> None:
    for attempt in range(3):
        with pytest.raises(HookMemoryLimit, match=r"memory limit \(32 MB\)"):
            run(runtime, hook(f"// attempt {attempt}\n{body}"), limits=SMALL_HEAP)

    assert_still_works(runtime)


# ---- many warm versions of one tenant's hook in one process ---------------------------

# Each version keeps KEPT_MB in a global, well within its own limit; together
# they are more than a worker's RLIMIT_DATA. Before the warm sandboxes made
# room for each other, the versions after the first few and then a one-line
# hook failed as if they had gone over their own limit.
KEPT_MB = 40
VERSIONS = 12
WORKER_DATA_MB = 512
ROOMY = Limits(timeout_ms=15000, cpu_ms=10000, memory_mb=64)
BATTERY = {
    "loop": (hook("while (true) {}"), SHORT, HookTimeout),
    "heap bomb": (
        hook("var a = [];\nwhile (true) a.push({a: 1, b: [1, 2, 3]});"),
        ROOMY,
        HookMemoryLimit,
    ),
    "array bomb": (
        hook("var a = [];\nwhile (true) a.push(new Array(1e5).fill(1.5));"),
        ROOMY,
        HookMemoryLimit,
    ),
    "string bomb": (hook("var s = 'x';\nwhile (true) s += s;"), ROOMY, HookError),
}


def keeper(version: int) -> str:
    return hook(
        f"// version {version}\n"
        "globalThis.kept = globalThis.kept || [];\n"
        f"while (kept.length < {KEPT_MB}) kept.push(new Array(65536).fill({version}.5));\n"
        "cb(null, {kept: kept.length});"
    )


@pytest.fixture(params=["inprocess", "process"])
def crowded(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    engine: Runtime = (
        InProcessRuntime(warm_mb=WORKER_DATA_MB // 2)
        if request.param == "inprocess"
        else HookPool(size=1, data_limit_mb=WORKER_DATA_MB)
    )
    yield engine
    engine.close()


def test_a_one_line_hook_runs_after_a_battery_of_hostile_versions(crowded: Runtime) -> None:
    for round_ in range(3):
        for name, (script, limits, failure) in BATTERY.items():
            with pytest.raises(failure):
                run(crowded, f"// {name} {round_}\n{script}", limits=limits)
        for version in range(VERSIONS):
            assert run(crowded, keeper(round_ * VERSIONS + version), limits=ROOMY).value == {
                "kept": KEPT_MB
            }, f"version {version} of round {round_}"

        one_line = f"// {round_}\nmodule.exports = (c, s, a, ctx, cb) => cb(null, {{ok: true}});"
        assert run(crowded, one_line, limits=ROOMY).value == {"ok": True}
