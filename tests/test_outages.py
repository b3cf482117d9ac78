"""A dependency away for minutes is told once per change of state, not once per try."""

from __future__ import annotations

import logging
import threading

import pytest

from kafkube.core.outages import Outage, QuietRepeats
from kafkube.core.waiting import Stopped, waited_out


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_says_it_began_reminds_once_a_minute_and_says_it_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = Outage("Kafka", logging.getLogger("t"), clock=clock)
    caplog.set_level(logging.WARNING)

    for _ in range(120):  # a try every second for two minutes
        outage.failed("Connection refused")
        clock.now += 1
    assert outage.problem == "Kafka unavailable: Connection refused"
    outage.recovered()
    outage.recovered()

    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # not 120
    assert lines[0].startswith("Kafka unavailable (Connection refused)")
    assert "still unavailable after 60 s (60 failed tries" in lines[1]
    assert lines[2] == "Kafka is back after 120 s"
    assert outage.problem is None
    assert not outage.away


def test_librdkafka_repeats_are_held_back_and_counted() -> None:
    clock = Clock()
    quiet = QuietRepeats(clock=clock)

    def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("kafkube.librdkafka", level, "", 0, message, None, None)

    passed = []
    for second in range(150):
        clock.now = 1000.0 + second
        line = record(f"FAIL [rdkafka#producer-{second % 3}] Connect to 127.0.0.1:{9092}: refused")
        if quiet.filter(line):
            passed.append(line.getMessage())
    assert len(passed) == 3  # at 0, 60 and 120 s
    assert passed[1].endswith("(and 59 more like it)")
    assert quiet.filter(record("another kind of line"))
    assert quiet.filter(record("debug chatter", logging.DEBUG))


def test_waited_out_tries_again_until_it_answers_and_stops_when_asked() -> None:
    answers = iter([ConnectionError("down"), ConnectionError("down"), "up"])

    def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    outage = Outage("x", logging.getLogger("t"))
    never = threading.Event()
    # Backoff from 0.5 s: two failures cost about 1.5 s of the test.
    assert waited_out(call, outage, never, away=lambda e: isinstance(e, ConnectionError)) == "up"
    assert not outage.away

    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        waited_out(_refuse, outage, stop, away=lambda _: True)
    with pytest.raises(ValueError, match="for good"):
        waited_out(_refuse, outage, never, away=lambda e: isinstance(e, ConnectionError))


def _refuse() -> str:
    raise ValueError("refused for good")
