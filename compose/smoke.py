"""A few records end to end through the running stack, with the real client of each service.

An Event is written to the Kubernetes API server and read back through a
watch, sent through a Kafka topic, and stored as an object in S3 (MinIO) and
in GCS (the emulator). ``kafkube demo`` grows this into the product.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stores import ensure_buckets, gcs_client, s3_client
from kafkube.core.errors import ServiceError
from kafkube.core.waiting import Deadline

TOPIC = "kafkube.smoke"
BUCKET = "kafkube-smoke"
NAMESPACE = "default"


@dataclass(frozen=True)
class SmokeResult:
    event_uid: str
    kafka_offset: int
    s3_url: str
    gcs_url: str


def _event_through_kubernetes(endpoints: Endpoints, run_id: str) -> tuple[str, bytes]:
    """The uid and JSON of the event, as the watch delivered it."""
    from kubernetes import client, config, watch  # noqa: PLC0415 - client libraries at the edge

    configuration = client.Configuration()
    config.load_kube_config(config_file=endpoints.kubeconfig, client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        listed = core.list_namespaced_event(NAMESPACE).metadata
        start = listed.resource_version if listed else None
        name = f"kafkube-smoke.{run_id}"
        core.create_namespaced_event(
            NAMESPACE,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=name),
                involved_object=client.V1ObjectReference(
                    kind="Pod", name="smoke", namespace=NAMESPACE
                ),
                reason="Smoke",
                message="kafkube stack smoke: one event end to end",
                type="Normal",
            ),
        )
        for item in watch.Watch().stream(
            core.list_namespaced_event, NAMESPACE, resource_version=start, timeout_seconds=30
        ):
            event = item["object"]
            if event.metadata.name == name:
                body = json.dumps(api.sanitize_for_serialization(event), sort_keys=True)
                return str(event.metadata.uid), body.encode()
    raise ServiceError("the watch did not show the smoke event within 30 s")


def _through_kafka(endpoints: Endpoints, payload: bytes, key: bytes) -> int:
    from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: PLC0415
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415
    from confluent_kafka.cimpl import NewTopic  # noqa: PLC0415 - where the typed stub defines it

    bootstrap = endpoints.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if TOPIC not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])[
            TOPIC
        ].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered: list[int | None] = []
    producer.produce(
        TOPIC, key=key, value=payload, on_delivery=lambda _e, m: delivered.append(m.offset())
    )
    if producer.flush(30) or not delivered or delivered[0] is None:
        raise ServiceError("Kafka did not acknowledge the smoke record within 30 s")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafkube-smoke"})
    offset = delivered[0]
    consumer.assign([TopicPartition(TOPIC, 0, offset)])
    try:
        deadline = Deadline(30)
        while not deadline.passed():
            message = consumer.poll(1.0)
            if message is not None and message.error() is None and message.value() == payload:
                return offset
    finally:
        consumer.close()
    raise ServiceError("the smoke record did not come back from Kafka within 30 s")


def run(endpoints: Endpoints) -> SmokeResult:
    run_id = uuid.uuid4().hex[:10]
    uid, payload = _event_through_kubernetes(endpoints, run_id)
    offset = _through_kafka(endpoints, payload, uid.encode())
    key = f"smoke/{run_id}.json"

    ensure_buckets(endpoints, s3_bucket=BUCKET, gcs_bucket=BUCKET)
    s3 = s3_client(endpoints)
    s3.put_object(Bucket=BUCKET, Key=key, Body=payload)
    if s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() != payload:
        raise ServiceError("S3 returned other bytes than were stored")

    bucket = gcs_client(endpoints).bucket(BUCKET)
    bucket.blob(key).upload_from_string(payload, content_type="application/json")
    if bucket.blob(key).download_as_bytes() != payload:
        raise ServiceError("GCS returned other bytes than were stored")
    return SmokeResult(
        event_uid=uid,
        kafka_offset=offset,
        s3_url=f"s3://{BUCKET}/{key}",
        gcs_url=f"gs://{BUCKET}/{key}",
    )
