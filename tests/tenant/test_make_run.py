"""``PORT=… make run`` as a newcomer tries it: granian serves the demo, and
``manage.py`` run from another shell, set up with the line ``make run``
prints, agrees with the server on the issuer and its token endpoint."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

# What `make run` reads from the environment; a newcomer has none of it set.
UNSET = ("DATABASE_URL", "REDIS_URL", "PUBLIC_URL", "SECRET_KEY", "TESSERA_KEK", "PORT")
EXPORT_LINE = re.compile(r"^  (cd .* && \. \.venv/bin/activate && export PORT=\d+ PUBLIC_URL=\S+)$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def newcomer_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET and k != "VIRTUAL_ENV"}
    # A checkout's own var/ directory, kept apart from the developer's.
    env["TESSERA_VAR_DIR"] = str(var_dir)
    return env


def session_members(sid: int) -> list[int]:
    """Processes still in the session ``make run`` was started in."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # Fields after the command name; the session id is the fourth.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def descendants(pid: int) -> list[str]:
    """Command lines of every process below ``pid``."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        found.extend(descendants(int(child)))
    return found


@pytest.fixture
def make_run(tmp_path) -> Iterator[tuple[int, str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],  # noqa: S607 - the newcomer's make
        cwd=settings.BASE_DIR,
        env={**newcomer_env(tmp_path), "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    output, line = [], None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and process.poll() is None:
            text = process.stdout.readline()
            output.append(text)
            if match := EXPORT_LINE.match(text.rstrip("\n")):
                line = match[1]
            if "Listening at" in text or "Started worker" in text:
                break
        assert line, "make run printed no line for another shell:\n" + "".join(output)
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield port, line, process
    finally:
        if session_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_make_run_serves_with_granian_and_manage_py_follows_its_port(make_run, tmp_path):
    port, line, process = make_run
    assert any("granian" in command for command in descendants(process.pid))
    assert "runserver" not in " ".join(descendants(process.pid))

    # Another shell: only what make run printed, then the README's command.
    shell = subprocess.run(  # noqa: S603 - bash, as a newcomer types it
        [  # noqa: S607 - the newcomer's bash
            "bash",
            "-c",
            f"{line} && python manage.py client create -p demo --name from-shell"
            " --grant https://api.demo.test/=read:data --json",
        ],
        env=newcomer_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    client = json.loads(shell.stdout)
    assert client["token_endpoint"] == f"http://127.0.0.1:{port}/demo/oauth/token"

    body = {
        "grant_type": "client_credentials",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "audience": "https://api.demo.test/",
    }
    request = urllib.request.Request(
        client["token_endpoint"], json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["server"] == "granian"
        assert json.load(response)["scope"] == "read:data extra"

    # PORT alone is enough: issuers follow it when PUBLIC_URL is unset.
    port_only = line.split(" PUBLIC_URL=", 1)[0]
    shell = subprocess.run(  # noqa: S603 - bash, as a newcomer types it
        [  # noqa: S607 - the newcomer's bash
            "bash",
            "-c",
            f"{port_only} && python manage.py client create -p demo --name port-only --json",
        ],
        env=newcomer_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert json.loads(shell.stdout)["token_endpoint"] == client["token_endpoint"]

    # Ctrl+C: the terminal sends SIGINT to make, granian and its worker at once.
    os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + 20
    while session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(process.pid) == [], "make run outlived Ctrl+C"


def test_manage_py_outside_the_venv_is_the_error_the_readme_names(tmp_path):
    shell = subprocess.run(
        ["/usr/bin/python3", "manage.py", "help"],
        cwd=settings.BASE_DIR,
        env=newcomer_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if shell.returncode == 0:
        pytest.skip("this machine's python3 has Django installed")
    assert "No module named 'django'" in shell.stderr
    assert "No module named django" in (Path(settings.BASE_DIR) / "README.md").read_text()
