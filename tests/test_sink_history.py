"""A long history in the store does not slow a sink's restart: the index, not a listing.

20,000 earlier objects of the topic sit under the sink's prefix (S3) or directory
(files), for offsets the group has long committed. The first start of this
version lists them once and writes its index; every restart after a clean stop
reads the index alone: no list request at all, however many objects there are.
After a SIGKILL, the index and one narrow listing of the folder it left open.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkube.compose.endpoints import Endpoints
from kafkube.consumers.naming import object_name
from tests.conftest import unique
from tests.sinking import (
    SinkProcess,
    create_topic,
    event_values,
    occurrences_in_avro,
    produce,
    s3_env,
    wait_for_count,
)

pytestmark = pytest.mark.timeout(600)

HISTORY = 20_000


def _topic_with_a_long_past(bootstrap: str, group: str) -> str:
    """One partition whose first HISTORY offsets the group committed long ago."""
    topic = unique("history")
    create_topic(bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    for _ in range(HISTORY):
        producer.produce(topic, value=b"long gone")
        producer.poll(0)
    assert producer.flush(60) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, HISTORY)], asynchronous=False)
    consumer.close()
    return topic


def _old_names(topic: str) -> list[str]:
    hour = datetime(2025, 11, 28, 7, tzinfo=UTC)
    return [
        object_name(topic, 0, first=i, last=i, hour=hour, extension="avro") for i in range(HISTORY)
    ]


def _stopped_stats(sink: SinkProcess) -> dict[str, Any]:
    assert sink.terminate() == 0, sink.log.read_text()[-3000:]
    return sink.exit_counts()


def _restart_cycle(sink: SinkProcess, bootstrap: str, topic: str, read: Any) -> list[int]:
    """Start with the history in place, stop; start again and SIGKILL it; restart twice,
    stopping cleanly: list requests of each run stopped cleanly (None for the killed one).
    Each of those wrote its index before its first object only: the folder of this hour
    stays open in it (two, if the hour turned meanwhile), not an index write a batch; the run
    after the SIGKILL found it open already, and may write none."""
    values = event_values(400, seed=31)
    listed: list[int | None] = []
    for run in range(4):
        sent = produce(bootstrap, topic, values[run * 100 : (run + 1) * 100])
        sink.start()
        # The first start lists the history on purpose (no index yet): 20,000 objects take
        # their time on a loaded machine. The restarts must not list it, so they are quick.
        timeout = 120 if run == 0 else 10
        found = wait_for_count(read, sink.directory, (run + 1) * 100, timeout=timeout)
        assert len(found) == (run + 1) * 100, (
            f"run {run}: {len(found)} written within {timeout} s:\n{sink.log.read_text()[-3000:]}"
        )
        assert sent <= set(found)
        assert len(set(found)) == len(found)
        if run == 1:
            sink.kill()  # its index left the folder of its objects open
            listed.append(None)
        else:
            counts = _stopped_stats(sink)
            listed.append(counts["list_requests"])
            # After the SIGKILL its index still holds this hour's folder open: none, then.
            assert (run != 2) <= counts["index_writes"] <= 2, counts
    return listed


def test_a_file_sink_with_20000_old_files_restarts_without_listing_them(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    group = unique("sink-file")
    topic = _topic_with_a_long_past(kafka_bootstrap, group)
    directory = tmp_path / "out"
    for name in _old_names(topic):
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    sink = SinkProcess(
        bootstrap=kafka_bootstrap, topic=topic, directory=directory,
        log=tmp_path / "sink.log", group=group,
        extra=["--max-age-seconds", "0.3", "--instance-id", "file-0"],
    )  # fmt: skip

    listed = _restart_cycle(sink, kafka_bootstrap, topic, _files_written)

    assert listed[0] == 1  # the first start of this version walks the folder once
    # After the crash, the index and a walk of the one folder it left open; after a clean
    # stop, the index alone.
    assert listed[1:] == [None, 1, 0]


def _files_written(directory: Path) -> list[tuple[str, str]]:
    """The sink's own files: the empty stand-ins for the old history are left out."""
    return occurrences_in_avro(
        path.read_bytes() for path in directory.rglob("*.avro") if path.stat().st_size
    )


def test_an_s3_sink_with_20000_old_objects_restarts_without_listing_them(
    endpoints: Endpoints, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    group = unique("sink-s3")
    topic = _topic_with_a_long_past(bootstrap, group)
    began = time.monotonic()
    with ThreadPoolExecutor(10) as pool:
        list(
            pool.map(
                lambda name: s3_client.put_object(Bucket=s3_bucket, Key=f"events/{name}", Body=b""),
                _old_names(topic),
            )
        )
    print(f"{HISTORY} old objects put in {time.monotonic() - began:.1f} s")  # noqa: T201
    sink = SinkProcess(
        bootstrap=bootstrap, topic=topic, directory=tmp_path, log=tmp_path / "sink.log",
        group=group, kind="s3", target=["--bucket", s3_bucket, "--prefix", "events"],
        env=s3_env(endpoints), extra=["--max-age-seconds", "0.3", "--instance-id", "s3-0"],
    )  # fmt: skip

    def read(_: Path) -> list[tuple[str, str]]:
        pages = s3_client.get_paginator("list_objects_v2").paginate(
            Bucket=s3_bucket, Prefix=f"events/{topic}/", StartAfter=f"events/{topic}/dt=2025-11-29"
        )  # past the old history's folder: only what the sink wrote
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return occurrences_in_avro(
            s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
            for key in keys
            if key.endswith(".avro")
        )

    listed = _restart_cycle(sink, bootstrap, topic, read)

    assert listed[0] is not None
    assert listed[0] >= HISTORY // 1000  # the first start of this version lists every page
    # After the crash, the index and one page of the folder it left open, from where its
    # last index ended: a few names, whatever the history; after a clean stop, the index alone.
    assert listed[1:] == [None, 1, 0]
