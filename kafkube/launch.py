"""The ``kafkube`` command's first instant: a stop signal is taken before anything else loads.

A parent (the demo, a supervisor, the kubelet) may send SIGTERM at any moment, also
while the command still imports its libraries. Until a command says it runs (``claim``:
a service or a simulation, which then stops on its own terms, committing what it holds),
a stop signal ends the process at once with exit code 0: nothing has started, so nothing
is lost, and a parent that stopped it sees a clean stop rather than ``-15``. After the
claim, the signal only sets ``STOP``, which the command's loop reads.
"""

from __future__ import annotations

import faulthandler
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP = threading.Event()
_claimed = threading.Event()


def _stop(_signum: int, _frame: FrameType | None) -> None:
    STOP.set()
    if not _claimed.is_set():
        raise SystemExit(0)


def take_stop_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)


def claim() -> threading.Event:
    """From now on a stop signal is a request the caller serves: ``STOP`` is set, no more.
    A signal that came before is still in ``STOP``."""
    take_stop_signals()
    _claimed.set()
    return STOP


def run(command: Callable[[], None]) -> None:
    """``command`` with stop signals taken from the first instant. A stop before the claim
    exits 0 also where Python wraps the handler's ``SystemExit`` in another error: 3.11 turns
    it into a ``RuntimeError`` when it comes while a library's class sets its attributes'
    names (``__set_name__``), which pydantic's models do as they import."""
    faulthandler.enable()  # a crash in a C library (librdkafka, pyarrow) leaves its stacks
    try:
        take_stop_signals()
    except KeyboardInterrupt:  # a Ctrl-C before the handler was in place: nothing has started
        raise SystemExit(0) from None
    try:
        command()
    except Exception:
        if STOP.is_set() and not _claimed.is_set():
            raise SystemExit(0) from None
        raise


def _command() -> None:
    from kafkube.cli import main as command  # noqa: PLC0415 - after the signals are taken

    command()


def main() -> None:
    run(_command)
