"""The real services answer the real client libraries the way kafkube will rely on."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tests.conftest import unique

pytestmark = pytest.mark.timeout(180)


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for i in range(count):
        producer.produce(
            topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery
        )
    assert producer.flush(30) == 0
    assert errors == []


def _consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            seen.append(message.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return seen


def test_kafka_round_trip_commits_an_offset_that_the_admin_client_reads_back(
    kafka_bootstrap: str, topic: str
) -> None:
    group = unique("group")
    _produce(kafka_bootstrap, topic, 30)

    values = _consume_and_commit(kafka_bootstrap, topic, group, 30)

    assert sorted(values) == sorted(f"v{i}".encode() for i in range(30))
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(3)])
    committed = admin.list_consumer_group_offsets([request])[group].result(30)
    end_offsets = _end_offsets(kafka_bootstrap, topic)
    assert {tp.partition: tp.offset for tp in committed.topic_partitions} == end_offsets
    assert sum(end_offsets.values()) == 30


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("probe")})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(3)
        }
    finally:
        consumer.close()


def test_the_same_group_is_seen_by_kafkas_own_consumer_groups_tool(
    kafka_bootstrap: str, topic: str, kafka_tool: Callable[..., str]
) -> None:
    group = unique("group")
    _produce(kafka_bootstrap, topic, 12)
    _consume_and_commit(kafka_bootstrap, topic, group, 12)

    table = kafka_tool("kafka-consumer-groups", "--describe", "--group", group)

    rows = [line.split() for line in table.splitlines() if line.startswith(group)]
    assert sorted(int(row[2]) for row in rows) == [0, 1, 2]  # PARTITION
    end_offsets = _end_offsets(kafka_bootstrap, topic)
    for row in rows:
        partition, current, log_end, lag = int(row[2]), int(row[3]), int(row[4]), int(row[5])
        assert row[1] == topic
        assert current == log_end == end_offsets[partition]
        assert lag == 0


def test_s3_put_list_get_through_boto3_against_minio(s3_client: Any, s3_bucket: str) -> None:
    body = b'{"uid": "e1"}\n' * 100
    s3_client.put_object(Bucket=s3_bucket, Key="events/dt=2026-11-25/a.jsonl", Body=body)
    s3_client.put_object(Bucket=s3_bucket, Key="events/dt=2026-11-25/b.jsonl", Body=b"b")
    s3_client.put_object(Bucket=s3_bucket, Key="other/c.jsonl", Body=b"c")

    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="events/")
    got = s3_client.get_object(Bucket=s3_bucket, Key="events/dt=2026-11-25/a.jsonl")

    assert [item["Key"] for item in listed["Contents"]] == [
        "events/dt=2026-11-25/a.jsonl",
        "events/dt=2026-11-25/b.jsonl",
    ]
    assert got["Body"].read() == body


def test_minio_refuses_a_conditional_put_over_an_existing_object(
    s3_client: Any, s3_bucket: str
) -> None:
    """The sinks' exactly-once design leans on If-None-Match; the store must enforce it."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    s3_client.put_object(Bucket=s3_bucket, Key="batch", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3_client.put_object(Bucket=s3_bucket, Key="batch", Body=b"second", IfNoneMatch="*")

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3_client.get_object(Bucket=s3_bucket, Key="batch")["Body"].read() == b"first"


def test_gcs_upload_list_download_through_google_cloud_storage(
    gcs_client: Any, gcs_bucket: str
) -> None:
    bucket = gcs_client.bucket(gcs_bucket)
    bucket.blob("events/dt=2026-11-25/a.avro").upload_from_string(b"\x00avro" * 1000)
    bucket.blob("events/dt=2026-11-25/b.avro").upload_from_string(b"b")
    bucket.blob("other/c.avro").upload_from_string(b"c")

    names = [blob.name for blob in gcs_client.list_blobs(gcs_bucket, prefix="events/")]
    data = bucket.blob("events/dt=2026-11-25/a.avro").download_as_bytes()

    assert names == ["events/dt=2026-11-25/a.avro", "events/dt=2026-11-25/b.avro"]
    assert data == b"\x00avro" * 1000


def test_gcs_emulator_enforces_generation_preconditions(gcs_client: Any, gcs_bucket: str) -> None:
    """if_generation_match=0 means "only if absent": a second writer must be refused."""
    from google.api_core.exceptions import PreconditionFailed  # noqa: PLC0415

    blob = gcs_client.bucket(gcs_bucket).blob("batch")
    blob.upload_from_string(b"first", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        gcs_client.bucket(gcs_bucket).blob("batch").upload_from_string(
            b"second", if_generation_match=0
        )

    assert gcs_client.bucket(gcs_bucket).blob("batch").download_as_bytes() == b"first"


def test_an_event_created_then_patched_is_watched_as_added_then_modified(
    kube_api: Any, namespace: str
) -> None:
    from kubernetes import client, watch  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    start = core.list_namespaced_event(namespace).metadata.resource_version
    seen: list[tuple[str, str, int]] = []
    ready = threading.Event()

    def watch_events() -> None:
        stream = watch.Watch()
        ready.set()
        for item in stream.stream(
            core.list_namespaced_event,
            namespace,
            resource_version=start,
            timeout_seconds=30,
        ):
            event = item["object"]
            seen.append((item["type"], event.metadata.name, event.count or 0))
            if len(seen) == 2:
                stream.stop()

    watcher = threading.Thread(target=watch_events, daemon=True)
    watcher.start()
    ready.wait(10)
    body = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="web-0.pulling"),
        involved_object=client.V1ObjectReference(kind="Pod", name="web-0", namespace=namespace),
        reason="Pulling",
        message='Pulling image "nginx:1.27"',
        type="Normal",
        count=1,
    )
    created = core.create_namespaced_event(namespace, body)
    core.patch_namespaced_event("web-0.pulling", namespace, {"count": 2})
    watcher.join(40)

    assert not watcher.is_alive()
    assert seen == [("ADDED", "web-0.pulling", 1), ("MODIFIED", "web-0.pulling", 2)]
    assert re.fullmatch(r"[0-9a-f-]{36}", created.metadata.uid)


def test_kafka_refuses_a_produce_to_a_topic_that_does_not_exist(kafka_bootstrap: str) -> None:
    """The stack does not auto-create topics, so a typo in a topic name is an error, not data."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 5000})
    failures: list[Any] = []
    producer.produce(
        unique("missing"), value=b"x", on_delivery=lambda err, _m: failures.append(err)
    )
    producer.flush(15)

    assert len(failures) == 1
    assert failures[0] is not None
    assert failures[0].code() in {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT}  # noqa: SLF001
