"""Start, find and stop the stack's service processes, each in its own session.

A service's process id is kept in ``<state>/<name>.pid`` beside its log
``<state>/<name>.log``; ``stop`` signals the whole process group, so nothing
the service started is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kafkube.core.errors import ServiceError
from kafkube.core.waiting import Deadline


def _pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.pid"


def log_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.log"


def _is_running(pid: int) -> bool:
    # Reap it first if it is our own child, so a dead service is not taken for a zombie that lives.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name; Z and X are processes already gone.
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def started_at(pid: int) -> int | None:
    """When the process started (clock ticks after boot, ``/proc/<pid>/stat``'s 22nd field):
    with its pid, it names one process, never a later one that reuses the pid; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])  # the 22nd field: the 20th after the state letter's own two


def identity(pid: int) -> str:
    """``pid:start``, what a state file keeps to find this very process again."""
    return f"{pid}:{started_at(pid)}"


def still_running(recorded: str) -> int | None:
    """The pid of an ``identity`` if that very process still runs; None if it is gone, or
    if its pid now belongs to another process (which must never be signalled)."""
    pid_text, _, start = recorded.strip().partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return None
    if not start or not _is_running(pid) or str(started_at(pid)) != start:
        return None
    return pid


def running_pid(state_dir: Path, name: str) -> int | None:
    """The pid of the service if it runs (and is the one this stack started), else None."""
    try:
        recorded = _pid_file(state_dir, name).read_text().strip()
    except OSError:
        return None
    if ":" in recorded:
        return still_running(recorded)
    # A pid file written before start times were kept: ours carry the stack's marker.
    pid = int(recorded) if recorded.isdigit() else 0
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes() if _is_running(pid) else b""
    except OSError:
        return None
    marker = f"KAFKUBE_STACK_SERVICE={state_dir}/{name}".encode()
    return pid if marker in environ.split(b"\0") else None


def start(state_dir: Path, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> int:
    """Start the service in a session of its own; its output goes to its log file.

    ``posix_spawnp`` rather than ``Popen``: the service outlives the object that
    started it (``kafkube stack up`` exits at once), so there is no handle to keep.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with log_file(state_dir, name).open("ab") as log:
        log.write(f"\n--- kafkube stack: starting {name}: {' '.join(argv)}\n".encode())
        log.flush()
        environment = {**os.environ, **(env or {}), "KAFKUBE_STACK_SERVICE": f"{state_dir}/{name}"}
        try:
            pid = os.posix_spawnp(
                argv[0],
                argv,
                environment,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                    (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
                ],
                setsid=True,
            )
        except OSError as err:
            raise ServiceError(f"cannot start {name} ({argv[0]}): {err}") from err
    _pid_file(state_dir, name).write_text(f"{identity(pid)}\n")
    return pid


def stop(state_dir: Path, name: str, *, grace_seconds: float = 20.0) -> bool:
    """Stop the service (SIGTERM, then SIGKILL after the grace period). True if it was running."""
    pid = running_pid(state_dir, name)
    _pid_file(state_dir, name).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = Deadline(grace_seconds)
    while not deadline.passed():
        if not _is_running(pid):
            break
        time.sleep(0.1)
    # Whatever the service left in its group goes too, gracefully or not.
    _signal_group(pid, signal.SIGKILL)
    while _is_running(pid):
        time.sleep(0.05)
    return True


def kill_recorded_groups(recorded: list[str]) -> None:
    """SIGKILL the process group of each recorded ``identity`` still running as recorded."""
    for entry in recorded:
        pid = still_running(entry)
        if pid is not None:
            _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Supervised:
    """One ``kafkube ...`` child in its own session (a Ctrl-C reaches only the parent, which
    stops its children in order), its output into a log."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name, self.args, self.log, self.env = name, args, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kafkube", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then its exit code (0 for a clean stop); SIGKILL after ``timeout``.

        A child takes SIGTERM as a stop request from its first instant (``kafkube.launch``),
        but the interpreter starts before any of its code runs: one that this SIGTERM ended
        there (-15) was stopped as asked, before it began, and counts as a clean stop."""
        assert self.process is not None  # noqa: S101 - started before anything stops it
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(30)
        return 0 if code == -signal.SIGTERM else code

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
