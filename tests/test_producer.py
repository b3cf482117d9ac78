"""The producer against the real API server and Kafka: every occurrence once, across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from tests.producing import (
    EventWriter,
    duplicates,
    new_producer,
    read_occurrences,
    wait_for_occurrences,
)

pytestmark = pytest.mark.timeout(300)


def test_a_repeated_event_yields_one_record_per_occurrence_and_sigterm_exits_0(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    producer = new_producer(endpoints, namespace, tmp_path)
    writer = EventWriter(kube_api, namespace)
    producer.start()
    name = writer.create("web-0.backoff")
    writer.repeat(name)
    writer.repeat(name)
    for i in range(10):
        writer.create(f"job-{i}.backoff")

    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    code = producer.terminate(timeout=30)

    assert code == 0, producer.log.read_text()
    assert len(writer.occurrences) == 13
    assert set(found) == writer.occurrences
    assert duplicates(found) == {}


def test_a_restart_publishes_what_was_written_while_down_and_nothing_twice(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    producer = new_producer(endpoints, namespace, tmp_path)
    writer = EventWriter(kube_api, namespace)
    producer.start()
    names = [writer.create(f"api-{i}.unhealthy") for i in range(5)]
    wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)

    producer.kill()
    for name in names:
        writer.repeat(name)
        writer.repeat(name)  # both intermediate versions must arrive, not just the last
    writer.create("late-0.unhealthy")
    producer.start()
    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    producer.terminate()

    assert len(writer.occurrences) == 16
    assert set(found) == writer.occurrences
    assert duplicates(found) == {}
    # Nothing more arrives after the drain: the topic read again holds the same occurrences.
    assert sorted(read_occurrences(endpoints.kafka_bootstrap, producer.topic)) == sorted(found)


def test_a_zombie_producer_with_the_same_transactional_id_is_fenced(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    zombie = new_producer(endpoints, namespace, tmp_path)
    writer = EventWriter(kube_api, namespace)
    zombie.start()
    writer.create("etl-0.started")
    wait_for_occurrences(endpoints.kafka_bootstrap, zombie.topic, writer.occurrences)
    leader = new_producer(endpoints, namespace, tmp_path)
    leader.topic, leader.log = zombie.topic, tmp_path / "leader.log"  # same transactional id

    leader.start()  # init_transactions fences the first one
    for i in range(5):
        writer.create(f"etl-{i + 1}.started")
    found = wait_for_occurrences(endpoints.kafka_bootstrap, zombie.topic, writer.occurrences)
    assert zombie.process is not None
    zombie_code = zombie.process.wait(60)  # its next commit is refused, and it stops
    leader.terminate()

    assert zombie_code == 1
    assert "fenced" in zombie.log.read_text()
    assert set(found) == writer.occurrences
    assert duplicates(found) == {}
