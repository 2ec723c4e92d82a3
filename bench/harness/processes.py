"""Start, watch and stop the benchmark's child processes.

Every server runs in its own session (and so its own process group), so that
stopping it reaches the server's workers and their hook worker children, or
node, however deep the tree. Whatever survives the group signal is killed by
pid, checked against its start time so that a recycled pid is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


class ProcessError(RuntimeError):
    """A child process failed, exited early or did not become ready in time."""


@dataclass(frozen=True)
class ProcessInfo:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    start_ticks: int
    rss_bytes: int
    cmdline: str
    # utime + stime + cutime + cstime: CPU time of the process (all its
    # threads) and of the children it has reaped, in clock ticks.
    cpu_ticks: int = 0


def read_process(pid: int) -> ProcessInfo | None:
    """Read one process from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
        raw_cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    resident_pages = int(statm.split()[1])
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        start_ticks=int(fields[19]),
        rss_bytes=resident_pages * os.sysconf("SC_PAGE_SIZE"),
        cmdline=raw_cmdline.replace(b"\0", b" ").decode(errors="replace").strip(),
        # Fields 14-17 of stat(5), counted from 1 before the split above.
        cpu_ticks=sum(int(value) for value in fields[11:15]),
    )


def _children(pid: int) -> list[int] | None:
    """Direct children of ``pid`` from /proc/PID/task/*/children, or None if unsupported."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError as missing:
        # The process (or a thread) went away, or the kernel lacks CONFIG_PROC_CHILDREN.
        if Path(f"/proc/{pid}").exists() and "children" in str(missing.filename):
            return None
    return children


def process_tree(root_pid: int) -> list[ProcessInfo]:
    """The root process and all its descendants (empty if the root is gone).

    Walks /proc/PID/task/*/children from the root (cheap enough to sample ten
    times a second during a run); scans all of /proc where that file is missing.
    """
    tree: list[ProcessInfo] = []
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        info = read_process(pid)
        children = _children(pid)
        if children is None:
            return _process_tree_by_scan(root_pid)
        if info is not None:
            tree.append(info)
            pending.extend(children)
    return tree


def _process_tree_by_scan(root_pid: int) -> list[ProcessInfo]:
    processes: dict[int, ProcessInfo] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := read_process(int(entry.name))):
            processes[info.pid] = info
    if root_pid not in processes:
        return []
    children: dict[int, list[int]] = {}
    for info in processes.values():
        children.setdefault(info.ppid, []).append(info.pid)
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(processes[pid])
        pending.extend(children.get(pid, []))
    return tree


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def run_command(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
) -> str:
    """Run a short command to completion in its own process group; return its stdout.

    Raises ProcessError with the command's output if it fails or times out.
    """
    with subprocess.Popen(
        list(command),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.communicate()
            raise ProcessError(f"timed out after {timeout:.0f} s: {' '.join(command)}") from None
        finally:
            # Anything the command left behind in its group goes with it.
            _signal_group(process.pid, signal.SIGKILL)
    if process.returncode != 0:
        raise ProcessError(
            f"exit status {process.returncode}: {' '.join(command)}\n"
            f"--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-3000:]}"
        )
    return stdout


@dataclass
class Server:
    """A long-running child process (a server) started in its own session."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    seen: dict[int, int] = field(default_factory=dict)  # pid -> start ticks

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[ProcessInfo]:
        """The server's process tree now; remembers every pid for the final cleanup."""
        tree = process_tree(self.pid)
        for info in tree:
            self.seen[info.pid] = info.start_ticks
        return tree

    def cpu_seconds(self) -> float:
        """CPU time used so far by the whole tree: every live process (all its
        threads) plus the children its members have reaped. Sampled before
        and after a run, the difference is what the server spent on it."""
        return sum(info.cpu_ticks for info in self.tree()) / CLOCK_TICKS_PER_SECOND

    def rss_bytes(self) -> int:
        """Resident memory of the whole tree (shared pages count once per process)."""
        return sum(info.rss_bytes for info in self.tree())

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise ProcessError (with the log) if the server has exited."""
        if self.popen.poll() is not None:
            raise ProcessError(
                f"{self.name} exited with status {self.popen.returncode}\n{self.log_tail()}"
            )

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the group, wait, then SIGKILL the group and any remembered straggler."""
        self.tree()
        if self.popen.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace_seconds)
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace_seconds)
        deadline = time.monotonic() + grace_seconds
        for pid, start_ticks in self.seen.items():
            info = read_process(pid)
            if info is not None and info.start_ticks == start_ticks:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        while time.monotonic() < deadline and any(
            (info := read_process(pid)) is not None
            and info.start_ticks == ticks
            and not _is_zombie(pid)
            for pid, ticks in self.seen.items()
        ):
            time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@contextlib.contextmanager
def running_server(
    name: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
) -> Iterator[Server]:
    """Start a server in its own session; stop its whole tree on the way out."""
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name=name, popen=popen, log_path=log_path)
    try:
        yield server
    finally:
        server.stop()
