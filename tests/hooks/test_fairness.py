"""The governor: per-tenant concurrency, the process's test-run cap, and
the breaker, through its public interface (no Django needed)."""

import select
import socket
import threading
import time

import pytest

from hooks.runtime import (
    ComputeGate,
    Governor,
    HookBusy,
    HookCpuLimit,
    HookError,
    HookMemoryLimit,
    HookStalled,
    HookSuspended,
    HookTimeout,
)
from hooks.runtime.fairness import MAX_QUEUED_PER_TENANT


def holding(governor: Governor, *, tenant: str, test: bool = False):
    """Start a run that holds its slot until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def call() -> None:
        started.set()
        release.wait(5)

    thread = threading.Thread(
        target=governor.run,
        kwargs={"tenant": tenant, "hook": (tenant, test), "test": test, "call": call},
    )
    thread.start()
    started.wait(5)
    return release, thread


def fail_with(error: HookError):
    def call() -> None:
        raise error

    return call


def test_a_tenant_at_its_cap_is_refused_and_another_tenant_is_not():
    governor = Governor(max_concurrent_per_tenant=1)
    release, thread = holding(governor, tenant="a")

    with pytest.raises(HookBusy) as refused:
        governor.run(tenant="a", hook="a2", test=False, call=lambda: None)
    assert governor.run(tenant="b", hook="b1", test=False, call=lambda: "ran") == "ran"
    assert refused.value.retry_after_s >= 1

    release.set()
    thread.join()
    assert governor.run(tenant="a", hook="a2", test=False, call=lambda: "ran") == "ran"


def test_test_runs_have_their_own_process_cap():
    governor = Governor(max_concurrent_per_tenant=5, max_concurrent_tests=1)
    release, thread = holding(governor, tenant="a", test=True)

    with pytest.raises(HookBusy, match="test runs"):
        governor.run(tenant="b", hook="b", test=True, call=lambda: None)
    assert governor.run(tenant="b", hook="b", test=False, call=lambda: "token runs go on") == (
        "token runs go on"
    )
    release.set()
    thread.join()


@pytest.mark.parametrize(
    "error", [HookTimeout("t"), HookMemoryLimit("m")], ids=["timeout", "memory"]
)
def test_the_breaker_opens_after_repeated_failures_and_doubles(error):
    governor = Governor(breaker_failures=2, breaker_cooldown_s=0.2)
    for _ in range(2):
        with pytest.raises(type(error)):
            governor.run(tenant="t", hook="h", test=False, call=fail_with(error))

    with pytest.raises(HookSuspended):
        governor.run(tenant="t", hook="h", test=False, call=lambda: None)
    assert governor.run(tenant="t", hook="other", test=False, call=lambda: 1) == 1

    time.sleep(0.25)  # half open: one more failure reopens it, for twice as long
    with pytest.raises(type(error)):
        governor.run(tenant="t", hook="h", test=False, call=fail_with(error))
    assert 0.3 < governor.suspended_for("h") <= 0.4


def test_a_success_closes_the_breaker_and_a_stalled_or_failing_hook_never_trips_it():
    governor = Governor(breaker_failures=2, breaker_cooldown_s=10)
    with pytest.raises(HookTimeout):
        governor.run(tenant="t", hook="h", test=False, call=fail_with(HookTimeout("t")))
    governor.run(tenant="t", hook="h", test=False, call=lambda: None)
    for error in (HookTimeout("t"), HookStalled("s"), HookStalled("s"), HookError("denied")):
        with pytest.raises(HookError):
            governor.run(tenant="t", hook="h", test=False, call=fail_with(error))

    assert governor.suspended_for("h") == 0


def test_a_run_that_burns_its_cpu_budget_trips_the_breaker_at_once():
    governor = Governor(breaker_failures=3, breaker_cooldown_s=10)

    with pytest.raises(HookCpuLimit):
        governor.run(tenant="t", hook="h", test=False, call=fail_with(HookCpuLimit("loop")))

    with pytest.raises(HookSuspended):
        governor.run(tenant="t", hook="h", test=False, call=lambda: None)


def test_a_run_over_the_cap_waits_briefly_for_a_slot():
    governor = Governor(max_concurrent_per_tenant=1, queue_s=2)
    release, thread = holding(governor, tenant="a")
    threading.Timer(0.1, release.set).start()

    started = time.monotonic()
    assert governor.run(tenant="a", hook="a2", test=False, call=lambda: "ran") == "ran"
    assert 0.05 < time.monotonic() - started < 1.5
    thread.join()


def test_a_run_waiting_on_an_upstream_lets_its_tenant_run_another():
    governor = Governor(max_concurrent_per_tenant=1, max_waiting_per_tenant=1, queue_s=0)
    answered, back = threading.Event(), []

    def waits_on_an_upstream():
        with governor.waiting():
            answered.wait(5)
        back.append(time.monotonic())
        return "first"

    first = threading.Thread(
        target=governor.run,
        kwargs={"tenant": "a", "hook": "a1", "test": False, "call": waits_on_an_upstream},
    )
    first.start()
    time.sleep(0.1)

    # The slot is free while the first waits: a second run goes at once.
    assert governor.run(tenant="a", hook="a2", test=False, call=lambda: "second") == "second"
    answered.set()
    first.join()
    assert back


def test_a_run_waiting_on_its_socket_lets_its_tenant_run_another_through_the_gate():
    """``Governor.wait_sockets``, as a token request's fetch waits: the gate
    and the tenant's slot go to the tenant's next request meanwhile; the
    run has both back when it returns, with its answer."""
    gate = ComputeGate()
    governor = Governor(max_concurrent_per_tenant=1, max_waiting_per_tenant=1, queue_s=1, gate=gate)
    mine, upstream = socket.socketpair()
    next_one_waits = threading.Event()
    got: list = []

    def waits_on_its_socket():
        next_one_waits.wait(5)
        got.append(governor.wait_sockets({mine.fileno(): select.POLLIN}, 5))
        got.append((gate.held(), governor._running.get("a")))
        return "first"

    def computes():
        assert until(lambda: parked(gate) == 1)  # parked as the gate came here
        upstream.sendall(b"answer")  # while this one computes
        time.sleep(0.05)
        return "second"

    results: list = []

    def request(call):
        with gate.hold("/a"):
            results.append(governor.run(tenant="a", hook="a1", test=False, call=call))

    first = threading.Thread(target=request, args=(waits_on_its_socket,))
    second = threading.Thread(target=request, args=(computes,))
    first.start()
    try:
        assert until(lambda: governor._running.get("a") == 1)
        second.start()
        assert until(lambda: queued(gate) == 1)
        next_one_waits.set()
        second.join(5)
        first.join(5)

        assert results == ["second", "first"]
        assert got == [[(mine.fileno(), select.POLLIN)], (True, 1)]
        assert not gate._busy and not governor._running and not governor._on_upstream
    finally:
        next_one_waits.set()
        first.join(5)
        second.join(5)
        mine.close()
        upstream.close()


def test_waiting_places_are_capped_then_a_wait_keeps_its_slot():
    governor = Governor(max_concurrent_per_tenant=1, max_waiting_per_tenant=0, queue_s=0)
    release = threading.Event()

    def waits():
        with governor.waiting():
            release.wait(5)

    thread = threading.Thread(
        target=governor.run, kwargs={"tenant": "a", "hook": "a1", "test": False, "call": waits}
    )
    thread.start()
    time.sleep(0.1)
    try:
        with pytest.raises(HookBusy):
            governor.run(tenant="a", hook="a2", test=False, call=lambda: None)
        # Another tenant is never held up by it.
        assert governor.run(tenant="b", hook="b1", test=False, call=lambda: "b") == "b"
    finally:
        release.set()
        thread.join()


def test_a_run_back_from_its_upstream_goes_before_new_runs():
    governor = Governor(max_concurrent_per_tenant=1, max_waiting_per_tenant=1, queue_s=0.05)
    answered, computing = threading.Event(), threading.Event()
    order = []

    def waits():
        with governor.waiting():
            answered.wait(5)
        order.append("returned")

    def computes():
        computing.wait(5)
        order.append("computed")

    first = threading.Thread(
        target=governor.run, kwargs={"tenant": "a", "hook": "1", "test": False, "call": waits}
    )
    first.start()
    time.sleep(0.05)
    second = threading.Thread(
        target=governor.run, kwargs={"tenant": "a", "hook": "2", "test": False, "call": computes}
    )
    second.start()
    time.sleep(0.05)
    answered.set()  # the first is back while the second holds the slot
    time.sleep(0.05)
    with pytest.raises(HookBusy):  # a new run does not jump ahead of it
        governor.run(tenant="a", hook="3", test=False, call=lambda: None)
    computing.set()
    first.join()
    second.join()
    assert order == ["computed", "returned"]


def test_requests_waiting_let_the_others_through_the_compute_gate():
    gate = ComputeGate()
    governor = Governor(max_concurrent_per_tenant=1, max_waiting_per_tenant=1, queue_s=2, gate=gate)
    answered, inside = threading.Event(), threading.Event()
    done = []

    def request(tenant, call):
        with gate.hold():
            done.append(governor.run(tenant=tenant, hook=tenant, test=False, call=call))

    def waits_on_an_upstream():
        inside.set()
        with governor.waiting():
            answered.wait(5)
        return "a"

    def computes():
        inside.set()
        answered.wait(5)  # computing (say, a long loop): holds the gate and its slot
        return "a2"

    first = threading.Thread(target=request, args=("a", waits_on_an_upstream))
    first.start()
    inside.wait(5)
    other = threading.Thread(target=request, args=("b", lambda: "b"))
    other.start()
    other.join(2)
    assert done == ["b"]  # the gate was free while "a" waited

    inside.clear()
    second = threading.Thread(target=request, args=("a", computes))
    second.start()
    inside.wait(5)  # holds a's slot and the gate now
    queued = threading.Thread(target=request, args=("a", lambda: "a3"))
    queued.start()  # waits for the gate, then for a's slot
    time.sleep(0.1)
    answered.set()  # the first, back from its upstream, waits for the slot too
    for thread in (first, second, queued):
        thread.join(5)
    assert sorted(done) == ["a", "a2", "a3", "b"]


def test_tenants_take_turns_at_the_compute_gate():
    """A tenant whose clients sent a second's worth of requests at once
    does not hold everyone else up behind them: the gate goes to each
    waiting tenant in turn, first come, first served within one."""
    gate = ComputeGate()
    order: list[str] = []
    threads: list[threading.Thread] = []

    def request(tenant: str, label: str) -> None:
        with gate.hold(tenant):
            order.append(label)

    def queued() -> int:
        return sum(len(waiting) for waiting in gate._queues.values())

    gate.enter("/busy")
    for tenant, label in [("/a", "a1"), ("/a", "a2"), ("/a", "a3"), ("/b", "b1")]:
        threads.append(threading.Thread(target=request, args=(tenant, label)))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while queued() < len(threads) and time.monotonic() < deadline:
            time.sleep(0.001)
    assert queued() == 4

    gate.leave()
    for thread in threads:
        thread.join(5)

    assert order == ["a1", "b1", "a2", "a3"]  # first come, first served: b1 last


def until(condition, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)
    return condition()


def queued(gate: ComputeGate) -> int:
    return sum(len(waiting) for waiting in gate._queues.values())


def parked(gate: ComputeGate) -> int:
    return len(set(gate._parked.values()))


class ParkedWaiter:
    """Tenant /a's request waits on its upstream's socket (``upstream`` is
    the upstream's end) through ``gate.wait_sockets`` while tenant /b's
    request holds the gate until ``let_b_go()``. ``got``: what the wait
    returned, then whether the gate was held on return."""

    def __init__(self, gate: ComputeGate, timeout_s: float = 5) -> None:
        self.gate = gate
        self.mine, self.upstream = socket.socketpair()
        self.got: list = []
        self._waits, self._b_in, self._b_out = (threading.Event() for _ in range(3))
        computing = threading.Event()

        self.order: list[str] = []

        def a() -> None:
            with gate.hold("/a"):
                computing.set()
                self._waits.wait(5)
                sockets = {self.mine.fileno(): select.POLLIN}
                self.got.append(gate.wait_sockets(sockets, timeout_s))
                self.got.append(gate.held())
                self.order.append("answered")

        def b() -> None:
            with gate.hold("/b"):
                self._b_in.set()
                self._b_out.wait(5)

        self.a, self.b = threading.Thread(target=a), threading.Thread(target=b)
        self.a.start()
        assert computing.wait(5)
        self.b.start()
        assert until(lambda: queued(gate) == 1)  # b waits for the gate
        self._waits.set()
        assert self._b_in.wait(5) and until(lambda: parked(gate) == 1)

    @property
    def answer(self) -> list[tuple[int, int]]:
        return [(self.mine.fileno(), select.POLLIN)]

    def let_b_go(self) -> None:
        self._b_out.set()
        self.b.join(5)

    def close(self) -> None:
        self._b_out.set()
        for thread in (self.a, self.b):
            thread.join(5)
        self.mine.close()
        self.upstream.close()


def test_a_request_waiting_on_its_socket_wakes_once_with_its_answer_and_its_turn():
    """Its answer arriving while another request computes does not wake it
    (it would only queue again for the gate): the request that hands the
    gate over finds the answer there and hands the gate to it."""
    gate = ComputeGate()
    waiter = ParkedWaiter(gate)

    def new_request() -> None:
        with gate.hold("/a"):
            waiter.order.append("new")

    newcomer = threading.Thread(target=new_request)
    try:
        waiter.upstream.sendall(b"answer")
        newcomer.start()  # the same tenant's next request, queued meanwhile
        assert until(lambda: queued(gate) == 1)
        time.sleep(0.2)
        assert waiter.got == [] and parked(gate) == 1  # /b still computes

        waiter.let_b_go()
        waiter.a.join(5)
        newcomer.join(5)

        assert waiter.got == [waiter.answer, True]
        assert waiter.order == ["answered", "new"]  # back from its wait before new runs
        assert parked(gate) == 0 and queued(gate) == 0 and not gate._busy
    finally:
        waiter.close()
        newcomer.join(5)


def test_a_parked_request_out_of_time_queues_for_its_turn_without_an_answer():
    gate = ComputeGate()
    waiter = ParkedWaiter(gate, timeout_s=0.2)
    try:
        assert until(lambda: queued(gate) == 1)  # no longer parked: in line for the gate
        assert waiter.got == [] and parked(gate) == 0

        waiter.let_b_go()
        waiter.a.join(5)

        assert waiter.got == [[], True]
        assert not gate._busy
    finally:
        waiter.close()


def test_parked_requests_wait_alone_once_the_gate_goes_free():
    """Nobody hands a free gate over, so nobody would look at their sockets."""
    gate = ComputeGate()
    waiter = ParkedWaiter(gate)
    try:
        waiter.let_b_go()  # no answer yet, nobody waiting: the gate is free
        assert parked(gate) == 0 and not gate._busy

        gate.enter("/c")  # a new request computes when the answer comes
        waiter.upstream.sendall(b"answer")
        assert until(lambda: queued(gate) == 1)
        assert waiter.got == []
        gate.leave()
        waiter.a.join(5)

        assert waiter.got == [waiter.answer, True]
        assert not gate._busy
    finally:
        waiter.close()


def test_a_wait_epoll_refuses_is_made_alone_and_leaves_nothing_parked(tmp_path):
    """epoll watches no regular file: a wait on one (here beside a socket it
    did take) is made alone, as on a free gate, and the gate forgets the
    socket it had taken."""
    gate = ComputeGate()
    mine, upstream = socket.socketpair()
    (tmp_path / "plain").write_bytes(b"")
    plain = (tmp_path / "plain").open("rb")
    waits, b_out = threading.Event(), threading.Event()
    got: list[object] = []

    def a() -> None:
        with gate.hold("/a"):
            waits.wait(5)
            sockets = {mine.fileno(): select.POLLIN, plain.fileno(): select.POLLIN}
            got.append(gate.wait_sockets(sockets, 5))
            got.append(gate.held())

    def b() -> None:
        with gate.hold("/b"):
            b_out.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    try:
        threads[0].start()
        assert until(lambda: gate._busy)
        threads[1].start()
        assert until(lambda: queued(gate) == 1)
        waits.set()
        # The file was ready at once: /a is back in line while /b computes.
        assert until(lambda: queued(gate) == 1 and gate._queues.get("/a"))
        assert parked(gate) == 0
        upstream.sendall(b"answer")
        assert gate._epoll is not None and gate._epoll.poll(0) == []  # not watched

        b_out.set()
        threads[0].join(5)

        assert got == [[(plain.fileno(), select.POLLIN)], True]
        assert not gate._busy
    finally:
        b_out.set()
        for thread in threads:
            thread.join(5)
        mine.close()
        upstream.close()
        plain.close()


def test_a_run_sleeping_on_its_timer_lets_the_gate_go_and_keeps_its_slot():
    gate = ComputeGate()
    governor = Governor(max_concurrent_per_tenant=1, max_waiting_per_tenant=4, queue_s=0, gate=gate)
    woke, asleep = threading.Event(), threading.Event()

    def sleeps():
        with governor.pausing():
            asleep.set()
            woke.wait(5)

    def request():
        with gate.hold():
            governor.run(tenant="a", hook="a", test=False, call=sleeps)

    sleeper = threading.Thread(target=request)
    sleeper.start()
    asleep.wait(5)
    try:
        with gate.hold():  # another request computes meanwhile
            with pytest.raises(HookBusy):  # its tenant's slot is still taken
                governor.run(tenant="a", hook="a2", test=False, call=lambda: None)
            assert governor.run(tenant="b", hook="b", test=False, call=lambda: "b") == "b"
    finally:
        woke.set()
        sleeper.join(5)


def test_only_a_few_runs_of_a_tenant_queue_for_its_slot():
    governor = Governor(max_concurrent_per_tenant=1, queue_s=2)
    release, holder = holding(governor, tenant="a")
    queued = [
        threading.Thread(
            target=governor.run,
            kwargs={"tenant": "a", "hook": f"q{i}", "test": False, "call": lambda: None},
        )
        for i in range(MAX_QUEUED_PER_TENANT)
    ]
    for thread in queued:
        thread.start()
    time.sleep(0.2)

    started = time.monotonic()
    with pytest.raises(HookBusy, match="waiting for a turn"):
        governor.run(tenant="a", hook="one-too-many", test=False, call=lambda: None)
    assert time.monotonic() - started < 0.5  # refused at once, holding no thread
    release.set()
    for thread in [holder, *queued]:
        thread.join(5)
