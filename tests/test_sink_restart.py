"""P11 for the sinks: static group membership brings a crashed sink back within seconds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.sinking import (
    SinkProcess,
    create_topic,
    event_values,
    produce,
    read_avro_dir,
    wait_for_count,
)

pytestmark = pytest.mark.timeout(300)


def _sink(bootstrap: str, topic: str, group: str, tmp_path: Path, name: str) -> SinkProcess:
    return SinkProcess(
        bootstrap=bootstrap,
        topic=topic,
        directory=tmp_path / "out",
        log=tmp_path / f"{name}.log",
        group=group,
        extra=["--max-records", "50", "--max-age-seconds", "0.3", "--instance-id", "sink-0"],
    )


def _wait_assigned(sink: SinkProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "assigned partition" not in sink.log.read_text():
        assert sink.alive(), sink.log.read_text()[-3000:]
        assert time.monotonic() < deadline, sink.log.read_text()[-3000:]
        time.sleep(0.1)


def test_p11_a_sink_sigkilled_and_restarted_with_its_instance_id_writes_within_10_s(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Without static membership the new instance waits for the dead one's session to
    expire (45 s by default) before any partition is its own."""
    topic, group = unique("restart"), unique("sink-file")
    create_topic(kafka_bootstrap, topic, 3)
    values = event_values(300, seed=21)
    sent = produce(kafka_bootstrap, topic, values[:150])
    sink = _sink(kafka_bootstrap, topic, group, tmp_path, "first")
    sink.start()
    assert len(wait_for_count(read_avro_dir, sink.directory, 150, timeout=60)) == 150

    sink.kill()
    sent |= produce(kafka_bootstrap, topic, values[150:])
    sink.start()
    found = wait_for_count(read_avro_dir, sink.directory, 300, timeout=10)

    assert len(found) == 300, f"after 10 s only {len(found)}:\n{sink.log.read_text()[-3000:]}"
    assert set(found) == sent
    assert sink.terminate() == 0


def test_two_instances_given_one_instance_id_by_mistake_stop_one_with_a_clear_error(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, group = unique("twins"), unique("sink-file")
    create_topic(kafka_bootstrap, topic, 3)
    first = _sink(kafka_bootstrap, topic, group, tmp_path, "first")
    first.start()
    _wait_assigned(first)

    second = _sink(kafka_bootstrap, topic, group, tmp_path, "second")
    second.start()
    assert first.process is not None
    code = first.process.wait(60)

    log = first.log.read_text()
    assert code != 0, log[-3000:]
    assert "joined with this one's instance id 'sink-0'" in log, log[-3000:]
    assert "sinks.file.instance_id" in log
    sent = produce(kafka_bootstrap, topic, event_values(60, seed=22))
    assert set(wait_for_count(read_avro_dir, second.directory, 60, timeout=60)) == sent
    assert second.alive()
    assert second.terminate() == 0
