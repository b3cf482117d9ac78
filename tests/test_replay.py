"""Replay (P7): an offset reset, by ``kafkube replay`` or by Kafka's own tool, makes a sink
rewrite the same objects, byte for byte, and add none."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.consumers.naming import ObjectRange, parse_object_name
from kafkube.schemas.codec import Codec
from tests.conftest import unique
from tests.producing import read_records
from tests.sinking import (
    SinkProcess,
    committed,
    create_topic,
    event_values,
    occurrences_in_avro,
    produce,
)

pytestmark = pytest.mark.timeout(300)

PARTITIONS = 3


@dataclass
class Store:
    """Where one sink writes, and a snapshot of everything there: name -> bytes."""

    kind: str
    target: list[str]
    env: dict[str, str]
    snapshot: Callable[[], dict[str, bytes]]


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, endpoints: Endpoints, tmp_path: Path) -> Store:
    if request.param == "file":
        out = tmp_path / "out"
        return Store(
            "file",
            ["--dir", str(out)],
            {},
            lambda: {
                p.relative_to(out).as_posix(): p.read_bytes()
                for p in out.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            },
        )
    s3: Any = request.getfixturevalue("s3_client")
    bucket: str = request.getfixturevalue("s3_bucket")

    def objects() -> dict[str, bytes]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}

    env = {
        "AWS_ENDPOINT_URL_S3": endpoints.s3_endpoint,
        "AWS_ACCESS_KEY_ID": endpoints.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": endpoints.s3_secret_key,
        "AWS_REGION": endpoints.s3_region,
    }
    return Store("s3", ["--bucket", bucket], env, objects)


@dataclass
class Replay:
    bootstrap: str
    topic: str
    group: str
    store: Store
    tmp_path: Path

    def run_sink_to_the_end(self, total: int, *rotation: str) -> int:
        """Run the sink until it committed every record; the records it wrote on the way."""
        sink = SinkProcess(
            bootstrap=self.bootstrap, topic=self.topic, directory=self.tmp_path,
            log=self.tmp_path / f"sink-{unique('log')}.log", group=self.group,
            kind=self.store.kind, target=self.store.target, env=self.store.env,
            extra=list(rotation),
        )  # fmt: skip
        sink.start()
        deadline = time.monotonic() + 120
        while sum(max(0, offset) for offset in self.offsets().values()) < total:
            assert time.monotonic() < deadline, sink.log.read_text()
            assert sink.alive(), sink.log.read_text()
            time.sleep(0.3)
        assert sink.terminate() == 0, sink.log.read_text()
        return int(sink.exit_counts()["records"])

    def offsets(self) -> dict[int, int]:
        return committed(self.bootstrap, self.group, self.topic, PARTITIONS)

    def kafkube(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable, "-m", "kafkube", "replay", "--sink", self.store.kind,
                "--group", self.group, "--topic", self.topic,
                "--bootstrap-servers", self.bootstrap, *args,
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


@pytest.fixture
def replay(kafka_bootstrap: str, store: Store, tmp_path: Path) -> Replay:
    topic = unique("replay")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    return Replay(kafka_bootstrap, topic, unique(f"sink-{store.kind}"), store, tmp_path)


@pytest.mark.parametrize("output_format", ["avro", "parquet"])
def test_kafkube_replay_to_earliest_rewrites_the_same_objects_byte_for_byte(
    replay: Replay, output_format: str
) -> None:
    produce(replay.bootstrap, replay.topic, event_values(1200))
    as_asked = ("--format", output_format)
    first = replay.run_sink_to_the_end(
        1200, "--max-records", "150", "--max-age-seconds", "1", *as_asked
    )
    assert first == 1200
    before = replay.store.snapshot()
    first_offsets = replay.offsets()

    planned = replay.kafkube("--to-earliest")
    assert planned.returncode == 0, planned.stderr
    assert "dry run: nothing changed" in planned.stdout
    assert replay.offsets() == first_offsets

    done = replay.kafkube("--to-earliest", "--execute")
    assert done.returncode == 0, done.stderr
    assert replay.offsets() == dict.fromkeys(range(PARTITIONS), 0)
    for partition, offset in first_offsets.items():  # the table shows each move, before and after
        assert any(
            line.split()[:3] == [str(partition), str(offset), "0"]
            for line in done.stdout.splitlines()
        )

    # Other rotation settings on the second run: the names already written set the cuts.
    rewritten = replay.run_sink_to_the_end(
        1200, "--max-records", "70", "--max-age-seconds", "0.5", *as_asked
    )
    after = replay.store.snapshot()

    assert rewritten == 1200
    assert len(before) > PARTITIONS
    assert all(name.endswith(f".{output_format}") for name in before if "_kafkube" not in name)
    assert sorted(after) == sorted(before)
    assert after == before


def test_kafkas_own_reset_to_datetime_rewrites_the_same_objects_byte_for_byte(
    replay: Replay, kafka_tool: Callable[..., str]
) -> None:
    produce(replay.bootstrap, replay.topic, event_values(600, seed=1))
    moment = datetime.now(UTC)
    while datetime.now(UTC) <= moment:  # the second wave is stamped strictly later
        time.sleep(0.001)
    produce(replay.bootstrap, replay.topic, event_values(600, seed=2))
    assert (
        replay.run_sink_to_the_end(1200, "--max-records", "100", "--max-age-seconds", "1") == 1200
    )
    before = replay.store.snapshot()

    kafka_tool(
        "kafka-consumer-groups", "--group", replay.group, "--topic", replay.topic,
        "--reset-offsets", "--to-datetime", moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00",
        "--execute",
    )  # fmt: skip
    reset_to = sum(replay.offsets().values())
    rewritten = replay.run_sink_to_the_end(1200, "--max-records", "100", "--max-age-seconds", "1")
    after = replay.store.snapshot()

    assert 0 < reset_to < 1200
    assert rewritten >= 1200 - reset_to  # whole objects from the one the reset fell into
    assert after == before


def test_replay_refuses_while_the_sink_runs_and_a_dry_run_changes_nothing(
    replay: Replay,
) -> None:
    produce(replay.bootstrap, replay.topic, event_values(300))
    sink = SinkProcess(
        bootstrap=replay.bootstrap, topic=replay.topic, directory=replay.tmp_path,
        log=replay.tmp_path / "live.log", group=replay.group, kind=replay.store.kind,
        target=replay.store.target, env=replay.store.env, extra=["--max-age-seconds", "0.5"],
    )  # fmt: skip
    sink.start()
    deadline = time.monotonic() + 120
    while sum(replay.offsets().values()) < 300:
        assert time.monotonic() < deadline, sink.log.read_text()
        time.sleep(0.3)
    live_offsets = replay.offsets()

    refused = replay.kafkube("--to-earliest", "--execute")
    dry = replay.kafkube("--shift-by", "-10")

    assert refused.returncode == 1
    assert "live member" in refused.stderr
    assert "stop its sinks" in refused.stderr
    assert dry.returncode == 1  # as Kafka's own tool: not even a plan for a live group
    assert sink.alive()
    assert sink.terminate() == 0
    assert replay.offsets() == live_offsets

    shifted = replay.kafkube("--shift-by", "-10")
    one = replay.kafkube("--to-offset", "5", "--partition", "1", "--execute")
    assert shifted.returncode == 0, shifted.stderr
    assert one.returncode == 0, one.stderr
    assert replay.offsets() == {**live_offsets, 1: 5}


def test_a_filtered_group_writes_only_what_passes_and_its_replay_rewrites_the_same_objects(
    replay: Replay,
) -> None:
    values = event_values(1200)
    codec = Codec()
    warnings = {
        (r["uid"], r["resource_version"])
        for r in (codec.decode(value) for _key, value in values)
        if r["type"] == "Warning"
    }
    produce(replay.bootstrap, replay.topic, values)
    warnings_only = ("--max-records", "150", "--max-age-seconds", "1", "--include", "type=Warning")

    written = replay.run_sink_to_the_end(1200, *warnings_only)  # every offset committed
    before = replay.store.snapshot()
    done = replay.kafkube("--to-earliest", "--execute")
    rewritten = replay.run_sink_to_the_end(1200, *warnings_only)
    after = replay.store.snapshot()

    assert 0 < len(warnings) < 1200
    assert written == rewritten == len(warnings)
    avro = [blob for name, blob in before.items() if name.endswith(".avro")]
    assert sorted(occurrences_in_avro(avro)) == sorted(warnings)  # read with plain fastavro
    assert done.returncode == 0, done.stderr
    assert after == before


def _spans(snapshot: dict[str, bytes], topic: str) -> dict[int, list[ObjectRange]]:
    by_partition: dict[int, list[ObjectRange]] = {}
    for name in snapshot:
        parsed = parse_object_name(name, topic)
        if parsed is not None:
            by_partition.setdefault(parsed[0], []).append(parsed[1])
    return {p: sorted(spans) for p, spans in by_partition.items()}


def _held(snapshot: dict[str, bytes]) -> Counter[tuple[str, str]]:
    return Counter(occurrences_in_avro(b for n, b in snapshot.items() if n.endswith(".avro")))


def test_a_replay_to_the_earliest_offset_of_a_trimmed_log_writes_each_record_once(
    replay: Replay, kafka_tool: Callable[..., str]
) -> None:
    """Retention (here kafka-delete-records) moved each partition's log start into the middle
    of an object: that object stays as it is, the ones after it are rewritten whole, and no
    record is written twice (once, every replayed record was)."""
    produce(replay.bootstrap, replay.topic, event_values(1500))
    assert replay.run_sink_to_the_end(1500, "--max-records", "100", "--max-age-seconds", "1")
    before = replay.store.snapshot()
    spans = _spans(before, replay.topic)
    trimmed_to = {p: spans[p][1].first + 50 for p in range(PARTITIONS)}  # inside the 2nd object
    plan = replay.tmp_path / "delete.json"
    plan.write_text(
        json.dumps(
            {
                "version": 1,
                "partitions": [
                    {"topic": replay.topic, "partition": p, "offset": offset}
                    for p, offset in trimmed_to.items()
                ],
            }
        )
    )
    kafka_tool("kafka-delete-records", "--offset-json-file", str(plan))
    left = {(r["uid"], r["resource_version"]) for r in read_records(
        replay.bootstrap, replay.topic, headers=False
    )}  # fmt: skip

    done = replay.kafkube("--to-earliest", "--execute")
    assert done.returncode == 0, done.stderr
    assert replay.offsets() == trimmed_to
    # Another rotation now: the objects already written set the cuts.
    replay.run_sink_to_the_end(1500, "--max-records", "70", "--max-age-seconds", "0.5")
    after = replay.store.snapshot()

    held = _held(after)
    assert len(left) == 1500 - sum(spans[p][1].first + 50 for p in range(PARTITIONS))
    assert left <= set(held)  # every record still in Kafka is in the output ...
    assert max(held.values()) == 1  # ... once, and nothing else twice
    assert after == before  # the kept objects untouched, the others rewritten byte for byte


def test_a_rewrite_under_a_filter_that_drops_an_objects_first_and_last_records_doubles_nothing(
    replay: Replay,
) -> None:
    """The state a SIGKILL between an object's write and its commit leaves (the object
    [100, 199] written, the group's offset at 100), restarted with a filter that now leaves
    out the object's first and last records: the rewrite keeps the object's name."""
    kept = event_values(300, seed=3)
    dropped = [event_values(1, seed=seed, reason="Dropped")[0] for seed in (7, 8)]
    first_wave = [*kept[:100], dropped[0], *kept[101:199], dropped[1]]
    produce(replay.bootstrap, replay.topic, first_wave, partition=0)
    written = replay.run_sink_to_the_end(200, "--max-records", "100", "--max-age-seconds", "1")
    assert written == 200
    before = replay.store.snapshot()
    assert [(s.first, s.last) for s in _spans(before, replay.topic)[0]] == [(0, 99), (100, 199)]
    reset = replay.kafkube("--to-offset", "100", "--partition", "0", "--execute")
    assert reset.returncode == 0, reset.stderr
    produce(replay.bootstrap, replay.topic, kept[200:], partition=0)

    replay.run_sink_to_the_end(
        300, "--max-records", "100", "--max-age-seconds", "1", "--exclude", "reason=Dropped"
    )
    after = replay.store.snapshot()

    held = _held(after)
    assert max(held.values()) == 1
    assert sum(held.values()) == 298 + 2 - 2  # the object [100, 199] lost its two, nothing twice
    assert [(s.first, s.last) for s in _spans(after, replay.topic)[0]] == [
        (0, 99), (100, 199), (200, 299)
    ]  # fmt: skip
