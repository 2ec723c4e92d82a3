"""The configuration generation is shared by every process, Redis or not."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tenant.config_cache import current_generation, invalidate

READ_GENERATION = (
    "import django; django.setup(); "
    "from tenant.config_cache import current_generation; print(current_generation())"
)


@pytest.mark.django_db
@pytest.mark.skipif("REDIS_URL" in os.environ, reason="checks the embedded default")
def test_another_process_sees_the_published_generation():
    before = current_generation()
    invalidate()
    after = current_generation()
    assert after != before

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tenant.settings",
        "TESSERA_VAR_DIR": str(settings.VAR_DIR),
    }
    seen = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", READ_GENERATION],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert seen == after
