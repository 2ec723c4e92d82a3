"""A server's PostgreSQL connections do not grow with its threads: the
README's granian (two workers of 64 threads) against a role PostgreSQL lets
hold 12 connections, under 64 requests at once that each read the database,
answers every one, with at most ``TESSERA_DB_POOL_SIZE`` connections per
worker. With a connection kept per thread (before the pool), the requests
past the limit got 503, and the threads holding connections kept them while
idle, so requests on other threads were still refused after the burst. A
hook run gives its connection back while it waits (its upstream, its timer,
its turn), so that a run waiting 2 s on a slow upstream holds none."""

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction

from hooks.execution import hook_runtime
from tenant.models import Tenant
from tests.factories import make_tenant
from tests.servers import ScratchDatabase, free_port, granian_server, server_env

pytestmark = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="connection limits are PostgreSQL's",
)


LIMIT = 12
POOL = 4  # per worker: two workers within LIMIT
AT_ONCE = 64


@pytest.fixture
def limited(tmp_path):
    """A scratch database owned by a role limited to LIMIT connections; its URL."""
    database = ScratchDatabase(tmp_path, "connections")
    role = f"tessera_limited_{os.getpid()}"
    database._admin(f'DROP ROLE IF EXISTS "{role}"')
    database._admin(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {LIMIT}')
    database._admin(f'ALTER DATABASE "{database.pg_name}" OWNER TO "{role}"')
    with psycopg.connect(database.url, autocommit=True) as db:
        db.execute(f'ALTER SCHEMA public OWNER TO "{role}"')
    url = database.url.replace("//postgres@", f"//{role}@", 1)
    try:
        yield database, role, url
    finally:
        database.drop()
        database._admin(f'DROP ROLE IF EXISTS "{role}"')


def readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def connections_of(database: ScratchDatabase, role: str) -> int:
    with psycopg.connect(database.admin_url, autocommit=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [role]
        ).fetchall()[0]
        return int(count)


def test_many_threads_share_a_few_connections_and_every_request_is_answered(tmp_path, limited):
    database, role, url = limited
    env = server_env(
        DATABASE_URL=url, TESSERA_VAR_DIR=str(tmp_path / "var"), TESSERA_DB_POOL_SIZE=str(POOL)
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR, env=env, check=True, timeout=180,
    )  # fmt: skip
    port = free_port()
    log = tmp_path / "granian.log"
    with granian_server(port, env, log):
        deadline = time.monotonic() + 90
        while True:
            try:
                if readyz(port)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)

        with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
            answers = list(pool.map(lambda _: readyz(port), range(AT_ONCE * 10)))
            during = connections_of(database, role)

    statuses = Counter(status for status, _ in answers)
    assert statuses == Counter({200: len(answers)}), statuses
    assert {body["checks"]["database"] for _, body in answers} == {"ok"}
    assert during <= 2 * POOL
    assert "Traceback" not in log.read_text()


@pytest.mark.django_db(transaction=True)
def test_a_run_gives_its_connection_back_while_it_waits_and_takes_one_after():
    """What a hook run holds while it waits on its upstream or its timer:
    no connection (others of its process may use it), outside a transaction;
    inside one, the connection is the transaction and stays."""
    _, governor = hook_runtime()
    for wait in (governor.waiting, governor.pausing):
        make_tenant("acme")  # the run's thread has read the database
        assert connection.connection is not None
        with wait():
            assert connection.connection is None
        assert Tenant.objects.filter(slug="acme").exists()  # a connection again
        Tenant.objects.all().delete()
    with transaction.atomic(), governor.waiting():
        assert connection.connection is not None


@pytest.mark.django_db(transaction=True)
def test_a_request_waits_past_the_connect_timeout_for_a_busy_pool():
    """Writers queued on one row hold the pool's connections as long as the
    queue ahead of them takes: a request that finds them all in use waits
    its turn rather than failing after the connect timeout (3 s)."""
    pool = connection.pool  # type: ignore[attr-defined]  # PostgreSQL's wrapper has one
    hold = settings.DATABASES["default"]["OPTIONS"]["connect_timeout"] + 1
    release = threading.Event()

    def hold_a_connection() -> None:
        try:
            with transaction.atomic():
                Tenant.objects.exists()
                release.wait(60)
        finally:
            connection.close()

    def wait_for_one() -> float:
        began = time.monotonic()
        try:
            make_tenant("acme")
        finally:
            connection.close()
        return time.monotonic() - began

    connection.close()  # this thread's: the holders take them all
    with concurrent.futures.ThreadPoolExecutor(pool.max_size + 1) as threads:
        holders = [threads.submit(hold_a_connection) for _ in range(pool.max_size)]
        deadline = time.monotonic() + 30
        while (stats := pool.get_stats())["pool_size"] < pool.max_size or stats["pool_available"]:
            assert time.monotonic() < deadline, stats
            time.sleep(0.05)
        waiter = threads.submit(wait_for_one)
        time.sleep(hold)
        release.set()
        waited = waiter.result()
        for holder in holders:
            holder.result()

    assert waited >= hold - 0.5
    assert Tenant.objects.filter(slug="acme").exists()
