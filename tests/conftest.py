import pytest
from django.core.cache import caches


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
def _empty_caches():
    for alias in ("default", "shared"):
        caches[alias].clear()
    yield
    for alias in ("default", "shared"):
        caches[alias].clear()
