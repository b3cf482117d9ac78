"""The stack and the node's relays signal only the very processes they started: a pid read
from a state file may by now belong to another process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kafkube.compose.processes import identity, kill_recorded_groups, running_pid, still_running


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )


def test_a_recorded_process_is_found_while_it_runs_and_never_once_its_pid_means_another() -> None:
    child = _sleeper()
    recorded = identity(child.pid)
    pid, start = recorded.split(":")

    assert still_running(recorded) == child.pid
    assert still_running(f"{pid}:{int(start) + 1}") is None  # the same pid, another process
    assert still_running(pid) is None  # no start time: nothing is known, nothing is signalled
    child.kill()
    child.wait()
    assert still_running(recorded) is None


def test_only_recorded_groups_still_running_as_recorded_are_killed() -> None:
    mine, stranger = _sleeper(), _sleeper()
    pid, start = identity(stranger.pid).split(":")

    kill_recorded_groups([identity(mine.pid), f"{pid}:{int(start) - 1}", "garbage"])

    assert mine.wait(10) == -9
    assert stranger.poll() is None
    stranger.kill()
    stranger.wait()


def test_an_old_pid_file_naming_a_process_without_the_stacks_marker_is_not_ours(
    tmp_path: Path,
) -> None:
    (tmp_path / "kafka.pid").write_text(f"{os.getpid()}\n")  # this test's own process

    assert running_pid(tmp_path, "kafka") is None
