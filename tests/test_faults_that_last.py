"""Faults that last minutes (P15) on the real stack: Kafka stopped for two minutes under a
running producer and two sinks while events keep coming. No process exits, each one's
readiness says not ready during and ready after, every occurrence arrives once on the topic
and in both sinks, and each process says little about it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from tests.conftest import Services, unique
from tests.processes import KafkubeProcess
from tests.producing import EventWriter, duplicates, new_producer, wait_for_occurrences
from tests.sinking import SinkProcess, read_avro_dir, read_s3, s3_env
from tests.test_observability import _LISTEN, _get, _until, _url

pytestmark = pytest.mark.timeout(900)

OUTAGE_SECONDS = 120


def _lines(process: KafkubeProcess) -> list[str]:
    return process.log.read_text(errors="replace").splitlines()


def _ready(base: str) -> bool:
    try:
        return _get(f"{base}/readyz")[0] == 200
    except OSError:
        return False


def test_kafka_stopped_for_two_minutes_is_waited_out_by_the_producer_and_both_sinks(
    endpoints: Endpoints, services: Services, native_stack: Stack, kube_api: Any,
    namespace: str, s3_client: Any, s3_bucket: str, tmp_path: Path,
) -> None:  # fmt: skip
    assert services.origin["kafka"] == "native launcher", "this test stops the launcher's Kafka"
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.env = _LISTEN
    producer.start()
    rotation = ["--max-records", "50", "--max-age-seconds", "0.5"]
    file_sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=producer.topic, directory=tmp_path / "files",
        log=tmp_path / "file.log", group=unique("sink-file"), extra=rotation, env=_LISTEN,
    )  # fmt: skip
    s3_sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=producer.topic, directory=tmp_path,
        log=tmp_path / "s3.log", group=unique("sink-s3"), kind="s3",
        target=["--bucket", s3_bucket], env=s3_env(endpoints) | _LISTEN, extra=rotation,
    )  # fmt: skip
    file_sink.start()
    s3_sink.start()
    processes = {"producer": producer, "file sink": file_sink, "s3 sink": s3_sink}
    bases = {name: _url(process) for name, process in processes.items()}
    writer = EventWriter(kube_api, namespace)
    names = [writer.create(f"before-{i}.{unique('e')}") for i in range(5)]
    wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    _until(lambda: all(_ready(base) for base in bases.values()), "every process ready")
    lines_before = {name: len(_lines(process)) for name, process in processes.items()}

    native_stack.down(["kafka"])
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
