"""P3, P4, P6 for the file sink: SIGKILLs at random moments, rebalances, commits behind the disk."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.consumers.formats import FORMATS
from kafkube.schemas.codec import Codec
from tests.conftest import unique
from tests.producing import read_records
from tests.sinking import (
    SinkProcess,
    assert_commits_behind,
    committed,
    create_topic,
    ends_from_names,
    event_values,
    produce,
    read_avro_dir,
    read_jsonl_dir,
    read_parquet_dir,
    registered_codec,
    wait_for_count,
)

pytestmark = pytest.mark.timeout(900)

RECORDS = 10_000
PARTITIONS = 3


def _assert_commits_behind_disk(bootstrap: str, group: str, topic: str, directory: Path) -> None:
    offsets = committed(bootstrap, group, topic, PARTITIONS)  # read the commits first ...
    names = [p.name for p in directory.rglob("*") if p.is_file()]  # ... then the disk, which grows
    assert_commits_behind(offsets, ends_from_names(names, topic))


def _producing(
    bootstrap: str, topic: str, sent: set[tuple[str, str]], codec: Codec | None = None
) -> threading.Thread:
    def write() -> None:
        values = event_values(RECORDS, seed=11, codec=codec)
        for start in range(0, RECORDS, 500):  # a steady stream over the whole test
            sent.update(produce(bootstrap, topic, values[start : start + 500], codec))
            time.sleep(0.4)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.mark.parametrize("framing", ["single-object", "registry"])
def test_p3_sigkill_at_random_moments_leaves_every_record_exactly_once(
    kafka_bootstrap: str, endpoints: Endpoints, tmp_path: Path, framing: str
) -> None:
    """Three file sinks in their own groups, Avro, JSON Lines and Parquet, killed together again
    and again; the topic in either framing (registry: the sinks look its schema id up, once
    each). The Parquet output is then asked with DuckDB and pyarrow.dataset, as Hive folders."""
    chance = random.Random(3)
    topic = unique("chaos")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    registry = endpoints.schema_registry_url if framing == "registry" else None
    codec = registered_codec(registry, topic) if registry else None
    sinks = {
        output_format: SinkProcess(
            bootstrap=kafka_bootstrap,
            topic=topic,
            directory=tmp_path / output_format,
            log=tmp_path / f"{output_format}.log",
            group=unique(f"sink-file-{output_format}"),
            extra=[
                *("--format", output_format, "--max-records", "250", "--max-age-seconds", "0.3"),
                # Static membership: each restart takes its partitions straight back.
                *("--instance-id", f"{output_format}-0"),
                *(["--schema-registry-url", registry] if registry else []),
            ],
        )
        for output_format in FORMATS
    }
    sent: set[tuple[str, str]] = set()
    producing = _producing(kafka_bootstrap, topic, sent, codec)
    kills = checks = 0
    for sink in sinks.values():
        sink.start()
    while producing.is_alive() or kills < 20:
        time.sleep(chance.uniform(0.3, 2.0))  # mid-batch, mid-write, between write and commit
        for sink in sinks.values():
            _assert_commits_behind_disk(kafka_bootstrap, sink.group, topic, sink.directory)
            checks += 1
            sink.kill()
            sink.start()
        kills += 1
    producing.join()
    found = {
        "avro": wait_for_count(read_avro_dir, sinks["avro"].directory, RECORDS, timeout=180),
        "jsonl": wait_for_count(read_jsonl_dir, sinks["jsonl"].directory, RECORDS, timeout=180),
        "parquet": wait_for_count(
            read_parquet_dir, sinks["parquet"].directory, RECORDS, timeout=180
        ),
    }
    codes = []
    for sink in sinks.values():
        _assert_commits_behind_disk(kafka_bootstrap, sink.group, topic, sink.directory)
        sink.wait_running()  # a SIGTERM before the handler is set up would just kill it
        codes.append(sink.terminate())

    for output_format, records in found.items():
        print(  # noqa: T201 - the figures the run should show
            f"file sink chaos ({output_format}): {kills} SIGKILLs, {len(sent)} records sent, "
            f"{len(records)} read back, {len(set(records))} distinct, {checks // 3} commit checks"
        )
    assert kills >= 20
    assert len(sent) == RECORDS
    assert Counter(found["avro"]) == Counter(sent)  # read with plain fastavro
    assert Counter(found["jsonl"]) == Counter(sent)  # read through gzip -dc
    assert Counter(found["parquet"]) == Counter(sent)  # read with DuckDB
    assert codes == [0, 0, 0]
    # What a team asks of it: events by reason, the same as the topic says.
    topic_reasons = Counter(
        r["reason"] for r in read_records(kafka_bootstrap, topic, registry, headers=False)
    )
    folder = sinks["parquet"].directory / topic
    by_reason = duckdb.execute(
        "select reason, count(*) from read_parquet(?, hive_partitioning=true) group by reason",
        [f"{folder}/**/*.parquet"],
    ).fetchall()
    assert dict(by_reason) == topic_reasons
    discovered = ds.dataset(folder, format="parquet", partitioning="hive")
    assert {"dt", "hour"} <= set(discovered.schema.names)
    assert discovered.count_rows() == RECORDS


def test_p6_instances_share_partitions_and_rebalances_lose_and_double_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic, group = unique("shared"), unique("sink-file")
    create_topic(kafka_bootstrap, topic, 6)
    directory = tmp_path / "out"

    def instance(name: str) -> SinkProcess:
        return SinkProcess(
            bootstrap=kafka_bootstrap,
            topic=topic,
            directory=directory,
            log=tmp_path / f"{name}.log",
            group=group,
            extra=["--max-records", "200", "--max-age-seconds", "0.3"],
        )

    first, second, third = instance("first"), instance("second"), instance("third")
    sent: set[tuple[str, str]] = set()
    first.start()
    second.start()
    for running in (first, second):
        _wait_in_log(running, "assigned partition")
    producing = _producing(kafka_bootstrap, topic, sent)
    wait_for_count(read_avro_dir, directory, 1_000, timeout=60)  # both are writing
    second.kill()  # its partitions move to the first instance (after its session expires)
    wait_for_count(read_avro_dir, directory, 2_000, timeout=60)  # the stream goes on
    third.start()  # and some move again to the newcomer
    _wait_in_log(third, "assigned partition", timeout=120)
    producing.join()
    found = wait_for_count(read_avro_dir, directory, RECORDS, timeout=180)
    first_code, third_code = first.terminate(), third.terminate()

    assert Counter(found) == Counter(sent)
    assert len(sent) == RECORDS
    assert (first_code, third_code) == (0, 0)
    assert "assigned partition" in third.log.read_text()
    assert "revoked partition" in first.log.read_text()


def _wait_in_log(sink: SinkProcess, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in (sink.log.read_text() if sink.log.exists() else ""):
        assert sink.alive(), sink.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s"
        time.sleep(0.1)
