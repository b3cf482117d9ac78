"""The producer against the real API server and Kafka: every occurrence once, across restarts."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.producer.service import producer_status
from tests.producing import (
    EventWriter,
    duplicates,
    new_producer,
    read_occurrences,
    read_records,
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


def test_a_list_of_several_pages_is_published_page_by_page_each_event_once(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    """1,100 events written while no producer runs: its first list takes three pages (500
    each), published as they come, and a SIGKILL during that list loses and doubles nothing."""
    writer = EventWriter(kube_api, namespace)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: writer.create(f"batch-{i}.backoff"), range(1100)))
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.start(wait=False)
    deadline = time.monotonic() + 60
    while not read_occurrences(endpoints.kafka_bootstrap, producer.topic):
        assert time.monotonic() < deadline, producer.log.read_text()[-3000:]
        time.sleep(0.05)
    producer.kill()  # somewhere in the list, most likely: pages published, no checkpoint yet
    producer.start()
    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    assert producer.terminate(timeout=30) == 0, producer.log.read_text()[-3000:]

    assert len(writer.occurrences) == 1100
    assert set(found) == writer.occurrences
    assert duplicates(found) == {}
    assert "listed 1100 events" in producer.log.read_text()


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


def test_the_events_k8s_io_view_of_two_listed_namespaces_is_published_and_no_other(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client  # noqa: PLC0415

    from tests.conftest import unique  # noqa: PLC0415

    core, events = client.CoreV1Api(kube_api), client.EventsV1Api(kube_api)
    second, unwatched = unique("kafkube-test"), unique("kafkube-test")
    for name in (second, unwatched):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    producer = new_producer(
        endpoints, namespace, tmp_path, "--namespace", second, "--api", "events.k8s.io/v1"
    )
    expected: set[tuple[str, str]] = set()
    try:
        producer.start()
        for ns in (namespace, second, unwatched):
            now = datetime.now(UTC)
            created = events.create_namespaced_event(
                ns,
                client.EventsV1Event(
                    metadata=client.V1ObjectMeta(name="sched-0.failed"),
                    event_time=now,
                    reporting_controller="default-scheduler",
                    reporting_instance="default-scheduler-0",
                    action="Scheduling",
                    reason="FailedScheduling",
                    note="0/3 nodes are available: 3 Insufficient cpu.",
                    type="Warning",
                    regarding=client.V1ObjectReference(kind="Pod", name="sched-0", namespace=ns),
                ),
            )
            patched = events.patch_namespaced_event(
                "sched-0.failed",
                ns,
                {"series": {"count": 2, "lastObservedTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
            )
            if ns != unwatched:
                expected |= {
                    (created.metadata.uid, created.metadata.resource_version),
                    (patched.metadata.uid, patched.metadata.resource_version),
                }
        found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, expected)
        records = read_records(endpoints.kafka_bootstrap, producer.topic)
        producer.terminate()
    finally:
        for name in (second, unwatched):
            core.delete_namespace(name)

    assert set(found) == expected
    assert duplicates(found) == {}
    assert {r["api_version"] for r in records} == {"events.k8s.io/v1"}
    assert {r["namespace"] for r in records} == {namespace, second}
    assert sorted((r["series"] or {}).get("count", 0) for r in records) == [0, 0, 2, 2]


def test_since_bounds_only_the_very_first_start_and_later_repeats_still_count(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    long_ago = datetime(2024, 1, 1, tzinfo=UTC)

    def event(name: str, when: datetime) -> tuple[str, str]:
        created = core.create_namespaced_event(
            namespace,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=name),
                involved_object=client.V1ObjectReference(
                    kind="Pod", name=name, namespace=namespace
                ),
                reason="Started",
                message="Started container",
                first_timestamp=when,
                last_timestamp=when,
                count=1,
            ),
        )
        return created.metadata.uid, created.metadata.resource_version

    old = event("old-0.started", long_ago)
    recent = event("new-0.started", datetime.now(UTC))
    producer = new_producer(endpoints, namespace, tmp_path, "--since", "2025-06-01T00:00:00Z")
    producer.start()
    repeated = core.patch_namespaced_event(
        "old-0.started", namespace, {"count": 2, "lastTimestamp": datetime.now(UTC).isoformat()}
    )
    again = (repeated.metadata.uid, repeated.metadata.resource_version)
    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, {recent, again})
    producer.terminate()

    assert set(found) == {recent, again}
    assert old not in found


def _remembered(bootstrap: str, topic: str) -> int:
    status = producer_status({"bootstrap.servers": bootstrap}, topic)
    return 0 if status is None else sum(c.uids_remembered for c in status.clusters.values())


def test_the_producers_filter_leaves_out_a_namespace_glob_and_normal_events_and_counts_them(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client  # noqa: PLC0415

    from tests.conftest import unique  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    skipped = unique("kafkube-skip")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=skipped)))
    producer = new_producer(
        endpoints, namespace, tmp_path, "--namespace", skipped,
        "--exclude", "namespace=kafkube-skip-*", "--exclude", "type=Normal",
    )  # fmt: skip
    kept, left_out = EventWriter(kube_api, namespace), EventWriter(kube_api, skipped)
    try:
        producer.start(wait=False)
        producer.wait_watching(watches=2)
        for i in range(3):
            kept.create(f"pod-{i}.normal", event_type="Normal")
            left_out.create(f"pod-{i}.warning")
        normals = set(kept.occurrences)
        for i in range(3):
            kept.create(f"pod-{i}.warning")
        warnings = kept.occurrences - normals
        found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, warnings)
        # Every occurrence, excluded or not, is in the producer's state once it was taken.
        deadline = time.monotonic() + 30
        while _remembered(endpoints.kafka_bootstrap, producer.topic) < 9:
            assert time.monotonic() < deadline, producer.log.read_text()
            time.sleep(0.3)
        assert producer.terminate() == 0
    finally:
        core.delete_namespace(skipped)
    stopped = [line for line in producer.log.read_text().splitlines() if '{"stopped"' in line]

    records = read_records(endpoints.kafka_bootstrap, producer.topic)
    assert {(r["namespace"], r["type"]) for r in records} == {(namespace, "Warning")}
    assert len(found) == 3
    assert json.loads(stopped[-1])["stopped"]["excluded"] == 6


def test_all_namespaces_overrides_the_configurations_list(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client  # noqa: PLC0415

    from tests.conftest import unique  # noqa: PLC0415
    from tests.producing import ProducerProcess  # noqa: PLC0415

    other = unique("kafkube-test")
    client.CoreV1Api(kube_api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=other))
    )
    producer = ProducerProcess(
        endpoints=endpoints,
        topic=unique("events"),
        namespace="",  # no -n: the list comes from the environment, and -A overrides it
        log=tmp_path / "producer.log",
        extra=["-A"],
        env={"KAFKUBE_PRODUCER__NAMESPACES": json.dumps([namespace])},
    )
    listed, unlisted = EventWriter(kube_api, namespace), EventWriter(kube_api, other)
    try:
        producer.start()
        listed.create("pod-0.warning")
        unlisted.create("pod-1.warning")
        expected = listed.occurrences | unlisted.occurrences
        found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, expected)
        assert producer.terminate() == 0
    finally:
        client.CoreV1Api(kube_api).delete_namespace(other)

    assert expected <= set(found)
    assert "watching from resourceVersion" in producer.log.read_text()
