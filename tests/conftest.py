import os

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from hooks import recorded_inputs
from hooks.execution import close_hook_runtime
from tenant import activity, config_cache

# Fuzz tests are deterministic in `make test` and CI ("ci"); "explore" searches
# at random with more examples: HYPOTHESIS_PROFILE=explore make test.
_FUZZ_COMMON = hypothesis_settings(
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    # One world (tenants, clients) serves every example of a test.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.register_profile("ci", _FUZZ_COMMON, max_examples=200, derandomize=True)
hypothesis_settings.register_profile("explore", _FUZZ_COMMON, max_examples=2_000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests run on a file, as Tessera does: an in-memory test database
    is one shared connection for live servers and a shared cache with table
    locks for threads, so concurrency tests would test neither WAL nor the
    busy timeout. A fresh directory per session leaves no stale -wal file."""
    database = django_settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        path = tmp_path_factory.mktemp("sqlite") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(path)


@pytest.fixture(autouse=True)
def _fast_user_passwords(settings):
    # People's passwords: skip PBKDF2's deliberate slowness in tests. Client
    # secrets keep their own hasher, which stays listed.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        *settings.PASSWORD_HASHERS,
    ]


@pytest.fixture(autouse=True)
def _synchronous_run_log(settings):
    settings.TESSERA_HOOK_RUN_LOG_ASYNC = False


@pytest.fixture(autouse=True)
def _activity_counted_in_the_test(settings):
    # Counts are written when a test calls activity.flush(), by the test's
    # thread: no flush thread holding a connection to the test database.
    settings.TESSERA_ACTIVITY_FLUSH_SECONDS = 0
    activity.forget()
    yield
    activity.forget()


@pytest.fixture(autouse=True)
def _fresh_configuration_memo(settings):
    # Each test's database starts over, so must what a process memoised from
    # it. Requests read the generation inline: no watcher thread holding a
    # connection to the test database (tests/fleet runs real watchers).
    settings.TESSERA_CONFIG_WATCH = False
    config_cache.forget()
    recorded_inputs.forget()
    yield
    config_cache.forget()
    recorded_inputs.forget()


@pytest.fixture(autouse=True)
def _empty_caches():
    for alias in ("default", "shared"):
        caches[alias].clear()
    yield
    for alias in ("default", "shared"):
        caches[alias].clear()


@pytest.fixture(autouse=True)
def _fresh_hook_runtime():
    # Warm contexts and breakers are keyed by database ids, which the next
    # test's database hands out again: each test starts with a new runtime.
    close_hook_runtime()
    yield
    close_hook_runtime()
