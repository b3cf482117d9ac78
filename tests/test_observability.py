"""/metrics, /healthz and /readyz of a running producer and sink, and JSON logs: scraped over
HTTP from the real processes, against the real API server, Kafka and MinIO."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from tests.conftest import Services, unique
from tests.processes import LISTEN, http_get, scrape
from tests.producing import EventWriter, new_producer
from tests.sinking import SinkProcess, create_topic, event_values, produce, read_s3, s3_env

pytestmark = pytest.mark.timeout(600)


def _committed(metrics: dict[str, float]) -> float:
    return sum(v for name, v in metrics.items() if name.startswith("kafkube_sink_committed_offset"))


def _until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_producer_metrics_move_while_events_flow_and_readyz_follows_the_watch(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.env = LISTEN
    producer.start()
    base = producer.served_at()
    writer = EventWriter(kube_api, namespace)

    _until(lambda: http_get(f"{base}/readyz")[0] == 200, "the producer to be ready")
    before = scrape(base)
    for index in range(20):
        name = writer.create(f"obs-{index}.{unique('e')}")
        writer.repeat(name)
    after = _until(
        lambda: (
            (m := scrape(base))["kafkube_producer_events_published_total"]
            >= before["kafkube_producer_events_published_total"] + 40
            and m
        ),
        "40 more published events in /metrics",
    )
    healthz = http_get(f"{base}/healthz")
    code = producer.terminate()

    assert code == 0
    assert healthz == (200, "ok\n")
    assert (
        after["kafkube_producer_events_watched_total"]
        >= before["kafkube_producer_events_watched_total"] + 40
    )
    assert (
        after["kafkube_producer_transactions_total"] > before["kafkube_producer_transactions_total"]
    )
    assert after["kafkube_producer_watch_restarts_total"] >= 1
    assert after["kafkube_producer_relists_total"] >= 1
    assert after["kafkube_producer_transaction_aborts_total"] == 0
    # Every occurrence by cluster, type and reason (the writer makes BackOff Warnings).
    backoffs = 'kafkube_events_total{cluster="test",reason="BackOff",type="Warning"}'
    assert after[backoffs] >= before.get(backoffs, 0) + 40
    assert after["kafkube_producer_last_commit_timestamp_seconds"] > time.time() - 60
    assert "process_resident_memory_bytes" in after
    assert not [name for name in after if name.startswith("kafkube_sink_")]


def test_sink_metrics_move_and_readyz_is_false_while_minio_is_down(
    endpoints: Endpoints, services: Services, native_stack: Stack, s3_client: Any,
    s3_bucket: str, tmp_path: Path,
) -> None:  # fmt: skip
    assert services.origin["minio"] == "native launcher", "this test stops the launcher's MinIO"
    topic = unique("observed")
    create_topic(endpoints.kafka_bootstrap, topic, 2)
    sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path,
        log=tmp_path / "s3.log", group=unique("sink-s3"), kind="s3",
        target=["--bucket", s3_bucket, "--prefix", "events"], env=s3_env(endpoints) | LISTEN,
        extra=["--max-records", "100", "--max-age-seconds", "0.3"],
    )  # fmt: skip
    sink.start()
    base = sink.served_at()
    labels = f'{{partition="0",sink="s3",topic="{topic}"}}'

    _until(lambda: http_get(f"{base}/readyz")[0] == 200, "the sink to be ready")
    produce(endpoints.kafka_bootstrap, topic, event_values(500, seed=31))
    moved = _until(
        lambda: (
            (m := scrape(base)).get('kafkube_sink_records_written_total{sink="s3"}', 0) >= 500 and m
        ),
        "500 records written in /metrics",
    )
    native_stack.down(["minio"])
    try:
        down = _until(lambda: (r := http_get(f"{base}/readyz"))[0] == 503 and r, "/readyz to fail")
        healthz_while_down = http_get(f"{base}/healthz")
    finally:
        native_stack.up(["minio"])
    _until(lambda: http_get(f"{base}/readyz")[0] == 200, "/readyz to recover", timeout=90)
    produce(endpoints.kafka_bootstrap, topic, event_values(200, seed=32))
    later = _until(  # written, then committed: a scrape may fall between the two
        lambda: (
            (m := scrape(base)).get('kafkube_sink_records_written_total{sink="s3"}', 0) >= 700
            and _committed(m) >= 700
            and m
        ),
        "700 records written and committed in /metrics",
    )
    in_s3 = read_s3(s3_client, s3_bucket, "events/")
    code = sink.terminate()

    assert code == 0
    assert "store: S3 bucket" in down[1]
    assert healthz_while_down == (200, "ok\n")  # alive, only not ready: no restart wanted
    assert moved['kafkube_sink_batches_written_total{sink="s3"}'] >= 5
    assert moved['kafkube_sink_bytes_written_total{sink="s3"}'] > 0
    assert (
        moved['kafkube_sink_write_duration_seconds_count{sink="s3"}']
        == moved['kafkube_sink_batches_written_total{sink="s3"}']
    )
    assert later[f"kafkube_sink_committed_offset{labels}"] > 0
    assert _committed(later) >= 700
    lags = [value for name, value in later.items() if name.startswith("kafkube_sink_lag_records")]
    assert lags
    assert all(value == 0 for value in lags), "a caught-up partition lags by no record"
    assert later['kafkube_sink_dead_letters_total{sink="s3"}'] == 0
    assert len(in_s3) == 700
    assert not [name for name in later if name.startswith("kafkube_producer_")]


def test_json_logs_are_one_object_a_line_at_the_configured_level(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    topic = unique("jsonlog")
    create_topic(endpoints.kafka_bootstrap, topic, 1)
    sink = SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=tmp_path / "out",
        log=tmp_path / "file.log", group=unique("sink-file"),
        env={"KAFKUBE_OBSERVABILITY__LOG_FORMAT": "json"},
    )  # fmt: skip
    sink.start()
    _until(lambda: "assigned partition" in sink.log.read_text(), "the partition to be assigned")
    code = sink.terminate()

    lines = sink.log.read_text().splitlines()
    *logged, summary = [json.loads(line) for line in lines if line.startswith("{")]
    assert code == 0
    assert len(logged) + 1 == len(lines), "a line that is not JSON (librdkafka's included)"
    assert summary.keys() == {"stopped"}  # the command's own result, last
    assert any(f"assigned partition {topic}[0]" in entry["message"] for entry in logged)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in logged)
    assert {entry["level"] for entry in logged} <= {"INFO", "WARNING", "ERROR"}
