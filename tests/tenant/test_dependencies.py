"""Redis down or frozen: the caches degrade instead of raising (a real
``redis-server`` on a free port, stopped and frozen under the cache)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection

from tenant import dependencies
from tenant.dependencies import ResilientRedisCache

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_server():
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - Debian's redis-server
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield process, f"redis://127.0.0.1:{port}/0"
    process.send_signal(signal.SIGCONT)
    process.kill()
    process.wait()


def make_cache(url: str, fallback: str) -> ResilientRedisCache:
    options = {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25, "FALLBACK": fallback}
    return ResilientRedisCache(url, {"KEY_PREFIX": "test", "OPTIONS": options})


def test_rate_limit_cache_falls_back_to_the_process(redis_server, monkeypatch, caplog):
    monkeypatch.setattr(dependencies, "CIRCUIT_OPEN_SECONDS", 0.5)
    process, url = redis_server
    cache = make_cache(url, "local")
    cache.set("k", "from-redis")
    assert cache.get("k") == "from-redis"

    process.kill()
    process.wait()
    cache.set("k", "from-process")
    assert cache.get("k") == "from-process"
    assert "rate limits are per process" in caplog.text
    assert caplog.text.count("Redis unavailable") == 1  # once per outage, not per call


def test_shared_cache_misses_while_redis_is_down(redis_server):
    process, url = redis_server
    cache = make_cache(url, "miss")
    cache.set("k", "v")
    process.kill()
    process.wait()
    assert cache.get("k") is None
    assert cache.get("k", "default") == "default"
    cache.set("k", "ignored")
    assert cache.add("k", "ignored") is False
    assert cache.delete("k") is False


def test_a_frozen_redis_costs_one_timeout_then_nothing(redis_server):
    process, url = redis_server
    cache = make_cache(url, "miss")
    cache.set("k", "v")
    process.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    assert cache.get("k") is None
    first = time.monotonic() - started
    started = time.monotonic()
    for _ in range(100):
        assert cache.get("k") is None
    rest = time.monotonic() - started
    assert first < 1.0
    assert rest < 0.1  # the circuit is open: Redis is not asked
    process.send_signal(signal.SIGCONT)


def test_redis_is_used_again_once_it_answers(redis_server, monkeypatch):
    monkeypatch.setattr(dependencies, "CIRCUIT_OPEN_SECONDS", 0.2)
    process, url = redis_server
    cache = make_cache(url, "miss")
    cache.set("k", "v")
    process.send_signal(signal.SIGSTOP)
    assert cache.get("k") is None
    process.send_signal(signal.SIGCONT)
    time.sleep(0.3)
    assert cache.get("k") == "v"


def test_a_postgresql_that_accepts_but_never_answers_fails_the_connect_in_3_s(tmp_path):
    """README, "Database down": PostgreSQL connects time out after 3 s."""
    with socket.socket() as silent:  # accepts connections (backlog), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        env = {
            **os.environ,
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/silent",
            "TESSERA_VAR_DIR": str(tmp_path),
        }
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); from django.db import connection\n"
                "try:\n    connection.ensure_connection()\n"
                "except Exception as error:\n    print(type(error).__name__)",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
    assert result.stdout.strip() == "OperationalError", result.stderr
    assert 2.5 < elapsed < 10, elapsed


@pytest.mark.django_db
def test_statements_on_postgresql_time_out_after_10_s():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (the CI's second run)")
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "10s"
