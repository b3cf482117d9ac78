"""The S3 and GCS sinks against MinIO and fake-gcs-server, on the shared runner."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from tests.conftest import Services, unique
from tests.sinking import (
    SinkProcess,
    assert_commits_behind,
    committed,
    create_topic,
    ends_from_names,
    event_values,
    produce,
    read_avro_dir,
    read_gcs,
    read_s3,
    s3_env,
)

pytestmark = pytest.mark.timeout(900)


def _s3_sink(
    endpoints: Endpoints, topic: str, bucket: str, tmp_path: Path, *extra: str
) -> SinkProcess:
    return SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path,
        log=tmp_path / f"s3-{unique('log')}.log",
        group=unique("sink-s3"), kind="s3", target=["--bucket", bucket, "--prefix", "events"],
        env=s3_env(endpoints), extra=["--max-records", "250", "--max-age-seconds", "0.3", *extra],
    )  # fmt: skip


def _gcs_sink(endpoints: Endpoints, topic: str, bucket: str, tmp_path: Path) -> SinkProcess:
    return SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path,
        log=tmp_path / f"gcs-{unique('log')}.log",
        group=unique("sink-gcs"), kind="gcs", target=["--bucket", bucket, "--prefix", "events"],
        env={"STORAGE_EMULATOR_HOST": endpoints.gcs_endpoint},
        extra=["--max-records", "250", "--max-age-seconds", "0.3"],
    )  # fmt: skip


def _wait(read: Any, count: int, timeout: float = 180) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        found: list[tuple[str, str]] = read()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_s3_and_gcs_sinks_store_every_record_once_with_metadata(
    endpoints: Endpoints, s3_client: Any, s3_bucket: str, gcs_client: Any, gcs_bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    topic = unique("stores")
    create_topic(endpoints.kafka_bootstrap, topic, 3)
    sent = produce(endpoints.kafka_bootstrap, topic, event_values(1500))
    s3 = _s3_sink(endpoints, topic, s3_bucket, tmp_path, "--sse", "AES256")
    gcs = _gcs_sink(endpoints, topic, gcs_bucket, tmp_path)
    s3.start()
    gcs.start()

    in_s3 = _wait(lambda: read_s3(s3_client, s3_bucket, "events/"), 1500)
    in_gcs = _wait(lambda: read_gcs(gcs_client, gcs_bucket, "events/"), 1500)
    codes = s3.terminate(), gcs.terminate()

    assert codes == (0, 0), s3.log.read_text() + gcs.log.read_text()
    assert Counter(in_s3) == Counter(sent)
    assert Counter(in_gcs) == Counter(sent)
    key = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"events/{topic}/")["Contents"][0]
    head = s3_client.head_object(Bucket=s3_bucket, Key=key["Key"])
    assert {"kafkube-topic", "kafkube-partition", "kafkube-first-offset", "kafkube-last-offset",
            "kafkube-records", "kafkube-schema"} <= set(head["Metadata"])  # fmt: skip
    assert head["Metadata"]["kafkube-topic"] == topic
    assert head["ServerSideEncryption"] == "AES256"
    blob = next(iter(gcs_client.list_blobs(gcs_bucket, prefix=f"events/{topic}/")))
    assert blob.metadata["kafkube-records"].isdigit()


MISSING = "no-such-bucket-kafkube"


@pytest.mark.parametrize(
    ("kind", "target", "env", "message"),
    [
        ("s3", ["--bucket", MISSING], {}, f"s3.bucket: bucket '{MISSING}' does not exist"),
        (
            "s3",
            ["--bucket", "{s3_bucket}"],
            {"AWS_SECRET_ACCESS_KEY": "wrong-secret"},
            "s3.credentials: the S3 credentials may not write",
        ),
        ("gcs", ["--bucket", MISSING], {}, f"gcs.bucket: bucket '{MISSING}' does not exist"),
    ],
)
def test_a_missing_bucket_or_bad_credentials_stop_the_sink_at_start_naming_the_problem(
    endpoints: Endpoints, s3_bucket: str, kind: str, target: list[str], env: dict[str, str],
    message: str,
) -> None:  # fmt: skip
    base = s3_env(endpoints) | {"STORAGE_EMULATOR_HOST": endpoints.gcs_endpoint}
    bucket_args = [t.format(s3_bucket=s3_bucket) for t in target]
    result = subprocess.run(
        [sys.executable, "-m", "kafkube", "sink", kind, *bucket_args,
         "--bootstrap-servers", endpoints.kafka_bootstrap],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **base, **env},
    )  # fmt: skip

    assert result.returncode == 1
    assert message in result.stderr


def test_p3_s3_and_gcs_sinks_killed_at_random_moments_keep_every_record_exactly_once(
    endpoints: Endpoints, s3_client: Any, s3_bucket: str, gcs_client: Any, gcs_bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    chance = random.Random(6)
    topic = unique("storechaos")
    create_topic(endpoints.kafka_bootstrap, topic, 3)
    sinks = [
        _s3_sink(endpoints, topic, s3_bucket, tmp_path),
        _gcs_sink(endpoints, topic, gcs_bucket, tmp_path),
    ]
    for sink in sinks:  # static membership: each restart takes its partitions straight back
        sink.extra += ["--instance-id", f"{sink.kind}-0"]
    values = event_values(10_000, seed=12)
    sent: set[tuple[str, str]] = set()

    def write() -> None:
        for start in range(0, len(values), 500):
            sent.update(produce(endpoints.kafka_bootstrap, topic, values[start : start + 500]))
            time.sleep(0.4)

    producing = threading.Thread(target=write)
    producing.start()
    for sink in sinks:
        sink.start()
    kills = 0
    stored = {
        "s3": lambda: [i["Key"] for p in s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=s3_bucket, Prefix="events/") for i in p.get("Contents", [])],
        "gcs": lambda: [b.name for b in gcs_client.list_blobs(gcs_bucket, prefix="events/")],
    }  # fmt: skip
    while producing.is_alive() or kills < 20:
        time.sleep(chance.uniform(0.3, 2.0))  # mid-upload, between upload and commit, anywhere
        for sink in sinks:
            # Read the commits first, then the store (which only grows): never ahead of it.
            offsets = committed(endpoints.kafka_bootstrap, sink.group, topic, 3)
            assert_commits_behind(offsets, ends_from_names(stored[sink.kind](), topic))
            sink.kill()
            sink.start()
        kills += 1
    producing.join()
    in_s3 = _wait(lambda: read_s3(s3_client, s3_bucket, "events/"), 10_000)
    in_gcs = _wait(lambda: read_gcs(gcs_client, gcs_bucket, "events/"), 10_000)
    for sink in sinks:
        sink.wait_running()  # a SIGTERM before the handler is set up would just kill it
    codes = [sink.terminate() for sink in sinks]

    print(  # noqa: T201 - the figures the run should show
        f"object store chaos: {kills} SIGKILLs each, {len(sent)} records sent, "
        f"S3 {len(in_s3)} read ({len(set(in_s3))} distinct), "
        f"GCS {len(in_gcs)} read ({len(set(in_gcs))} distinct)"
    )
    assert kills >= 20
    assert len(sent) == 10_000
    assert Counter(in_s3) == Counter(sent)
    assert Counter(in_gcs) == Counter(sent)
    assert codes == [0, 0]


def test_p5_minio_down_for_30_s_stalls_only_the_s3_sink_which_then_catches_up(
    endpoints: Endpoints, services: Services, native_stack: Stack, s3_client: Any,
    s3_bucket: str, tmp_path: Path,
) -> None:  # fmt: skip
    assert services.origin["minio"] == "native launcher", "this fault stops the launcher's MinIO"
    topic = unique("outage")
    create_topic(endpoints.kafka_bootstrap, topic, 3)
    s3 = _s3_sink(endpoints, topic, s3_bucket, tmp_path)
    files = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path / "files",
        log=tmp_path / "file.log", group=unique("sink-file"),
        extra=["--max-records", "250", "--max-age-seconds", "0.3"],
    )  # fmt: skip
    s3.start()
    files.start()
    before = produce(endpoints.kafka_bootstrap, topic, event_values(1000, seed=21))
    _wait(lambda: read_s3(s3_client, s3_bucket, "events/"), 1000)

    native_stack.down(["minio"])
    stopped_at = time.monotonic()
    during: set[tuple[str, str]] = set()
    behind_checks = 0
    values = event_values(3000, seed=22)
    for start in range(0, 3000, 300):  # records keep flowing for 30 s
        during |= produce(endpoints.kafka_bootstrap, topic, values[start : start + 300])
        files_found = read_avro_dir(files.directory)
        offsets = committed(endpoints.kafka_bootstrap, s3.group, topic, 3)
        assert sum(offsets.values()) <= 1000, "the S3 sink committed what MinIO never stored"
        behind_checks += 1
        time.sleep(max(0.0, stopped_at + (start / 300 + 1) * 3 - time.monotonic()))
    files_found = _wait(lambda: read_avro_dir(files.directory), 4000, timeout=30)
    file_caught_up = time.monotonic() - stopped_at
    assert time.monotonic() - stopped_at >= 30
    log_during = s3.log.read_text()
    native_stack.up(["minio"])

    in_s3 = _wait(lambda: read_s3(s3_client, s3_bucket, "events/"), 4000)
    codes = s3.terminate(), files.terminate()

    assert Counter(files_found) == Counter(before | during)  # the file sink kept pace ...
    assert file_caught_up < 45
    assert "nothing committed, retrying" in log_during  # ... the S3 sink said why it waited
    assert Counter(in_s3) == Counter(before | during)  # and caught up once MinIO was back
    assert codes == (0, 0)
    assert behind_checks >= 10


def test_a_large_batch_goes_up_to_s3_in_parts(
    endpoints: Endpoints, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    topic = unique("large")
    create_topic(endpoints.kafka_bootstrap, topic, 1)
    sent = produce(endpoints.kafka_bootstrap, topic, event_values(20_000, seed=30))
    sink = _s3_sink(
        endpoints, topic, s3_bucket, tmp_path,
        "--codec", "null", "--max-records", "20000", "--max-age-seconds", "60",
        "--multipart-threshold-mb", "5",
    )  # fmt: skip
    sink.start()

    found = _wait(lambda: read_s3(s3_client, s3_bucket, "events/"), 20_000)
    sink.terminate()
    (item,) = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"events/{topic}/")["Contents"]

    assert Counter(found) == Counter(sent)
    assert item["Size"] > 5 << 20
    assert item["ETag"].strip('"').rsplit("-", 1)[1].isdigit()  # a multipart upload's ETag


def test_s3_and_gcs_sinks_write_parquet_that_arrows_filesystems_read_back(
    endpoints: Endpoints, s3_bucket: str, gcs_client: Any, gcs_bucket: str, tmp_path: Path
) -> None:
    import pyarrow.dataset as ds  # noqa: PLC0415
    from pyarrow import fs  # noqa: PLC0415

    topic = unique("parquet")
    create_topic(endpoints.kafka_bootstrap, topic, 3)
    sent = produce(endpoints.kafka_bootstrap, topic, event_values(900))
    s3 = _s3_sink(endpoints, topic, s3_bucket, tmp_path, "--format", "parquet")
    gcs = _gcs_sink(endpoints, topic, gcs_bucket, tmp_path)
    gcs.extra += ["--format", "parquet"]
    s3.start()
    gcs.start()
    scheme, _, host = endpoints.s3_endpoint.partition("://")
    s3fs = fs.S3FileSystem(
        endpoint_override=host, scheme=scheme, access_key=endpoints.s3_access_key,
        secret_key=endpoints.s3_secret_key, region=endpoints.s3_region,
    )  # fmt: skip

    def from_s3() -> list[tuple[str, str]]:
        root = f"{s3_bucket}/events/{topic}"
        if not s3fs.get_file_info(fs.FileSelector(root, allow_not_found=True, recursive=True)):
            return []
        table = ds.dataset(root, filesystem=s3fs, format="parquet", partitioning="hive").to_table()
        return list(
            zip(table["uid"].to_pylist(), table["resource_version"].to_pylist(), strict=True)
        )

    # GCS: downloaded through google-cloud-storage, each Parquet object read with pyarrow.
    in_s3 = _wait(from_s3, 900)
    in_gcs = _wait(lambda: read_gcs(gcs_client, gcs_bucket, f"events/{topic}/"), 900)
    codes = s3.terminate(), gcs.terminate()

    assert codes == (0, 0), s3.log.read_text()[-2000:] + gcs.log.read_text()[-2000:]
    assert Counter(in_s3) == Counter(sent)
    assert Counter(in_gcs) == Counter(sent)
