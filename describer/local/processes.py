"""Background services with a pid file and a log file, stopped with everything they started.

Each service runs in its own session (process group), so stopping it also stops its children
(the emulator's Lambda workers). Liveness is checked against ``/proc``, so this is Linux-only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def live_group_members(group: int) -> list[int]:
    """Pids of the non-zombie processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _reap(pid: int) -> None:
    """Collect a child's exit status, when it is ours, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _wait_for_exec(process: subprocess.Popen[bytes], marker: str, timeout_s: float = 5) -> None:
    """Wait until the child shows its own command line.

    When two threads start processes at once, a child can briefly still show its parent's command
    line after Popen returns; a pid file written then would look stale to ``pid()``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if marker in _command_line(process.pid):
                return
        except OSError:
            return
        time.sleep(0.01)


def _wait_until_gone(group: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(group)
        if not live_group_members(group):
            return True
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class BackgroundService:
    """One long-running process: ``<state dir>/<name>.pid`` and ``<state dir>/logs/<name>.log``."""

    name: str
    state_dir: Path
    marker: str  # a string its command line contains: a recycled pid is not mistaken for it

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The running service's pid, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            command = _command_line(pid)
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):
            self.pid_file.unlink(missing_ok=True)
            return None
        if self.marker not in command or state == "Z":
            _reap(pid)
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_exec(process, self.marker)
        # Written whole or not at all: a reader never sees an empty pid file.
        partial = self.pid_file.with_suffix(".pid.tmp")
        partial.write_text(f"{process.pid}\n")
        partial.replace(self.pid_file)
        return process.pid

    def stop(self, timeout_s: float = 10) -> list[int]:
        """Stop the service and every process of its group; returns the pids that were stopped."""
        pid = self.pid()
        if pid is None:
            return []
        stopped = live_group_members(pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            if _wait_until_gone(pid, timeout_s):
                break
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
