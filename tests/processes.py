"""A ``kafkube`` command run as a child process, as a user runs it: start, SIGKILL, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

STARTED: list[subprocess.Popen[bytes]] = []  # conftest kills what a failed test left running

LISTEN = {"KAFKUBE_OBSERVABILITY__LISTEN": "127.0.0.1:0"}  # /metrics on a free port
_SERVING = re.compile(r"serving /metrics, /healthz and /readyz on (http://[\d.]+:\d+)")
_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([-+.\deE]+|NaN)$")


class KafkubeProcess:
    """One long-running ``kafkube ...`` whose output goes to a log file."""

    log: Path
    process: subprocess.Popen[bytes] | None = None

    def launch(self, *args: str, env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kafkube", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        STARTED.append(self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_counts(self) -> dict[str, Any]:
        """What the command printed last on stopping: its ``{"stopped": {...}}`` counts."""
        lines = [line for line in self.log.read_text().splitlines() if '{"stopped"' in line]
        assert lines, self.log.read_text()[-3000:]
        counts: dict[str, Any] = json.loads(lines[-1])["stopped"]
        return counts

    def served_at(self, timeout: float = 60) -> str:
        """The base URL of its /metrics, /healthz and /readyz (started with ``LISTEN``), as
        its log says; the newest start's."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _SERVING.findall(self.log.read_text()) if self.log.exists() else None
            if found:
                return str(found[-1])
            assert self.alive(), self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"no metrics address in the log:\n{self.log.read_text()}")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Until ``text`` is in its log; it must stay alive meanwhile."""
        deadline = time.monotonic() + timeout
        while not self.log.exists() or text not in self.log.read_text():
            assert self.alive(), self.log.read_text() if self.log.exists() else "no log"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.log.read_text()}"
            time.sleep(0.2)


def http_get(url: str) -> tuple[int, str]:
    """The status and body of a GET, an error status included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own server
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def scrape(base: str) -> dict[str, float]:
    """The samples of ``base``/metrics by name and labels, as Prometheus writes them."""
    status, text = http_get(f"{base}/metrics")
    assert status == 200
    samples = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found:
            samples[found.group(1) + (found.group(2) or "")] = float(found.group(3))
    return samples


def run_kafkube(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """A one-shot ``kafkube ...`` (``env`` whole, or this process's), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "kafkube", *args],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip


def taking_signals(pid: int, timeout: float = 30) -> None:
    """Until the process has a handler for SIGTERM: a kafkube command takes it at its first
    instant (``kafkube.launch``), before any import of its own. Earlier, in the interpreter's
    own start, a signal ends a Python program as it would any program."""
    deadline = time.monotonic() + timeout
    while True:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        if int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
            return
        assert time.monotonic() < deadline, f"process {pid} never took SIGTERM"
        time.sleep(0.002)
