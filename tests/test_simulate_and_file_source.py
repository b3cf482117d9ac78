"""``kafkube simulate`` and the ``file`` source: realistic events, through the real path, once."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.core.compiled import PURE_PYTHON_VARIABLE
from kafkube.producer.converting import one_pass
from kafkube.producer.recorded import watch_items
from kafkube.producer.simulating import record_watch_stream
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.producer.watching import LineItem
from kafkube.schemas.codec import Codec
from kafkube.schemas.records import API_CORE_V1
from tests.conftest import unique
from tests.processes import run_kafkube
from tests.producing import duplicates, new_producer, read_messages, read_occurrences

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


def _mixed_recording(path: Path) -> None:
    """Watch events one a line, among lines the line pass leaves to the parser (a list, an
    object without its watch type, a bookmark, a text beyond ASCII), then a pretty-printed
    tail, read from its first line by the standard decoder. One event is over the topic's
    record limit."""
    stream = io.StringIO()
    record_watch_stream(SyntheticCluster(9).operations(), stream, limit=400, seed=9)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]

    def changed(at: int, version: str, **fields: Any) -> dict[str, Any]:
        event = lines[at]["object"]
        return {**event, "metadata": {**event["metadata"], "resourceVersion": version}, **fields}

    bare = {**lines[7]["object"], "metadata": {**lines[7]["object"]["metadata"], "uid": "bare"}}
    odd = [
        {"apiVersion": "v1", "kind": "EventList", "items": [changed(5, "99990")]},
        bare,
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99991"}}},
        {"type": "MODIFIED", "object": changed(3, "99992", message="épuisé", count=41)},
        {"type": "DELETED", "object": changed(9, "99993")},
        # Read by the line pass, then over the topic's record limit: cut from its dict.
        {"type": "MODIFIED", "object": changed(11, "99994", message="x" * 1_200_000)},
    ]
    text = "".join(json.dumps(value) + "\n" for value in lines[:200])
    text += "".join(json.dumps(value, ensure_ascii=False) + "\n" for value in odd)
    text += "".join(json.dumps(value) + "\n" for value in lines[200:300])
    text += "".join(json.dumps(value, indent=2) for value in lines[300:])
    path.write_text(text)


def test_the_line_pass_reads_a_recording_as_the_parser_does(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    _mixed_recording(path)
    converter = one_pass(Codec(), cluster="c", producer_id="p", api_version=API_CORE_V1)
    assert converter is not None

    def read_line(line: bytes) -> LineItem | None:
        read = converter.convert_line(line, 1.0)
        return None if read is None else LineItem(read[0], read[1], line)

    parsed = list(watch_items(path))
    read = list(watch_items(path, read_line))

    assert [(i.type, i.uid, i.resource_version) for i in read] == [
        (i.type, i.uid, i.resource_version) for i in parsed
    ]
    assert [i.object for i in read] == [i.object for i in parsed]
    lined = [i for i in read if isinstance(i, LineItem)]
    assert len(lined) == 200 + 100 + 2  # one a line, the DELETED, the large; none of the rest
    assert len(read) == 400 + 6  # and the list's item, the bare one, a bookmark, three changes


@pytest.mark.services
def test_both_producer_paths_publish_the_same_records_from_a_recording(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    """The compiled line pass and the pure-Python path, over one recording of every shape:
    the same records (but for when each was observed), keys and headers, in the same order."""
    path = tmp_path / "mixed.jsonl"
    _mixed_recording(path)
    published = {}
    for name, env in (("compiled", {}), ("python", {PURE_PYTHON_VARIABLE: "1"})):
        topic = unique(f"paths-{name}")
        result = run_kafkube(
            "produce", "--cluster", "paths", "--bootstrap-servers", endpoints.kafka_bootstrap,
            "--source", "file", "--file", str(path), "--topic", topic, "--partitions", "1",
            "--transactional-id", f"tx-{topic}",
            env={**os.environ, **env},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        codec, records = Codec(), []
        for message in read_messages(endpoints.kafka_bootstrap, topic):
            record = codec.decode(message.value())
            record["observed_at"] = None
            records.append((message.key(), message.headers(), record))
        published[name] = records

    assert len(published["compiled"]) == 400 + 5  # all but the bookmark
    assert published["compiled"] == published["python"]
    (large,) = [r for _, _, r in published["compiled"] if r["resource_version"] == "99994"]
    assert 0 < len(large["note"]) < 1_200_000  # cut to fit, the same way on both paths
    assert large["truncated"]["cut"] == ["note"]
