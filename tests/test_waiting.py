"""The one way kafkube waits: tries again with a back-off until asked to stop or out of
attempts, sleeps that a stop cuts short, and deadlines on an injected clock."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from tenacity import RetryError, wait_none

from kafkube.consumers.positions import Offsets
from kafkube.core.waiting import Deadline, retrying, sleeping_until


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_deadline_says_what_is_left_and_when_it_passed() -> None:
    clock = Clock()
    deadline = Deadline(10, clock=clock)

    clock.now += 4
    left, passed_early = deadline.left(), deadline.passed()
    clock.now += 6

    assert (left, passed_early) == (6, False)
    assert deadline.passed()
    assert deadline.left() == 0


def test_retrying_tries_until_it_answers() -> None:
    calls: list[int] = []

    for attempt in retrying(retry=lambda err: isinstance(err, OSError), wait=wait_none()):
        with attempt:
            calls.append(1)
            if len(calls) < 3:
                raise OSError("away")

    assert len(calls) == 3


def _always_away(calls: list[int], **policy: object) -> None:
    for attempt in retrying(retry=lambda _: True, **policy):  # type: ignore[arg-type]
        with attempt:
            calls.append(1)
            raise OSError(f"away {len(calls)}")


def test_retrying_gives_up_after_its_attempts_raising_the_last_failure() -> None:
    calls: list[int] = []

    with pytest.raises(OSError, match="away 2"):
        _always_away(calls, attempts=2, wait=wait_none())

    assert len(calls) == 2


def test_retrying_stops_when_asked_and_its_sleep_ends_at_once() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    began = time.monotonic()

    calls: list[int] = []

    with pytest.raises(RetryError):
        _always_away(calls, stop=stop, wait=lambda _: 60.0, reraise=False)

    assert len(calls) == 2  # the try the stop cut the sleep before, then no more
    assert time.monotonic() - began < 30  # the 60 s back-off was cut short by the stop


def test_a_sleep_until_an_event_ends_when_it_is_set() -> None:
    event = threading.Event()
    event.set()
    began = time.monotonic()

    sleeping_until(event)(60)

    assert time.monotonic() - began < 1


@pytest.mark.parametrize("code", [KafkaError.UNKNOWN_LEADER_EPOCH, KafkaError.FENCED_LEADER_EPOCH])
def test_a_leader_epoch_not_caught_up_is_asked_again_not_an_error(code: int) -> None:
    """Right after a topic is made (the demo's), a broker may not know the epoch the client
    knows yet: offsets are asked again, as while a coordinator loads."""
    answers: list[Exception | int] = [KafkaException(KafkaError(code)), 7]

    def ask() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with Offsets({"bootstrap.servers": "127.0.0.1:9"}, "t") as offsets:
        assert offsets._result(ask, "listing offsets") == 7  # noqa: SLF001 - the retry rule
    assert not answers
