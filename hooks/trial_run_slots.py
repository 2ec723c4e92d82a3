"""A bound on each author's concurrent test runs (the dashboard's Run
button and saves of the enabled hook), per server process, so that one
author's tabs cannot take every test-run slot. The process-wide cap on test
runs, for every caller, is the hook runtime's governor
(``TESSERA_HOOK_TEST_RUNS_PER_PROCESS``, hooks.execution).
"""

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings


class TestRunsBusy(Exception):
    """Too many test runs are in progress; try again in a moment."""

    __test__ = False  # not a pytest class, despite its name


_lock = threading.Lock()
_running_per_user: Counter[int] = Counter()


@contextmanager
def test_run_slot(*, user_id: int) -> Iterator[None]:
    """Hold one of the user's test-run slots for the ``with`` block, or
    raise :class:`TestRunsBusy` at once (never queue: a queued run would hold
    a server thread)."""
    with _lock:
        if _running_per_user[user_id] >= settings.TESSERA_TEST_RUNS_PER_USER:
            raise TestRunsBusy(
                f"You already have {_running_per_user[user_id]} test runs in progress; "
                "try again when one has finished."
            )
        _running_per_user[user_id] += 1
    try:
        yield
    finally:
        with _lock:
            _running_per_user[user_id] -= 1
            if _running_per_user[user_id] <= 0:
                del _running_per_user[user_id]
