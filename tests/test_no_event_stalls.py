"""P10: no single event stalls the stream (real API server, real Kafka).

An event too large for the topic is published cut and marked; one Kafka refuses
for good goes to the producer dead-letter topic after one aborted transaction;
the events after it flow either way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from kafkube.compose.endpoints import Endpoints
from kafkube.schemas.topics import producer_dlq_topic
from tests.producing import duplicates, new_producer, read_messages, read_records

pytestmark = pytest.mark.timeout(300)


def _create_event(kube_api: Any, namespace: str, name: str, **fields: Any) -> tuple[str, str]:
    from kubernetes import client  # noqa: PLC0415

    created = client.CoreV1Api(kube_api).create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=name),
            involved_object=fields.pop(
                "involved_object",
                client.V1ObjectReference(kind="Pod", name="web", namespace=namespace, uid="p-1"),
            ),
            reason="BackOff",
            type="Warning",
            count=1,
            **{"message": f"about {name}", **fields},
        ),
    )
    return str(created.metadata.uid), str(created.metadata.resource_version)


def _wait_for(bootstrap: str, topic: str, wanted: set[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(bootstrap, topic)
        if wanted <= {r["uid"] for r in records} or time.monotonic() > deadline:
            return records
        time.sleep(0.3)


def _exit_stats(log: Path) -> dict[str, Any]:
    lines = [line for line in log.read_text().splitlines() if line.startswith('{"stopped"')]
    assert lines, log.read_text()[-3000:]
    stats: dict[str, Any] = json.loads(lines[-1])["stopped"]
    return stats


def _set_topic_limit(bootstrap: str, topic: str, max_message_bytes: int) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource  # noqa: PLC0415

    resource = ConfigResource(
        "topic",
        topic,
        incremental_configs=[
            ConfigEntry(
                "max.message.bytes",
                str(max_message_bytes),
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.incremental_alter_configs([resource])[resource].result(30)


def _dead_letters(bootstrap: str, topic: str) -> list[dict[str, str]]:
    """Headers and value of every committed record of the producer dead-letter topic."""
    return [
        {
            **{key: value.decode() for key, value in message.headers() or []},
            "value": (message.value() or b"").decode(),
        }
        for message in read_messages(bootstrap, producer_dlq_topic(topic))
    ]


def test_p10_a_1_2_mb_event_is_published_cut_and_marked_between_two_small_ones(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.start()
    bootstrap = endpoints.kafka_bootstrap

    before = _create_event(kube_api, namespace, "small-0.backoff")
    large = _create_event(kube_api, namespace, "large.backoff", message="m" * 1_200_000)
    after = _create_event(kube_api, namespace, "small-1.backoff")
    records = _wait_for(bootstrap, producer.topic, {before[0], large[0], after[0]}, timeout=20)
    assert producer.terminate() == 0, producer.log.read_text()[-3000:]

    by_uid = {r["uid"]: r for r in records}
    assert set(by_uid) == {before[0], large[0], after[0]}, "an event did not arrive within 20 s"
    assert duplicates([(r["uid"], r["resource_version"]) for r in records]) == {}
    cut = by_uid[large[0]]
    assert cut["resource_version"] == large[1]
    assert cut["truncated"] is not None
    assert cut["truncated"]["cut"] == ["note"]
    assert cut["truncated"]["original_bytes"] > 1_200_000
    assert 900_000 < len(cut["note"]) < 1_000_000
    assert set(cut["note"]) == {"m"}
    assert by_uid[before[0]]["truncated"] is None
    assert by_uid[after[0]]["truncated"] is None
    stats = _exit_stats(producer.log)
    assert stats["truncated"] == 1
    assert stats["aborts"] == 0  # cut before sending: Kafka never refused it


def test_p10_an_event_kafka_refuses_aborts_once_then_is_cut_or_dead_lettered(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    """The topic's limit lowered under a running producer: Kafka refuses what the producer
    measured against the old one. One abort; then the limit is read again, an event that
    can be cut is published cut, one that cannot goes to the dead-letter topic."""
    from kubernetes import client  # noqa: PLC0415

    producer = new_producer(endpoints, namespace, tmp_path)
    producer.start()
    bootstrap = endpoints.kafka_bootstrap
    first = _create_event(kube_api, namespace, "first.backoff")
    _wait_for(bootstrap, producer.topic, {first[0]}, timeout=20)

    _set_topic_limit(bootstrap, producer.topic, 4096)
    long_path = client.V1ObjectReference(
        kind="Pod", name="web", namespace=namespace, uid="p-2", field_path="x" * 6000
    )
    cannot_fit = _create_event(kube_api, namespace, "path.backoff", involved_object=long_path)
    can_be_cut = _create_event(kube_api, namespace, "note.backoff", message="n" * 20_000)
    last = _create_event(kube_api, namespace, "last.backoff")
    records = _wait_for(bootstrap, producer.topic, {can_be_cut[0], last[0]}, timeout=30)
    assert producer.terminate() == 0, producer.log.read_text()[-3000:]

    by_uid = {r["uid"]: r for r in records}
    assert set(by_uid) == {first[0], can_be_cut[0], last[0]}
    truncated = by_uid[can_be_cut[0]]["truncated"]
    assert truncated is not None
    assert truncated["limit_bytes"] == 4096 - 1024
    letters = _dead_letters(bootstrap, producer.topic)
    assert [(d["kafkube.uid"], d["kafkube.resource_version"]) for d in letters] == [cannot_fit]
    assert letters[0]["error.class"] == "RecordTooLarge"
    assert letters[0]["kafkube.cluster"] == "test"
    assert json.loads(letters[0]["value"])["involvedObject"]["fieldPath"] == "x" * 6000
    stats = _exit_stats(producer.log)
    assert stats["dead_lettered"] == 1
    assert stats["truncated"] == 1
    assert 1 <= stats["aborts"] <= 2  # once for each refused record, at most
