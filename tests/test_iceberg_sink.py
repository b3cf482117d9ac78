"""The Iceberg sink: a table per topic, every record once, the group's offsets in the table's
own commits; killed at random, it neither loses nor doubles a record; a newer writer schema
grows the table's columns."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kafkube.cli.commands import cli
from kafkube.compose.endpoints import Endpoints
from kafkube.consumers.icebergsink import IcebergDestination
from kafkube.consumers.settings import IcebergSinkConfig
from kafkube.schemas.codec import Codec, released_versions
from tests.conftest import unique
from tests.icebergs import TOPIC, put
from tests.processes import LISTEN, scrape
from tests.sinking import (
    SinkProcess,
    committed,
    create_topic,
    event_values,
    produce,
    s3_env,
)

PARTITIONS = 3

pytestmark = pytest.mark.timeout(600)


def _table(warehouse: Path, topic: str, uri: str | None = None) -> Any:
    """The topic's table in a folder warehouse, its catalog the embedded one or ``uri``."""
    from pyiceberg.catalog import load_catalog  # noqa: PLC0415

    catalog = load_catalog(
        "kafkube",
        type="sql",
        uri=uri or f"sqlite:///{warehouse}/catalog.db",
        warehouse=f"file://{warehouse}",
    )
    return catalog.load_table(f"kafkube.{_name(topic)}")


def _name(topic: str) -> str:
    return topic.replace(".", "_").replace("-", "_")


def _s3_catalog(uri: str, warehouse: str, endpoints: Endpoints) -> Any:
    from pyiceberg.catalog import load_catalog  # noqa: PLC0415

    return load_catalog(
        "kafkube", type="sql", uri=uri, warehouse=warehouse,
        **{"s3.endpoint": endpoints.s3_endpoint, "s3.region": endpoints.s3_region,
           "s3.access-key-id": endpoints.s3_access_key,
           "s3.secret-access-key": endpoints.s3_secret_key},
    )  # fmt: skip


def _rows(warehouse: Path, topic: str) -> list[dict[str, Any]]:
    return list(_table(warehouse, topic).scan().to_arrow().to_pylist())


def _sink(
    kafka_bootstrap: str, topic: str, tmp_path: Path, name: str = "iceberg", *, static: bool = True
) -> SinkProcess:
    """The sink, as a static member (``name`` its instance id) unless not ``static``: a
    static member stays in the group until its session times out, so a replay waits."""
    return SinkProcess(
        bootstrap=kafka_bootstrap,
        topic=topic,
        directory=tmp_path / "warehouse",
        log=tmp_path / f"{name}.log",
        group=unique("sink-iceberg"),
        kind="iceberg",
        target=["--warehouse", str(tmp_path / "warehouse")],
        extra=[
            *("--max-records", "200", "--max-age-seconds", "0.5"),
            *(("--instance-id", name) if static else ()),
        ],
    )


def _wait_committed(bootstrap: str, group: str, topic: str, total: int) -> None:
    deadline = time.monotonic() + 180
    while sum(max(0, o) for o in committed(bootstrap, group, topic, PARTITIONS).values()) < total:
        assert time.monotonic() < deadline, "the sink did not commit everything in time"
        time.sleep(0.3)


def test_every_record_lands_once_and_the_table_carries_the_groups_offsets(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = unique("ice")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    sent = produce(kafka_bootstrap, topic, event_values(600, seed=11))
    sink = _sink(kafka_bootstrap, topic, tmp_path)

    sink.start()
    _wait_committed(kafka_bootstrap, sink.group, topic, 600)
    assert sink.terminate() == 0

    rows = _rows(tmp_path / "warehouse", topic)
    held = Counter((r["uid"], r["resource_version"]) for r in rows)
    assert set(held) == sent
    assert set(held.values()) == {1}
    table = _table(tmp_path / "warehouse", topic)
    summary = table.current_snapshot().summary
    offsets = json.loads(summary[f"kafkube.offsets.{sink.group}.{topic}"])
    assert {int(p): o for p, o in offsets.items()} == committed(
        kafka_bootstrap, sink.group, topic, PARTITIONS
    )
    assert [f.name for f in table.spec().fields] == ["observed_at_day", "cluster"]


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"])
def test_p3_killed_20_times_at_random_it_neither_loses_nor_doubles_a_record(
    kafka_bootstrap: str,
    endpoints: Endpoints,
    s3_bucket: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    catalog: str,
) -> None:
    """The warehouse in MinIO, the catalog in SQLite or in the stack's PostgreSQL; the sink
    killed mid-batch, mid-commit and between the table's commit and Kafka's."""
    chance = random.Random(5)
    topic = unique("ice-chaos")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    uri = (
        request.getfixturevalue("postgres_url")
        if catalog == "postgresql"
        else f"sqlite:///{tmp_path}/catalog.db"
    )
    warehouse = f"s3://{s3_bucket}/lake"
    sink = dataclasses.replace(
        _sink(kafka_bootstrap, topic, tmp_path),
        target=["--warehouse", warehouse, "--catalog-uri", uri],
        env=s3_env(endpoints),
    )
    sent: set[tuple[str, str]] = set()
    total = 1500

    def producing() -> None:
        for start in range(0, total, 300):
            batch = event_values(300, seed=100 + start)
            sent.update(produce(kafka_bootstrap, topic, batch))
            time.sleep(0.2)

    writer = threading.Thread(target=producing)
    writer.start()
    sink.start()
    kills = 0
    while writer.is_alive() or kills < 20:
        time.sleep(chance.uniform(0.2, 0.9))  # mid-batch, mid-commit, between commit and Kafka's
        sink.kill()
        sink.start()
        kills += 1
    writer.join()
    _wait_committed(kafka_bootstrap, sink.group, topic, total)
    assert sink.terminate() == 0

    table = _s3_catalog(uri, warehouse, endpoints).load_table(f"kafkube.{_name(topic)}")
    held = Counter((r["uid"], r["resource_version"]) for r in table.scan().to_arrow().to_pylist())
    assert len(sent) == total
    assert set(held) == sent
    assert set(held.values()) == {1}


def test_through_a_rest_catalog_killed_at_random_every_record_lands_once(
    kafka_bootstrap: str, endpoints: Endpoints, rest_catalog_url: str, tmp_path: Path
) -> None:
    """The stack's Nessie as the REST catalog, its warehouse (by name) a bucket of the stack's
    MinIO; the sink writes the data files with the s3 sink's credentials and commits through
    the catalog's API, killed 5 times at random."""
    from pyiceberg.catalog import load_catalog  # noqa: PLC0415

    chance = random.Random(9)
    topic = unique("ice-rest")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    sent = produce(kafka_bootstrap, topic, event_values(600, seed=61))
    sink = dataclasses.replace(
        _sink(kafka_bootstrap, topic, tmp_path),
        target=["--catalog", "rest", "--catalog-uri", rest_catalog_url, "--warehouse", "warehouse"],
        env=s3_env(endpoints),
    )
    sink.extra[sink.extra.index("--max-records") + 1] = "50"

    sink.start()
    for _ in range(5):
        time.sleep(chance.uniform(0.5, 1.5))
        sink.kill()
        sink.start()
    _wait_committed(kafka_bootstrap, sink.group, topic, 600)
    assert sink.terminate() == 0

    catalog = load_catalog(
        "kafkube", type="rest", uri=rest_catalog_url, warehouse="warehouse",
        **{"s3.access-key-id": endpoints.s3_access_key,
           "s3.secret-access-key": endpoints.s3_secret_key},
    )  # fmt: skip
    table = catalog.load_table(f"kafkube.{_name(topic)}")
    held = Counter((r["uid"], r["resource_version"]) for r in table.scan().to_arrow().to_pylist())
    assert set(held) == sent
    assert set(held.values()) == {1}
    assert table.location().startswith("s3://")  # where the catalog put it, not a folder here
    said = json.loads(table.current_snapshot().summary[f"kafkube.offsets.{sink.group}.{topic}"])
    assert sum(said.values()) == 600


def test_a_warehouse_in_gcs_holds_every_record_once(
    kafka_bootstrap: str, endpoints: Endpoints, gcs_client: Any, gcs_bucket: str, tmp_path: Path
) -> None:
    """The data and metadata files in the GCS emulator (STORAGE_EMULATOR_HOST, as for the gcs
    sink), the catalog in SQLite."""
    from pyiceberg.catalog import load_catalog  # noqa: PLC0415

    topic = unique("ice-gcs")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    sent = produce(kafka_bootstrap, topic, event_values(300, seed=51))
    uri, warehouse = f"sqlite:///{tmp_path}/catalog.db", f"gs://{gcs_bucket}/lake"
    sink = dataclasses.replace(
        _sink(kafka_bootstrap, topic, tmp_path),
        target=["--warehouse", warehouse, "--catalog-uri", uri],
        env={"STORAGE_EMULATOR_HOST": endpoints.gcs_endpoint},
    )

    sink.start()
    _wait_committed(kafka_bootstrap, sink.group, topic, 300)
    assert sink.terminate() == 0

    catalog = load_catalog(
        "kafkube", type="sql", uri=uri, warehouse=warehouse,
        **{"gcs.service.host": endpoints.gcs_endpoint, "gcs.oauth2.token": "emulator",
           "gcs.oauth2.token-expires-at": "4102444800000"},
    )  # fmt: skip
    table = catalog.load_table(f"kafkube.{_name(topic)}")
    held = Counter((r["uid"], r["resource_version"]) for r in table.scan().to_arrow().to_pylist())
    assert set(held) == sent
    assert set(held.values()) == {1}
    stored = {blob.name for blob in gcs_client.list_blobs(gcs_bucket, prefix="lake/")}
    assert any(name.endswith(".parquet") for name in stored)
    assert any(name.endswith(".metadata.json") for name in stored)


def test_instances_starting_at_once_on_a_new_postgresql_catalog_all_start(
    postgres_url: str, tmp_path: Path
) -> None:
    """Each makes the catalog's own tables, the namespace and the topic's table if it finds
    none: instances started together meet in PostgreSQL, and every one starts on what the
    first made (one table, no error)."""
    import sqlalchemy  # noqa: PLC0415

    database = unique("catalog").replace("-", "_")
    server = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {database}"))
    server.dispose()
    uri = f"{postgres_url.rsplit('/', 1)[0]}/{database}"
    instances = 6
    at_once = threading.Barrier(instances)
    failures: list[BaseException] = []

    def starting(number: int) -> None:
        destination = IcebergDestination(
            IcebergSinkConfig(warehouse=str(tmp_path / "warehouse"), catalog_uri=uri, group="g")
        )
        at_once.wait()
        try:
            destination.check()
            put(destination, number, 0, [v for _, v in event_values(5, seed=number)])
        except BaseException as err:  # noqa: BLE001 - reported below, with the others
            failures.append(err)

    threads = [threading.Thread(target=starting, args=(n,)) for n in range(instances)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    table = _table(tmp_path / "warehouse", TOPIC, uri)
    assert len(table.scan().to_arrow()) == 5 * instances  # each its own partition's five


def _interfering(uri: str, warehouse: Path, topic: str, stop: threading.Event) -> None:
    """Another writer of the table (a maintenance run, another tool) committing once a
    second: empty snapshots, each moving the table's head, so the sink's commits meet them.
    (Five a second starved the sinks on a slower machine: a commit there took longer than
    the 200 ms between the other's, so each of its tries met one.)"""
    from pyiceberg.exceptions import CommitFailedException  # noqa: PLC0415

    table = _table(warehouse, topic, uri)
    while not stop.wait(1.0):
        try:
            with (
                table.transaction() as change,
                change.update_snapshot(snapshot_properties={"writer": "test"}).fast_append(),
            ):
                pass
        except CommitFailedException:
            table.refresh()


def test_two_instances_of_a_group_one_killed_keep_every_record_once_through_conflicts(
    kafka_bootstrap: str, postgres_url: str, tmp_path: Path
) -> None:
    """Both commit to one table (its catalog in PostgreSQL, as instances on several machines
    would share it), in small batches, while a third writer commits to it once a second: a
    commit that meets another's reads the table again and tries again, counted in /metrics
    and in the exit counts; one instance is killed mid-run, maybe mid-commit."""
    topic = unique("ice-pair")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    warehouse = tmp_path / "warehouse"
    first = dataclasses.replace(
        _sink(kafka_bootstrap, topic, tmp_path, "first"),
        target=["--warehouse", str(warehouse), "--catalog-uri", postgres_url],
        env=LISTEN,
    )
    second = dataclasses.replace(
        first, log=tmp_path / "second.log", extra=[*first.extra[:-1], "second"]
    )
    for sink in (first, second):  # small batches: each commits back to back
        sink.extra[sink.extra.index("--max-records") + 1] = "10"
        sink.start()
    for sink in (first, second):  # each holds partitions before any record comes
        sink.wait_for("assigned partition")
    sent = produce(kafka_bootstrap, topic, event_values(600, seed=300))
    _wait_committed(kafka_bootstrap, first.group, topic, 50)
    stop = threading.Event()
    other = threading.Thread(target=_interfering, args=(postgres_url, warehouse, topic, stop))
    other.start()
    conflicts = 'kafkube_sink_commit_conflicts_total{sink="iceberg"}'
    try:
        _wait_committed(kafka_bootstrap, first.group, topic, 250)
        second.kill()  # mid-run, maybe mid-commit
        second.start()
        deadline, seed = time.monotonic() + 180, 301
        while scrape(first.served_at()).get(conflicts, 0) == 0:  # until the first has met one
            assert time.monotonic() < deadline, "no commit of the first instance met another"
            # More to commit meanwhile: sinks that caught up would commit nothing to meet.
            sent |= produce(kafka_bootstrap, topic, event_values(20, seed=seed))
            seed += 1
            time.sleep(0.3)
    finally:  # then the sinks commit on their own: a writer committing without end would
        stop.set()  # keep the table changing under them, and its metadata growing
        other.join()
    _wait_committed(kafka_bootstrap, first.group, topic, len(sent))
    scraped = scrape(first.served_at())[conflicts]
    assert first.terminate() == 0
    assert second.terminate() == 0

    rows = _table(warehouse, topic, postgres_url).scan().to_arrow().to_pylist()
    held = Counter((r["uid"], r["resource_version"]) for r in rows)
    assert set(held) == sent
    assert set(held.values()) == {1}
    assert first.exit_counts()["commit_conflicts"] == scraped > 0


def test_a_newer_writer_schema_grows_the_tables_columns_and_every_record_reads(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = unique("ice-evolve")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    sink = _sink(kafka_bootstrap, topic, tmp_path)
    sink.start()
    sent: set[tuple[str, str]] = set()
    for version, schema in released_versions().items():
        codec = Codec(writer=schema)
        values = event_values(60, seed=40 + version, codec=codec)
        sent |= produce(kafka_bootstrap, topic, values, codec)
        _wait_committed(kafka_bootstrap, sink.group, topic, 60 * version)
    assert sink.terminate() == 0

    table = _table(tmp_path / "warehouse", topic)
    rows = _rows(tmp_path / "warehouse", topic)
    newest = {field.name for field in table.schema().fields}
    assert {"truncated", "regarding_labels", "regarding_owner"} <= newest
    assert {(r["uid"], r["resource_version"]) for r in rows} == sent
    assert sum(r["regarding_owner"] is None for r in rows) >= 120  # v1 and v2 records: nulls


def _positions(table: Any, snapshot_id: int | None = None) -> Counter[tuple[int, int]]:
    rows = table.scan(
        selected_fields=("_kafka_partition", "_kafka_offset"), snapshot_id=snapshot_id
    ).to_arrow()
    return Counter(zip(*(rows[name].to_pylist() for name in rows.column_names), strict=True))


def _seen(table: Any) -> list[int]:
    """The current snapshot of each of the table's metadata files, oldest first: what a
    reader could see after each commit."""
    files = [entry.metadata_file for entry in table.metadata.metadata_log]
    files.append(table.metadata_location)
    current = [json.loads(Path(f.removeprefix("file://")).read_text()) for f in files]
    return [m["current-snapshot-id"] for m in current if m.get("current-snapshot-id", -1) != -1]


def test_replay_of_a_range_rewrites_it_in_place_never_a_row_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """``replay --sink iceberg --to-offset 50`` moves the table's offsets (one commit, no row
    changed) and the group's; the sink started again rewrites offsets 50 on, each batch's
    commit taking out the old rows it stands for: at every snapshot each offset is there
    once, and at the end the table holds what the topic holds."""
    topic = unique("ice-replay")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    sent = produce(kafka_bootstrap, topic, event_values(600, seed=21))
    sink = _sink(kafka_bootstrap, topic, tmp_path, static=False)
    sink.start()
    _wait_committed(kafka_bootstrap, sink.group, topic, 600)
    assert sink.terminate() == 0
    table = _table(tmp_path / "warehouse", topic)
    ends = Counter(partition for partition, _ in _positions(table))  # offsets 0 on, each once
    environment = {"KAFKUBE_SINKS__ICEBERG__WAREHOUSE": str(tmp_path / "warehouse")}
    command = ["replay", "--sink", "iceberg", "--group", sink.group, "--to-offset", "50"]
    command += ["--bootstrap-servers", kafka_bootstrap, "--topic", topic]

    shown = CliRunner().invoke(cli, command, env=environment)
    moved = CliRunner().invoke(cli, [*command, "--execute"], env=environment)

    assert shown.exit_code == 0, shown.output
    for partition, end in ends.items():  # the plan starts from the table's offsets
        assert f"{partition:>9} {end:>10} {50:>10}" in shown.output
    assert moved.exit_code == 0, moved.output
    assert "in place in the table" in moved.output
    table.refresh()
    rewound = table.current_snapshot().snapshot_id
    said = table.current_snapshot().summary[f"kafkube.offsets.{sink.group}.{topic}"]
    assert json.loads(said) == {str(partition): 50 for partition in ends}
    assert committed(kafka_bootstrap, sink.group, topic, PARTITIONS) == dict.fromkeys(ends, 50)

    sink.start()
    _wait_committed(kafka_bootstrap, sink.group, topic, 600)
    assert sink.terminate() == 0

    table.refresh()
    seen = _seen(table)  # a commit of several snapshots (delete, then append) shows its last
    seen = seen[seen.index(rewound) :]
    assert len(seen) > 1
    for snapshot_id in seen:  # after every commit of the rewrite: each offset once, none missing
        held = _positions(table, snapshot_id)
        assert set(held.values()) == {1}, f"snapshot {snapshot_id}: {held.most_common(2)}"
        assert len(held) == 600, f"snapshot {snapshot_id}"
    since = [snapshot.snapshot_id for snapshot in table.snapshots()]  # in commit order
    since = since[since.index(rewound) :]
    operations = {table.snapshot_by_id(i).summary.operation.value for i in since}
    assert operations & {"overwrite", "delete"}  # old rows taken out, not appended beside
    rows = _rows(tmp_path / "warehouse", topic)
    assert Counter((r["uid"], r["resource_version"]) for r in rows) == Counter(sent)
    assert table.current_snapshot().summary[f"kafkube.rewrite.{sink.group}.{topic}"] is None


def test_duckdb_reads_the_table_from_its_own_metadata(kafka_bootstrap: str, tmp_path: Path) -> None:
    """No pyiceberg on the reading side: the table's metadata file names its current snapshot,
    whose manifest list (Avro) names the manifests, which name the live data files; DuckDB
    reads those. Counts per reason are the topic's."""
    import duckdb  # noqa: PLC0415
    import fastavro  # noqa: PLC0415

    topic = unique("ice-duck")
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    values = event_values(500, seed=31)
    produce(kafka_bootstrap, topic, values)
    codec = Codec()
    on_topic = Counter(codec.decode(value)["reason"] for _, value in values)
    sink = _sink(kafka_bootstrap, topic, tmp_path)
    sink.start()
    _wait_committed(kafka_bootstrap, sink.group, topic, 500)
    assert sink.terminate() == 0

    def avro(path: str) -> list[dict[str, Any]]:
        with Path(path.removeprefix("file://")).open("rb") as stream:
            return [dict(row) for row in fastavro.reader(stream)]  # type: ignore[arg-type]

    location = _table(tmp_path / "warehouse", topic).metadata_location
    metadata = json.loads(Path(location.removeprefix("file://")).read_text())
    (current,) = [
        s for s in metadata["snapshots"] if s["snapshot-id"] == metadata["current-snapshot-id"]
    ]
    files = [
        entry["data_file"]["file_path"].removeprefix("file://")
        for manifest in avro(current["manifest-list"])
        for entry in avro(manifest["manifest_path"])
        if entry["status"] != 2  # 2: deleted
    ]
    counts = duckdb.execute(
        "select reason, count(*) from read_parquet(?) group by reason", [files]
    ).fetchall()

    assert dict(counts) == dict(on_topic)
