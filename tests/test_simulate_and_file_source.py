"""``kafkube simulate`` and the ``file`` source: realistic events, through the real path, once."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.producer.recorded import watch_items
from kafkube.producer.synthetic import SyntheticCluster
from tests.conftest import unique
from tests.processes import run_kafkube
from tests.producing import duplicates, new_producer, read_occurrences

pytestmark = pytest.mark.timeout(300)


def _kafkube(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = run_kafkube(*args, timeout=timeout)
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_synthetic_cluster_is_seeded_varied_and_repeats_its_trouble() -> None:
    first = list(islice(SyntheticCluster(7).operations(), 2000))
    again = list(islice(SyntheticCluster(7).operations(), 2000))
    other = list(islice(SyntheticCluster(8).operations(), 2000))
    reasons = Counter(op.event["reason"] for op in first if op.action == "create")
    repeats = Counter(op.name for op in first if op.action == "repeat")

    assert first == again
    assert first != other
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started", "Unhealthy", "BackOff"} <= set(
        reasons
    )
    assert {"OOMKilling", "Evicted", "ScalingReplicaSet"} & set(reasons)
    assert max(repeats.values()) >= 3  # one event seen again and again, its count going up
    created = {op.name for op in first if op.action == "create"}
    assert set(repeats) <= created


def test_simulate_writes_into_the_api_server_and_the_producer_publishes_each_occurrence_once(
    endpoints: Endpoints, namespace: str, tmp_path: Path
) -> None:
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.start()

    simulated = _kafkube(
        "simulate", "--kubeconfig", endpoints.kubeconfig, "--namespace", namespace,
        "--seed", "3", "--rate", "400", "--count", "300",
    )  # fmt: skip
    stats = json.loads(simulated.stdout)
    expected = stats["created"] + stats["repeated"]
    found = read_occurrences(endpoints.kafka_bootstrap, producer.topic)
    for _ in range(60):
        if len(found) >= expected:
            break
        found = read_occurrences(endpoints.kafka_bootstrap, producer.topic)
    producer.terminate()

    assert stats["skipped"] == 0
    assert stats["repeated"] > 0
    assert len(found) == expected == 300
    assert duplicates(found) == {}


def test_a_recorded_stream_is_published_once_even_when_replayed_twice(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    recording = tmp_path / "watch.jsonl"
    _kafkube("simulate", "--record", str(recording), "--count", "2000", "--seed", "5")
    topic = unique("recorded")
    produce = [
        "produce", "--cluster", "recorded", "--bootstrap-servers", endpoints.kafka_bootstrap,
        "--source", "file", "--file", str(recording), "--topic", topic,
        "--transactional-id", f"tx-{topic}",
    ]  # fmt: skip

    _kafkube(*produce)  # ends by itself at the end of the file
    once = read_occurrences(endpoints.kafka_bootstrap, topic)
    _kafkube(*produce)
    twice = read_occurrences(endpoints.kafka_bootstrap, topic)

    assert len(recording.read_text().splitlines()) == 2000
    assert len(once) == 2000
    assert duplicates(once) == {}
    assert sorted(twice) == sorted(once)


def test_kubectl_watch_output_in_every_shape_is_read(tmp_path: Path) -> None:
    core: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"uid": "u1", "resourceVersion": "5", "name": "a.1", "namespace": "n"},
        "count": 1,
    }
    repeated = {**core, "metadata": {**core["metadata"], "resourceVersion": "6"}, "count": 2}
    events_v1 = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"uid": "u2", "resourceVersion": "7", "name": "b.1", "namespace": "n"},
        "note": "x",
    }
    listed = {"apiVersion": "v1", "kind": "EventList", "items": [core]}
    path = tmp_path / "kubectl.json"
    path.write_text(
        json.dumps(listed)
        + "\n"
        + json.dumps(repeated, indent=4)  # kubectl get events --watch -o json: pretty, back to back
        + json.dumps({"type": "MODIFIED", "object": events_v1}, indent=2)  # --output-watch-events
    )

    items = [(item.type, item.resource_version) for item in watch_items(path)]

    assert items == [("ADDED", "5"), ("MODIFIED", "6"), ("MODIFIED", "7")]
