"""A stop signal is a request to stop from a command's first instant: a parent that stops a
child early (the demo's Ctrl-C a second after it started them) sees a clean stop, exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkube.compose.processes import Supervised
from tests.processes import taking_signals


def _recording(tmp_path: Path) -> list[str]:
    # Recording a long watch stream: a command that never claims the signal for itself,
    # busy from its imports to its end (tens of seconds), so any instant falls inside it.
    return ["simulate", "--record", str(tmp_path / "stream.jsonl"), "--count", "100000000"]


@pytest.mark.parametrize("after", [0.0, 0.05, 0.15, 0.3, 0.6, 1.2])
def test_a_command_stopped_while_it_starts_exits_0(tmp_path: Path, after: float) -> None:
    log = tmp_path / "simulate.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "kafkube", *_recording(tmp_path)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    taking_signals(child.pid)  # its first instant: before, the interpreter itself is starting
    time.sleep(after)  # the instant under test, not a wait for something to happen
    assert child.poll() is None, log.read_text()
    began = time.monotonic()

    child.send_signal(signal.SIGTERM)

    assert child.wait(30) == 0, log.read_text()
    assert time.monotonic() - began < 10
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("after", [0.0, 0.3])
def test_the_demo_takes_a_child_it_stopped_at_once_for_a_clean_stop(
    tmp_path: Path, after: float
) -> None:
    # At 0 s the child may not even have reached kafkube's own code: the interpreter's
    # default action ends it (-15), which the parent that asked for it counts as a stop.
    child = Supervised("simulate", _recording(tmp_path), tmp_path / "s.log", dict(os.environ))
    child.start()
    time.sleep(after)

    assert child.stop(timeout=30) == 0, child.tail()


def test_a_child_that_exited_by_itself_keeps_its_code(tmp_path: Path) -> None:
    child = Supervised("bad", ["no-such-command"], tmp_path / "bad.log", dict(os.environ))
    child.start()
    assert child.process is not None
    child.process.wait(60)

    assert child.stop() == 2  # click's usage error, not taken for a clean stop


def test_a_stop_python_wraps_in_another_error_while_a_library_imports_still_exits_0() -> None:
    # As in a CI run: SIGTERM came while pydantic's class statement ran a __set_name__, and
    # Python 3.11 raised the handler's SystemExit as the cause of a RuntimeError.
    program = """
import signal
from kafkube.launch import run

class Named:
    def __set_name__(self, owner, name):
        signal.raise_signal(signal.SIGTERM)
        for _ in range(1000):  # the handler runs here, between two bytecodes
            pass

def command():
    class Model:
        field = Named()
    raise AssertionError("not stopped")

run(command)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], check=False, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
