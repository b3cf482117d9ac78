"""Real faults between the producer and the API server: nothing missed, nothing doubled."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from tests.faults import compact_etcd, proxied_kubeconfig
from tests.producing import EventWriter, duplicates, new_producer, wait_for_occurrences

pytestmark = pytest.mark.timeout(300)


def test_a_410_after_compaction_mid_stream_relists_and_loses_or_doubles_nothing(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path, etcd_url: str
) -> None:
    with proxied_kubeconfig(endpoints.kubeconfig, tmp_path) as (kubeconfig, proxy):
        producer = new_producer(endpoints, namespace, tmp_path, "--kubeconfig", kubeconfig)
        writer = EventWriter(kube_api, namespace)
        producer.start()
        names = [writer.create(f"db-{i}.probe") for i in range(4)]
        wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
        published_live = set(writer.occurrences)

        proxy.stall()  # the producer's watch hears nothing more ...
        writer.create("db-9.probe")
        writer.repeat(names[0])
        lost = max(
            (occurrence for occurrence in writer.occurrences if occurrence not in published_live),
            key=lambda occurrence: int(occurrence[1]),
        )  # count 2 of names[0]: compacted away before anyone could read it
        writer.repeat(names[0])  # count 3: what the relist will show
        compact_etcd(etcd_url)  # ... and its resourceVersion is compacted away
        proxy.drop_all()  # reconnect from the old resourceVersion: 410 Gone
        found = wait_for_occurrences(
            endpoints.kafka_bootstrap, producer.topic, writer.occurrences - {lost}
        )
        writer.repeat(names[1])  # and the watch goes on after the relist
        found = wait_for_occurrences(
            endpoints.kafka_bootstrap, producer.topic, writer.occurrences - {lost}
        )
        producer.terminate()

    log = producer.log.read_text()
    assert "relisting" in log
    # The one occurrence that existed only between the stall and the compaction is provably
    # missed, and said so; everything else arrives once.
    assert "repeated 1 times while unwatched" in log
    assert '"provably_missed": 1' in log
    assert set(found) == writer.occurrences - {lost}
    assert duplicates(found) == {}


def test_dropped_connections_lose_and_double_nothing(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    with proxied_kubeconfig(endpoints.kubeconfig, tmp_path) as (kubeconfig, proxy):
        producer = new_producer(endpoints, namespace, tmp_path, "--kubeconfig", kubeconfig)
        writer = EventWriter(kube_api, namespace)
        producer.start()
        names = [writer.create(f"cache-{i}.evicted") for i in range(3)]
        for round_ in range(5):
            proxy.drop_all()
            writer.repeat(names[round_ % 3])
            writer.create(f"late-{round_}.evicted")
        found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
        producer.terminate()

    assert set(found) == writer.occurrences
    assert duplicates(found) == {}
    assert "reconnecting" in producer.log.read_text()


def test_an_api_server_restart_mid_watch_loses_and_doubles_nothing(
    endpoints: Endpoints,
    kube_api: Any,
    namespace: str,
    tmp_path: Path,
    native_stack: Stack,
    etcd_url: str,
) -> None:
    producer = new_producer(endpoints, namespace, tmp_path)
    writer = EventWriter(kube_api, namespace)
    producer.start()
    names = [writer.create(f"queue-{i}.oom") for i in range(3)]
    wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)

    native_stack.restart(["kube-apiserver"])
    writer.repeat(names[0])
    writer.create("queue-9.oom")
    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    producer.terminate()

    assert set(found) == writer.occurrences
    assert duplicates(found) == {}


def test_server_side_watch_timeouts_lose_and_double_nothing(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    producer = new_producer(endpoints, namespace, tmp_path, "--watch-timeout-seconds", "1")
    writer = EventWriter(kube_api, namespace)
    producer.start()
    name = writer.create("ingress-0.sync")
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:  # events spread over several server-ended watches
        writer.repeat(name)
        time.sleep(0.3)
    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    producer.terminate()

    assert producer.log.read_text().count("watching from resourceVersion") >= 3
    assert set(found) == writer.occurrences
    assert duplicates(found) == {}
