"""A dependency that is away (Kafka, a store, the registry), told once per change of state.

A fault that lasts minutes must not flood the logs: one line when the dependency goes
away, at most one reminder a minute with a count of the failures meanwhile, one line
when it is back. Readiness reads ``problem``. The clock is injected: tests drive it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable


class Outage:
    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        remind_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.log, self.remind_every, self.clock = what, logger, remind_every, clock
        self.since: float | None = None  # when it went away; None while it answers
        self.problem: str | None = None
        self._failures = 0  # since the last line
        self._said_at = 0.0

    @property
    def away(self) -> bool:
        return self.since is not None

    def failed(self, err: object, *, doing: str = "") -> None:
        """One more failure: said at once if it is the first (``doing``, else ``; retrying``,
        after the error), else at most once a minute."""
        now = self.clock()
        self.problem = f"{self.what} unavailable: {err}"
        if self.since is None:
            self.since, self._said_at, self._failures = now, now, 0
            self.log.warning("%s unavailable (%s)%s", self.what, err, doing or "; retrying")
            return
        self._failures += 1
        if now - self._said_at >= self.remind_every:
            self.log.warning(
                "%s still unavailable after %.0f s (%d failed tries in the last %.0f s): %s",
                self.what, now - self.since, self._failures, now - self._said_at, err,
            )  # fmt: skip
            self._said_at, self._failures = now, 0

    def recovered(self) -> None:
        """It answered: said once, if it had been away."""
        if self.since is None:
            return
        self.log.warning("%s is back after %.0f s", self.what, self.clock() - self.since)
        self.since, self.problem = None, None


_FACILITY = re.compile(r"([A-Z]+) \[rdkafka#")


class QuietRepeats(logging.Filter):
    """Lets a message through the first time, then lines like it (librdkafka's of the same
    facility and level, or the same text but for its numbers) at most once a minute, with how
    many were held back: librdkafka says ``Connect to ... failed`` for every client and broker
    every few seconds while Kafka is away."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every, self.clock = every, clock
        self._seen: dict[str, tuple[float, int]] = {}  # shape -> (said at, held back since)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        message = record.getMessage()
        # librdkafka's lines start with their facility (FAIL: a connection failed, whatever
        # broker, client or number it names): one of a facility is a repeat of the others.
        facility = _FACILITY.match(message)
        shape = (
            f"{record.levelno} {facility[1]}"
            if facility
            else "".join("#" if c.isdigit() else c for c in message)
        )
        now = self.clock()
        said = self._seen.get(shape)
        if said is not None and now - said[0] < self.every:
            self._seen[shape] = (said[0], said[1] + 1)
            return False
        if len(self._seen) > 1000:  # shapes are few; never let them pile up
            self._seen.clear()
        if said is not None and said[1]:
            record.msg, record.args = f"{message} (and {said[1]} more like it)", None
        self._seen[shape] = (now, 0)
        return True


# librdkafka's own lines go through Python logging (text or JSON like the rest), not stderr,
# every client's through this one logger, its repeats held back.
RDKAFKA_LOG = logging.getLogger("kafkube.librdkafka")
RDKAFKA_LOG.addFilter(QuietRepeats())
