"""The bound on each user's concurrent test runs."""

from contextlib import ExitStack

import pytest

from hooks import trial_run_slots as slots
from hooks.trial_run_slots import TestRunsBusy


def test_a_user_gets_at_most_the_per_user_slots(settings):
    settings.TESSERA_TEST_RUNS_PER_USER = 2
    with ExitStack() as held:
        held.enter_context(slots.test_run_slot(user_id=1))
        held.enter_context(slots.test_run_slot(user_id=1))
        with pytest.raises(TestRunsBusy, match="2 test runs in progress"):
            held.enter_context(slots.test_run_slot(user_id=1))
        held.enter_context(slots.test_run_slot(user_id=2))  # another user still runs
    with slots.test_run_slot(user_id=1):  # given back on exit
        pass


def test_a_slot_is_given_back_when_the_run_raises(settings):
    settings.TESSERA_TEST_RUNS_PER_USER = 1
    with pytest.raises(RuntimeError), slots.test_run_slot(user_id=7):
        raise RuntimeError("the run crashed")
    with slots.test_run_slot(user_id=7):
        pass
