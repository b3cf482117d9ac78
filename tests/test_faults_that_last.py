"""Faults that last minutes (P15) on the real stack: Kafka stopped for two minutes under a
running producer and two sinks while events keep coming. No process exits, each one's
readiness says not ready during and ready after, every occurrence arrives once on the topic
and in both sinks, and each process says little about it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.processes import running_pid
from kafkube.compose.stack import Stack
from tests.conftest import Services, unique
from tests.processes import LISTEN, KafkubeProcess, http_get
from tests.producing import EventWriter, duplicates, new_producer, wait_for_occurrences
from tests.sinking import (
    SinkProcess,
    create_topic,
    event_values,
    produce,
    read_avro_dir,
    read_s3,
    s3_env,
)
from tests.test_observability import _until

pytestmark = pytest.mark.timeout(900)

OUTAGE_SECONDS = 120


def _lines(process: KafkubeProcess) -> list[str]:
    return process.log.read_text(errors="replace").splitlines()


def _ready(base: str) -> bool:
    try:
        return http_get(f"{base}/readyz")[0] == 200
    except OSError:
        return False


def test_kafka_stopped_for_two_minutes_is_waited_out_by_the_producer_and_both_sinks(
    endpoints: Endpoints, services: Services, native_stack: Stack, kube_api: Any,
    namespace: str, s3_client: Any, s3_bucket: str, tmp_path: Path,
) -> None:  # fmt: skip
    assert services.origin["kafka"] == "native launcher", "this test stops the launcher's Kafka"
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.env = LISTEN
    producer.start()
    rotation = ["--max-records", "50", "--max-age-seconds", "0.5"]
    file_sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=producer.topic, directory=tmp_path / "files",
        log=tmp_path / "file.log", group=unique("sink-file"), extra=rotation, env=LISTEN,
    )  # fmt: skip
    s3_sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=producer.topic, directory=tmp_path,
        log=tmp_path / "s3.log", group=unique("sink-s3"), kind="s3",
        target=["--bucket", s3_bucket], env=s3_env(endpoints) | LISTEN, extra=rotation,
    )  # fmt: skip
    file_sink.start()
    s3_sink.start()
    processes = {"producer": producer, "file sink": file_sink, "s3 sink": s3_sink}
    bases = {name: process.served_at() for name, process in processes.items()}
    writer = EventWriter(kube_api, namespace)
    names = [writer.create(f"before-{i}.{unique('e')}") for i in range(5)]
    wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    _until(lambda: all(_ready(base) for base in bases.values()), "every process ready")
    lines_before = {name: len(_lines(process)) for name, process in processes.items()}

    native_stack.down(["kafka"])
    try:
        stopped_at, not_ready = time.monotonic(), set()
        index = 0
        while time.monotonic() - stopped_at < OUTAGE_SECONDS:  # events keep coming
            writer.create(f"during-{index}.{unique('e')}")
            writer.repeat(names[index % len(names)])
            index += 1
            not_ready |= {name for name, base in bases.items() if not _ready(base)}
            for name, process in processes.items():
                assert process.alive(), f"{name} exited:\n" + "\n".join(_lines(process)[-30:])
            time.sleep(2)
    finally:
        native_stack.up(["kafka"])
    writer.create(f"after.{unique('e')}")

    found = wait_for_occurrences(
        endpoints.kafka_bootstrap, producer.topic, writer.occurrences, timeout=300
    )
    in_files, in_s3 = _until(
        lambda: (
            writer.occurrences <= set(files := read_avro_dir(file_sink.directory))
            and writer.occurrences <= set(objects := read_s3(s3_client, s3_bucket))
            and (files, objects)
        ),
        "every occurrence in both sinks",
        timeout=300,
    )
    _until(lambda: all(_ready(base) for base in bases.values()), "every process ready again")
    said = {name: _lines(process)[lines_before[name] :] for name, process in processes.items()}
    codes = {name: process.terminate() for name, process in processes.items()}

    assert codes == dict.fromkeys(processes, 0)
    assert not_ready == set(processes)  # each one's readiness failed during the outage
    assert set(found) == writer.occurrences
    assert duplicates(found) == {}
    assert duplicates(in_files) == {}
    assert duplicates(in_s3) == {}
    for name, lines in said.items():
        assert len(lines) <= 20, f"{name} said {len(lines)} lines:\n" + "\n".join(lines)
        assert not [line for line in lines if "Traceback" in line], "\n".join(lines)


def test_a_producer_whose_abort_fails_publishes_again_by_itself(
    endpoints: Endpoints, services: Services, native_stack: Stack, kube_api: Any,
    namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    """The broker frozen (SIGSTOP: connections open, nothing answered) for longer than a
    transaction's delivery and its abort may take: the abort fails, and librdkafka's producer
    would refuse every later transaction. A new producer, whose init_transactions fences the
    broken one, publishes the next events within a minute of the broker's return."""
    assert services.origin["kafka"] == "native launcher", "this test freezes the launcher's Kafka"
    # Deliveries give up after 15 s rather than 60 (a transaction's timeout bounds them): the
    # same path, sooner.
    producer = new_producer(
        endpoints, namespace, tmp_path, "--kafka", "transaction.timeout.ms=15000"
    )
    producer.start()
    writer = EventWriter(kube_api, namespace)
    writer.create(f"before.{unique('e')}")
    wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    kafka = running_pid(native_stack.settings.state_dir, "kafka")
    assert kafka is not None

    os.killpg(kafka, signal.SIGSTOP)
    try:
        writer.create(f"frozen.{unique('e')}")  # a transaction that cannot end
        _until(
            lambda: "aborting the transaction failed" in producer.log.read_text(),
            "the abort to fail",
            timeout=240,
        )
    finally:
        os.killpg(kafka, signal.SIGCONT)
    thawed = time.monotonic()
    writer.create(f"after.{unique('e')}")
    found = wait_for_occurrences(
        endpoints.kafka_bootstrap, producer.topic, writer.occurrences, timeout=60
    )
    published_in = time.monotonic() - thawed

    assert set(found) == writer.occurrences, producer.log.read_text()[-3000:]
    assert published_in < 60
    assert duplicates(found) == {}
    assert producer.alive()
    assert producer.terminate() == 0


def test_minio_away_through_a_rebalance_and_a_restart_ends_no_instance(
    endpoints: Endpoints, services: Services, native_stack: Stack, s3_client: Any,
    s3_bucket: str, tmp_path: Path,
) -> None:  # fmt: skip
    """A rollout with the store down: one instance leaves (the other takes its partitions
    and must read their index from the store) and starts again (its bucket check at start).
    Neither exits; once MinIO is back both write, and every record is in the bucket once."""
    assert services.origin["minio"] == "native launcher", "this test stops the launcher's MinIO"
    topic, group = unique("rollout"), unique("sink-s3")
    create_topic(endpoints.kafka_bootstrap, topic, 4)

    def instance(name: str) -> SinkProcess:
        return SinkProcess(
            bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path,
            log=tmp_path / f"{name}.log", group=group, kind="s3",
            target=["--bucket", s3_bucket], env=s3_env(endpoints),
            extra=["--max-records", "50", "--max-age-seconds", "0.5"],
        )  # fmt: skip

    def wave(seed: int) -> set[tuple[str, str]]:
        return produce(endpoints.kafka_bootstrap, topic, event_values(200, seed=seed))

    first, second = instance("first"), instance("second")
    first.start()
    second.start()
    first.wait_for("assigned partition")
    second.wait_for("assigned partition")
    sent = wave(41)
    _until(lambda: set(read_s3(s3_client, s3_bucket)) >= sent, "the first records in S3")

    native_stack.down(["minio"])
    try:
        sent |= wave(42)
        assigned = first.log.read_text().count("assigned partition")
        assert first.terminate() == 0  # leaves: its partitions go to the other, store down
        first.start()  # its bucket check at start, store down
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert first.alive(), first.log.read_text()
            assert second.alive(), second.log.read_text()
            time.sleep(1)
    finally:
        native_stack.up(["minio"])
    _until(
        lambda: first.log.read_text().count("assigned partition") > assigned, "the first back in"
    )
    sent |= wave(43)  # for both, now that both hold partitions again
    held = _until(
        lambda: set(found := read_s3(s3_client, s3_bucket)) >= sent and found,
        "every record in S3",
        timeout=180,
    )
    codes = (first.terminate(), second.terminate())

    assert duplicates(held) == {}
    assert set(held) == sent
    assert codes == (0, 0)
    assert first.exit_counts()["records"] > 0  # its run after the restart
    assert second.exit_counts()["records"] > 0
    assert "unavailable" in second.log.read_text()  # it waited, and said so
