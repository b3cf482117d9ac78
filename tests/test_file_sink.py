"""The file sink on the shared runner, against real Kafka: durable, then committed, exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from kafkube.consumers.naming import parse_object_name
from tests.conftest import unique
from tests.sinking import (
    SinkProcess,
    avro_files,
    committed,
    create_topic,
    event_values,
    produce,
    read_avro_dir,
    read_jsonl_dir,
    wait_for_count,
)

pytestmark = pytest.mark.timeout(300)


def _sink(bootstrap: str, topic: str, tmp_path: Path, *extra: str, group: str = "") -> SinkProcess:
    return SinkProcess(
        bootstrap=bootstrap,
        topic=topic,
        directory=tmp_path / "out",
        log=tmp_path / f"sink-{unique('log')}.log",
        group=group or unique("sink-file"),
        extra=list(extra),
    )


def _topic(bootstrap: str, partitions: int = 3) -> str:
    name = unique("sinkin")
    create_topic(bootstrap, name, partitions)
    return name


def test_every_record_lands_once_and_the_offsets_committed_are_those_on_disk(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = _topic(kafka_bootstrap)
    sent = produce(kafka_bootstrap, topic, event_values(2000))
    sink = _sink(kafka_bootstrap, topic, tmp_path, "--max-records", "300", "--max-age-seconds", "1")
    sink.start()

    found = wait_for_count(read_avro_dir, sink.directory, 2000)
    code = sink.terminate()
    offsets = committed(kafka_bootstrap, sink.group, topic, 3)
    ranges = [
        parse_object_name(p.relative_to(sink.directory).as_posix(), topic)
        for p in avro_files(sink.directory)
    ]

    assert code == 0, sink.log.read_text()
    assert Counter(found) == Counter(sent)
    assert all(r is not None for r in ranges)
    for partition, offset in offsets.items():
        lasts = [r[1].last for r in ranges if r is not None and r[0] == partition]
        assert offset == max(lasts) + 1
    assert sum(offsets.values()) == 2000
    assert all(
        p.relative_to(sink.directory).parts[1].startswith("dt=") for p in avro_files(sink.directory)
    )


def test_json_lines_are_plain_json_that_gzip_reads(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = _topic(kafka_bootstrap, 1)
    sent = produce(kafka_bootstrap, topic, event_values(500))
    sink = _sink(kafka_bootstrap, topic, tmp_path, "--format", "jsonl", "--max-age-seconds", "1")
    sink.start()

    found = wait_for_count(read_jsonl_dir, sink.directory, 500)
    sink.terminate()

    assert Counter(found) == Counter(sent)


def test_written_but_uncommitted_batches_are_rewritten_to_the_same_names_and_bytes(
    kafka_bootstrap: str, tmp_path: Path, kafka_tool: object
) -> None:
    """The state a crash between write and commit leaves: objects on disk, offsets behind them."""
    topic = _topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, event_values(1500))
    sink = _sink(
        kafka_bootstrap, topic, tmp_path, "--max-records", "200", "--max-age-seconds", "0.5"
    )
    sink.start()
    wait_for_count(read_avro_dir, sink.directory, 1500)
    sink.terminate()
    before = {p.relative_to(sink.directory): p.read_bytes() for p in avro_files(sink.directory)}

    # Back to an offset inside the second object of each partition, as a crash or a reset leaves it.
    assert callable(kafka_tool)
    for partition in range(3):
        spans = sorted(
            r[1]
            for p in before
            if (r := parse_object_name(p.as_posix(), topic)) and r[0] == partition
        )
        middle = spans[1].first + 7
        kafka_tool(
            "kafka-consumer-groups", "--group", sink.group, "--reset-offsets", "--execute",
            "--topic", f"{topic}:{partition}", "--to-offset", str(middle),
        )  # fmt: skip
    rerun = _sink(kafka_bootstrap, topic, tmp_path, "--max-records", "50", group=sink.group)
    rerun.start()  # other rotation rules now: the recorded boundaries must win
    deadline = time.monotonic() + 60
    while committed(kafka_bootstrap, sink.group, topic, 3) != committed_after(before, topic):
        assert time.monotonic() < deadline, rerun.log.read_text()
        time.sleep(0.3)
    rerun.terminate()
    after = {p.relative_to(sink.directory): p.read_bytes() for p in avro_files(sink.directory)}

    assert after.keys() == before.keys()
    assert after == before
    assert '"rewrites_aligned": 3' in rerun.log.read_text()


def committed_after(objects: dict[Path, bytes], topic: str) -> dict[int, int]:
    ends: dict[int, int] = {}
    for path in objects:
        parsed = parse_object_name(path.as_posix(), topic)
        assert parsed is not None
        ends[parsed[0]] = max(ends.get(parsed[0], 0), parsed[1].last + 1)
    return ends


def test_an_idle_partitions_open_batch_is_written_on_the_wall_clock(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = _topic(kafka_bootstrap, 1)
    sink = _sink(kafka_bootstrap, topic, tmp_path, "--max-age-seconds", "2")
    sink.start()
    sent = produce(kafka_bootstrap, topic, event_values(5))
    produced_at = time.monotonic()

    found = wait_for_count(read_avro_dir, sink.directory, 5, timeout=30)
    waited = time.monotonic() - produced_at
    sink.terminate()

    assert Counter(found) == Counter(sent)
    assert waited < 15  # 2 s of age plus start-up and a poll, with room for a slow machine


def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_rest_is_written(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = _topic(kafka_bootstrap, 1)
    create_topic(kafka_bootstrap, f"{topic}.dlq", 1)
    good = event_values(20)
    poison = [(b"bad-1", b"\xc3\x01" + b"\x00" * 8 + b"junk"), (b"bad-2", b'{"not": "avro"}')]
    sent = produce(kafka_bootstrap, topic, [*good[:10], *poison, *good[10:]])
    sink = _sink(kafka_bootstrap, topic, tmp_path, "--max-age-seconds", "1")
    sink.start()

    found = wait_for_count(read_avro_dir, sink.directory, 20)
    dead = _read_all(kafka_bootstrap, f"{topic}.dlq", 2)
    sink.terminate()

    assert Counter(found) == Counter(sent)
    assert [m.value() for m in dead] == [v for _, v in poison]
    headers = dict(dead[0].headers() or [])
    assert headers["error.class"] == b"DecodeError"
    assert b"unknown writer schema" in headers["error.message"]
    assert headers["original.topic"] == topic.encode()
    assert headers["original.offset"] == b"10"
    assert {"original.partition", "original.timestamp"} <= set(headers)
    assert committed(kafka_bootstrap, sink.group, topic, 1) == {0: 22}


def _read_all(bootstrap: str, topic: str, count: int) -> list[object]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("dlq")})
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[object] = []
    deadline = time.monotonic() + 60
    while len(found) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            found.append(message)
        elif message is not None:
            assert message.error().code() == KafkaError._PARTITION_EOF  # noqa: SLF001
    consumer.close()
    return found


def test_hostile_namespaces_and_names_stay_inside_the_directory(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = _topic(kafka_bootstrap, 1)
    hostile = [
        "../../../../tmp/escape",
        "/etc/passwd",
        "a/../../b",
        "nul\x00byte",
        "x" * 5000,
        "CON",
    ]
    values = [
        value
        for i, evil in enumerate(hostile)
        for value in event_values(1, seed=i, namespace=evil, name=evil, cluster=evil)
    ]
    sent = produce(kafka_bootstrap, topic, values)
    sink = _sink(kafka_bootstrap, topic, tmp_path, "--max-age-seconds", "1")
    sink.start()

    found = wait_for_count(read_avro_dir, sink.directory, len(hostile))
    sink.terminate()

    assert Counter(found) == Counter(sent)
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and sink.directory not in p.parents]
    assert sorted(p.suffix for p in outside) == [".log"]  # only the sink's own log
    assert all(
        p.resolve().is_relative_to(sink.directory.resolve()) for p in avro_files(sink.directory)
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dir", "{file}"], "file.dir: {file} exists and is not a directory"),
        (["--dir", "{file}/below"], "file.dir: cannot create {file}/below"),
        (
            ["--dir", "{tmp}/ok", "--max-records", "0"],
            "sinks.file.rotation.max_records: Input should be greater than or equal to 1",
        ),
        (["--dir", "{tmp}/ok", "--topic", "bad/topic"], "topic: not a Kafka topic name"),
        (["--dir", "{tmp}/ok", "--kafka", "group.id=x"], "kafka.group.id: is set by kafkube"),
    ],
)
def test_bad_configuration_is_refused_at_start_naming_the_field(
    kafka_bootstrap: str, tmp_path: Path, args: list[str], message: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    values = {"file": str(blocker), "tmp": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kafkube",
            "sink",
            "file",
            "--bootstrap-servers",
            kafka_bootstrap,
            *(arg.format(**values) for arg in args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert message.format(**values) in result.stderr


def test_a_full_disk_commits_nothing_past_the_disk_and_catches_up_when_space_returns(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    try:
        topic = _topic(kafka_bootstrap, 1)
        sent = produce(kafka_bootstrap, topic, event_values(12_000))  # about 8 MB uncompressed
        sink = SinkProcess(
            bootstrap=kafka_bootstrap,
            topic=topic,
            directory=disk / "out",
            log=tmp_path / "sink.log",
            group=unique("sink-file"),
            extra=["--codec", "null", "--max-records", "500", "--min-free-mb", "1"],
        )
        sink.start()
        deadline = time.monotonic() + 120
        while "(disk full)" not in sink.log.read_text():
            assert time.monotonic() < deadline, sink.log.read_text()
            time.sleep(0.3)
        on_disk = read_avro_dir(sink.directory)
        offsets = committed(kafka_bootstrap, sink.group, topic, 1)

        assert len(on_disk) < 12_000
        assert offsets[0] <= len(on_disk)  # nothing committed that is not on disk
        assert "nothing committed, retrying" in sink.log.read_text()

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        found = wait_for_count(read_avro_dir, sink.directory, 12_000)
        code = sink.terminate()
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)

    assert Counter(found) == Counter(sent)
    assert code == 0


def test_the_time_path_can_follow_the_events_own_time(kafka_bootstrap: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    topic = _topic(kafka_bootstrap, 1)
    long_ago = datetime(2024, 2, 29, 23, 15, tzinfo=UTC)
    sent = produce(kafka_bootstrap, topic, event_values(30, last_timestamp=long_ago))
    sink = _sink(
        kafka_bootstrap, topic, tmp_path, "--time-field", "event", "--max-age-seconds", "1"
    )
    sink.start()

    found = wait_for_count(read_avro_dir, sink.directory, 30)
    sink.terminate()

    assert Counter(found) == Counter(sent)
    folders = {p.relative_to(sink.directory).parts[1:3] for p in avro_files(sink.directory)}
    assert folders == {("dt=2024-02-29", "hour=23")}


def test_a_sink_started_before_its_topic_waits_for_it_then_writes_it_all(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Installed together, a sink may start before the producer made its topic: it waits
    (saying so) instead of exiting, and takes the topic's records once it exists."""
    topic = unique("sinkin-later")
    sink = _sink(kafka_bootstrap, topic, tmp_path, "--max-age-seconds", "1")
    sink.start()
    deadline = time.monotonic() + 60
    while "does not exist yet; waiting up to" not in sink.log.read_text():
        assert sink.alive(), sink.log.read_text()[-3000:]
        assert time.monotonic() < deadline, sink.log.read_text()[-3000:]
        time.sleep(0.2)

    create_topic(kafka_bootstrap, topic, 3)
    produce(kafka_bootstrap, topic, event_values(300))
    found = wait_for_count(read_avro_dir, sink.directory, 300)
    assert sink.terminate() == 0
    assert len(found) == len(set(found)) == 300
    assert f"topic {topic} exists now" in sink.log.read_text()


def test_a_topic_that_never_comes_stops_the_sink_naming_the_setting(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = unique("sinkin-never")
    sink = _sink(kafka_bootstrap, topic, tmp_path, "--topic-wait-seconds", "3")
    sink.start()
    assert sink.process is not None
    code = sink.process.wait(60)
    log = sink.log.read_text()

    assert code != 0
    assert f"topic {topic} does not exist (waited 3 s, sinks.file.topic_wait_seconds)" in log
    assert "Traceback" not in log
