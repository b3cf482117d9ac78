"""Helpers for sink tests: fill a topic, run ``kafkube sink``, read a sink's output back."""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kafkube.compose.endpoints import Endpoints
from kafkube.core.registry import SchemaRegistry
from kafkube.producer.converting import to_record
from kafkube.producer.simulating import record_watch_stream
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.schemas.codec import Codec, latest_version
from tests.processes import KafkubeProcess


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[
        topic
    ].result(30)


def event_values(
    count: int, *, seed: int = 1, codec: Codec | None = None, **overrides: Any
) -> list[tuple[bytes, bytes]]:
    """``count`` realistic encoded events as (key, value), each a distinct occurrence;
    ``codec`` frames them (default: the registry-less framing)."""
    stream = io.StringIO()
    record_watch_stream(SyntheticCluster(seed).operations(), stream, limit=count, seed=seed)
    codec, now = codec or Codec(), datetime.now(UTC)
    out = []
    for line in stream.getvalue().splitlines():
        item = json.loads(line)
        record = to_record(
            item["object"],
            watch_type=item["type"],
            cluster="test",
            producer_id="t",
            observed_at=now,
        )
        record.update(overrides)  # type: ignore[typeddict-item]
        out.append((record["uid"].encode(), codec.encode(record)))
    return out


def edge_case_records(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Records at every edge of the schema: nulls, empty and long values, extreme times."""
    optional = [k for k, v in base.items() if k not in {"cluster", "watch_type", "observed_at",
                "producer_id", "api_version", "uid", "resource_version", "name"}]  # fmt: skip
    reference = {"kind": "Pod", "api_version": "v1", "namespace": "ns", "name": "n", "uid": "u",
                 "resource_version": "1", "field_path": "spec.containers{x}"}  # fmt: skip
    return [
        {**base, **dict.fromkeys(optional)},  # every optional field null
        {**base, "labels": {}, "annotations": {"ä/ß": "日本語 ✓", "": ""}},
        {**base, "note": "x" * 70_000, "name": "", "watch_type": "DELETED"},  # long varints
        {**base, "count": 2**31 - 1, "series": {"count": -(2**31), "last_observed_time": None}},
        {
            **base,
            "observed_at": datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            "event_time": datetime(9999, 12, 31, tzinfo=UTC),
            "first_timestamp": datetime(2026, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
            "creation_timestamp": datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=5.5))),
        },
        {**base, "regarding": reference, "related": {**reference, "uid": None}},
        {**base, "count": 0, "series": {"count": 63, "last_observed_time": base["observed_at"]}},
        {**base, "count": 64},
    ]


def registered_codec(registry: str, topic: str) -> Codec:
    """A codec that frames values as the producer does in registry mode: the latest schema,
    registered under ``<topic>-value``."""
    writer = latest_version()
    with SchemaRegistry({"url": registry}) as client:
        schema_id = client.register(f"{topic}-value", writer.schema_json)
    return Codec(writer=writer, writer_id=schema_id)


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[tuple[bytes, bytes]],
    codec: Codec | None = None,
    *,
    partition: int | None = None,
) -> set[tuple[str, str]]:
    """Publish (key, value) pairs (to ``partition``, else by key); the set of (uid,
    resourceVersion) of the ones ``codec`` (default: the registry-less one) decodes."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    codec, sent = codec or Codec(), set()
    where = {} if partition is None else {"partition": partition}
    for key, value in values:
        producer.produce(topic, key=key, value=value, **where)
        producer.poll(0)
        try:
            record = codec.decode(value)
        except Exception:  # noqa: BLE001, S112 - poison records are sent on purpose
            continue
        sent.add((record["uid"], record["resource_version"]))
    assert producer.flush(60) == 0
    return sent


@dataclass
class SinkProcess(KafkubeProcess):
    """``kafkube sink file`` (``s3`` and ``gcs`` with their ``target``), run as a user would."""

    bootstrap: str
    topic: str
    directory: Path
    log: Path
    group: str
    extra: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    kind: str = "file"
    target: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _starts_before: int = 0

    def start(self) -> None:
        self._starts_before = self._starts()
        target = self.target or ["--dir", str(self.directory)]
        self.launch(
            "sink", self.kind, *target, "--bootstrap-servers", self.bootstrap,
            "--topic", self.topic, "--group", self.group, *self.extra,
            env=self.env,
        )  # fmt: skip

    def _starts(self) -> int:
        return self.log.read_text().count(" -> ") if self.log.exists() else 0

    def wait_running(self, timeout: float = 60) -> None:
        """Until the last start has its consumer up (signals handled, group joined or joining)."""
        deadline = time.monotonic() + timeout
        while self._starts() <= self._starts_before:
            assert self.alive(), self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.1)


def s3_env(endpoints: Endpoints) -> dict[str, str]:
    """The standard AWS variables that point boto3 at the stack's MinIO."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoints.s3_endpoint,
        "AWS_ACCESS_KEY_ID": endpoints.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": endpoints.s3_secret_key,
        "AWS_REGION": endpoints.s3_region,
    }


def avro_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.avro"))


def read_avro_dir(directory: Path) -> list[tuple[str, str]]:
    """Every (uid, resourceVersion) in the directory's Avro files, read with plain fastavro."""
    return occurrences_in_avro(path.read_bytes() for path in avro_files(directory))


def read_jsonl_dir(directory: Path) -> list[tuple[str, str]]:
    """Every (uid, resourceVersion) in the directory's .jsonl.gz files, through ``gzip -dc``."""
    found = []
    for path in sorted(directory.rglob("*.jsonl.gz")):
        text = subprocess.run(["gzip", "-dc", str(path)], capture_output=True, check=True).stdout
        found += [
            (line["uid"], line["resource_version"])
            for line in map(json.loads, text.decode().splitlines())
        ]
    return found


def read_parquet_dir(directory: Path) -> list[tuple[str, str]]:
    """Every (uid, resourceVersion) in the directory's Parquet files, asked with DuckDB as a
    query engine would, the folders read as Hive partitions."""
    import duckdb  # noqa: PLC0415

    if not any(directory.rglob("*.parquet")):
        return []
    query = "select uid, resource_version from read_parquet(?, hive_partitioning=true)"
    rows = duckdb.execute(query, [f"{directory}/**/*.parquet"]).fetchall()
    return [(str(uid), str(rv)) for uid, rv in rows]


def wait_for_count(read: Any, directory: Path, count: int, timeout: float = 120) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: list[Any] = read(directory)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets (OFFSET_INVALID where none), as ``kafkube status`` reads
    them: an unknown group is described first, never fetched (see Offsets.committed)."""
    from confluent_kafka import OFFSET_INVALID  # noqa: PLC0415

    from kafkube.consumers.positions import Offsets  # noqa: PLC0415

    with Offsets({"bootstrap.servers": bootstrap}, topic) as offsets:
        found = offsets.committed(group)
    assert len(found) == partitions, found
    return {p: OFFSET_INVALID if offset is None else offset for p, offset in found.items()}


def occurrences_in_avro(blobs: Iterable[bytes]) -> list[tuple[str, str]]:
    """Every (uid, resourceVersion) in these Avro container files, read with plain fastavro."""
    return [
        (record["uid"], record["resource_version"])
        for blob in blobs
        for record in fastavro.reader(io.BytesIO(blob))
    ]


def occurrences_in_parquet(blobs: Iterable[bytes]) -> list[tuple[str, str]]:
    """Every (uid, resourceVersion) in these Parquet files, read with plain pyarrow."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    found = []
    for blob in blobs:
        table = pq.read_table(pa.BufferReader(blob), columns=["uid", "resource_version"])
        found += zip(table["uid"].to_pylist(), table["resource_version"].to_pylist(), strict=True)
    return found


def _occurrences(named: Iterable[tuple[str, Callable[[], bytes]]]) -> list[tuple[str, str]]:
    avro, parquet = [], []
    for name, fetch in named:
        if name.endswith(".avro"):
            avro.append(fetch())
        elif name.endswith(".parquet"):
            parquet.append(fetch())
    return occurrences_in_avro(avro) + occurrences_in_parquet(parquet)


def read_s3(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, str]]:
    """What an S3 sink wrote (Avro or Parquet), read back with plain boto3, fastavro, pyarrow."""
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    ]
    return _occurrences(
        (key, lambda k=key: s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for key in keys
    )


def read_gcs(gcs: Any, bucket: str, prefix: str = "") -> list[tuple[str, str]]:
    """What a GCS sink wrote (Avro or Parquet), read back with plain google-cloud-storage,
    fastavro and pyarrow."""
    return _occurrences(
        (blob.name, blob.download_as_bytes) for blob in gcs.list_blobs(bucket, prefix=prefix)
    )


def ends_from_names(names: Iterable[str], topic: str) -> dict[int, int]:
    """For each partition, the offset after the last record any of these objects holds."""
    from kafkube.consumers.naming import parse_object_name  # noqa: PLC0415

    ends: dict[int, int] = {}
    for name in names:
        parsed = parse_object_name(name, topic)
        if parsed is not None:
            ends[parsed[0]] = max(ends.get(parsed[0], 0), parsed[1].last + 1)
    return ends


def assert_commits_behind(offsets: dict[int, int], ends: dict[int, int]) -> None:
    """No partition's committed offset is past the records the store holds."""
    for partition, offset in offsets.items():
        if offset > 0:
            assert offset <= ends.get(partition, 0), (partition, offset, ends)
