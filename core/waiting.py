"""The one way kafkube waits: a back-off between tries, a sleep that a stop cuts short, and a
deadline. Every loop that tries again or waits for a condition is made of these.

``retrying`` is tenacity's loop with kafkube's policy filled in (a back-off from half a
second to 30 s, stopping when asked, sleeping until asked to stop); ``waited_out`` is the
common case of a dependency that is away, said through an ``Outage``; ``Deadline`` is how
long a bounded wait has left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_exponential

from kafkube.core.outages import Outage

T = TypeVar("T")
# Between tries of something away: from half a second up to 30 s.
BACKOFF = wait_exponential(multiplier=0.5, max=30)


class Deadline:
    """A bound on a wait, on the monotonic clock: how long is left, and whether it passed."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self._clock = seconds, clock
        self.at = clock() + seconds

    def left(self) -> float:
        return max(0.0, self.at - self._clock())

    def passed(self) -> bool:
        return self._clock() >= self.at


def sleeping_until(event: threading.Event | None) -> Callable[[float], None]:
    """A sleep that ``event`` cuts short (a plain sleep without one)."""
    if event is None:
        return time.sleep

    def sleep(seconds: float) -> None:
        event.wait(seconds)

    return sleep


def retrying(  # noqa: PLR0913 - tenacity's knobs, each with kafkube's default
    *,
    retry: Callable[[BaseException], bool],
    stop: threading.Event | Callable[[], bool] | None = None,
    attempts: int | None = None,
    wait: wait_base | Callable[[RetryCallState], float] = BACKOFF,
    sleep: Callable[[float], None] | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
    reraise: bool = True,
    gave_up: Callable[[RetryCallState], Any] | None = None,
) -> Retrying:
    """Tries of a call: again after a failure ``retry`` accepts, with ``wait`` between them
    (the back-off), until it answers, ``stop`` is set (an event, or a condition) or
    ``attempts`` are spent. The sleep between tries ends early when ``stop`` (an event) is
    set. When it stops, ``gave_up`` is called if given; else with ``reraise`` the last
    failure is raised, without it tenacity's ``RetryError``."""
    stopped: Callable[[], bool] = (
        stop.is_set if isinstance(stop, threading.Event) else stop or (lambda: False)
    )
    limit = stop_after_attempt(attempts) if attempts is not None else None

    def should_stop(state: RetryCallState) -> bool:
        return stopped() or (limit is not None and limit(state))

    return Retrying(
        retry=retry_if_exception(retry),
        stop=should_stop,
        wait=wait,
        sleep=sleep or sleeping_until(stop if isinstance(stop, threading.Event) else None),
        before_sleep=before_sleep,
        reraise=reraise,
        retry_error_callback=gave_up,
    )


class Stopped(Exception):  # noqa: N818 - reads as what happened
    """Asked to stop while waiting for a dependency to come back."""


def waited_out(
    call: Callable[[], T],
    outage: Outage,
    stop: threading.Event,
    *,
    away: Callable[[BaseException], bool],
) -> T:
    """``call()`` until it answers: a failure that ``away`` says may pass is said through
    ``outage`` (once per change of state) and tried again with a backoff up to 30 s; any
    other failure is raised; ``Stopped`` if ``stop`` is set meanwhile."""

    def failed(retry: RetryCallState) -> None:
        err = retry.outcome.exception() if retry.outcome else None
        outage.failed(err)

    for attempt in retrying(
        retry=away, stop=stop, before_sleep=failed, gave_up=lambda _: _stopped()
    ):
        with attempt:
            answer = call()
    outage.recovered()
    return answer


def _stopped() -> None:
    raise Stopped
