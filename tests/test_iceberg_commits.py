"""The Iceberg destination's commits against a real catalog (SQLite) in a folder: a batch the
table holds is not appended twice, and two writers committing at once both land, each commit
that met the other's counted and tried again (its rows' files written once)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kafkube.cli.commands import cli
from kafkube.consumers.icebergsink import (
    IcebergDestination,
    data_files,
    offsets_key,
    transaction,
)
from kafkube.consumers.settings import IcebergSinkConfig
from kafkube.core.errors import ConfigError, SinkError
from tests.icebergs import TOPIC, at_once, held_events, held_positions, iceberg_destination, put
from tests.sinking import event_values


def test_a_batch_the_table_holds_is_not_appended_again(tmp_path: Path) -> None:
    values = [value for _, value in event_values(20, seed=1)]
    destination = iceberg_destination(tmp_path)

    put(destination, 0, 100, values[:10])
    put(destination, 0, 100, values[:10])  # its commit's answer lost: the runner writes again
    put(destination, 0, 110, values[10:])

    assert set(held_events(destination).values()) == {1}
    assert destination.offsets(TOPIC) == {0: 120}


def test_a_transaction_reads_what_it_staged_and_what_the_table_became(tmp_path: Path) -> None:
    """The destination's transactions work their metadata out once a state (pyiceberg's deep
    copy at every read made commits grow slow with the table's history): a read still sees
    each change staged, and the table's as it moves."""
    values = [value for _, value in event_values(10, seed=3)]
    destination = iceberg_destination(tmp_path)
    put(destination, 0, 0, values[:5])
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    change = transaction(table)

    assert change.table_metadata is table.metadata  # nothing staged: the table's own
    change.set_properties({"kafkube.probe": "1"})
    staged = change.table_metadata
    assert staged.properties["kafkube.probe"] == "1"
    assert "kafkube.probe" not in table.metadata.properties
    assert change.table_metadata is staged  # read again: not worked out anew
    change.set_properties({"kafkube.probe": "2"})
    assert change.table_metadata.properties["kafkube.probe"] == "2"
    put(destination, 0, 5, values[5:])  # another commit, then the table read again
    table.refresh()
    assert change.table_metadata.current_snapshot_id == table.metadata.current_snapshot_id
    assert change.table_metadata.properties["kafkube.probe"] == "2"


def test_two_writers_committing_at_once_both_land_each_batch_once(tmp_path: Path) -> None:
    values = [value for _, value in event_values(400, seed=2)]
    first, second = iceberg_destination(tmp_path), iceberg_destination(tmp_path)
    put(first, 0, 0, values[:5])  # the table made once, before both race

    def writing(destination: IcebergDestination, partition: int) -> None:
        for n in range(1, 16):  # 15 batches of 5 each, as fast as they commit
            start = partition * 200 + n * 5
            while True:  # as the runner does: a batch the other's commits kept out, again
                try:
                    put(destination, partition, n * 5, values[start : start + 5])
                except SinkError:
                    continue
                break

    at_once(writing, (first, 0), (second, 1))

    held = held_events(first)
    assert set(held.values()) == {1}
    assert len(held) == 5 + 2 * 15 * 5
    assert first.conflicts + second.conflicts > 0
    table = first.catalog().load_table(first.table_name(TOPIC))
    assert offsets_key("g", TOPIC) in table.current_snapshot().summary.additional_properties
    assert first.offsets(TOPIC) == {0: 80, 1: 80}
    # A commit tried again adds the files its first try wrote: none is written twice.
    held_files = {f.file_path.removeprefix("file://") for f in data_files(table)}
    location = table.location().removeprefix("file://")
    assert {str(f) for f in Path(location).rglob("*.parquet")} == held_files


def test_batches_put_at_once_by_one_sink_share_commits_each_landing_once(tmp_path: Path) -> None:
    """Six partitions' writers (as the runner's threads put them, each partition's batches
    one at a time) into one destination: every batch once, the offsets of each, and fewer
    snapshots than batches (one commit took those waiting)."""
    values = [value for _, value in event_values(6 * 40 + 1, seed=3)]
    destination = iceberg_destination(tmp_path)
    put(destination, 0, 0, values[-1:])  # the table made first

    def writing(partition: int) -> None:
        for n in range(8):  # 8 batches of 5
            start = partition * 40 + n * 5
            put(destination, partition, 1000 + n * 5, values[start : start + 5])

    at_once(writing, *[(p,) for p in range(6)])

    held = held_events(destination)
    assert set(held.values()) == {1}
    assert len(held) == 6 * 40 + 1
    assert destination.offsets(TOPIC) == dict.fromkeys(range(6), 1040)
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    assert len(table.snapshots()) < 1 + 6 * 8


def test_a_ticks_batches_made_at_different_speeds_land_in_one_commit(tmp_path: Path) -> None:
    """The runner's writer threads make a tick's batches at once (``coming``), each done a
    little after the other: the first to reach the table waits for the rest, one snapshot."""
    values = [value for _, value in event_values(6 * 5 + 1, seed=4)]
    destination = iceberg_destination(tmp_path)
    put(destination, 0, 0, values[-1:])  # the table made first
    all_on_their_way = threading.Barrier(6)

    def writing(partition: int) -> None:
        with destination.coming(TOPIC):
            all_on_their_way.wait()
            time.sleep(0.04 * partition)  # its batch being made: some take longer
            put(destination, partition, 1000, values[partition * 5 : partition * 5 + 5])

    at_once(writing, *[(p,) for p in range(6)])

    assert len(held_events(destination)) == 6 * 5 + 1
    assert destination.offsets(TOPIC) == dict.fromkeys(range(6), 1005)
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    assert len(table.snapshots()) == 2


def test_a_replayed_range_is_rewritten_in_place_each_offset_once_at_every_commit(
    tmp_path: Path,
) -> None:
    values = [value for _, value in event_values(40, seed=3)]
    destination = iceberg_destination(tmp_path)
    for first in (0, 10, 20, 30):
        put(destination, 0, first, values[first : first + 10])
    put(destination, 1, 0, values[:5])

    before = destination.rewind(TOPIC, {0: 15})

    assert before is not None
    assert before.offsets == {0: 40, 1: 5}
    assert destination.offsets(TOPIC) == {0: 15, 1: 5}
    assert set(held_positions(destination).values()) == {1}  # the rewind changed no row
    assert len(held_positions(destination)) == 45
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    before_rewrite = table.current_snapshot().snapshot_id
    for first in (15, 25, 35):  # the sink reads the range again, cut where it likes
        put(destination, 0, first, values[first : first + 10][: 40 - first])
        held = held_positions(destination)
        assert set(held.values()) == {1}, f"after the batch from {first}: {held.most_common(3)}"
        assert len(held) == 45, f"after the batch from {first}"
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    log = [entry.snapshot_id for entry in table.metadata.snapshot_log]
    for snapshot_id in log[log.index(before_rewrite) :]:  # any a time-travelling reader sees
        assert sorted(held_positions(destination, snapshot_id).values()) == [1] * 45, snapshot_id
    said = table.current_snapshot().summary.additional_properties
    assert "kafkube.rewrite.g." + TOPIC not in said  # the rewrite is done
    assert destination.offsets(TOPIC) == {0: 40, 1: 5}
    put(destination, 0, 40, values[:3])  # then the sink appends as before
    assert len(held_positions(destination)) == 48


def test_a_rewrite_takes_out_the_rows_the_filter_now_leaves_out(tmp_path: Path) -> None:
    values = [value for _, value in event_values(10, seed=4)]
    destination = iceberg_destination(tmp_path)
    put(destination, 0, 0, values)

    destination.rewind(TOPIC, {0: 0})
    put(destination, 0, 0, values[:4], offsets=[0, 2, 4, 6], last=9)  # 1, 3, 5, 7-9 filtered

    assert sorted(held_positions(destination)) == [(0, 0), (0, 2), (0, 4), (0, 6)]
    assert destination.offsets(TOPIC) == {0: 10}


def test_each_data_file_is_as_old_as_the_commit_that_added_it(tmp_path: Path) -> None:
    """What ``stored`` says of a data file (the bench's durable time, a listing's age) is
    the time of its own snapshot, not the table's newest."""
    values = [value for _, value in event_values(10, seed=5)]
    destination = iceberg_destination(tmp_path)
    put(destination, 0, 0, values[:5])
    put(destination, 0, 5, values[5:])
    table = destination.catalog().load_table(destination.table_name(TOPIC))

    stored = sorted(when for _, when in destination.stored(TOPIC))

    assert stored == sorted(s.timestamp_ms / 1000 for s in table.snapshots())
    assert len(set(stored)) == 2


def test_a_rewind_of_no_table_changes_nothing(tmp_path: Path) -> None:
    assert iceberg_destination(tmp_path).rewind(TOPIC, {0: 0}) is None


def test_inspect_of_a_warehouse_reads_its_tables_as_they_are_now(tmp_path: Path) -> None:
    """Not the folder's files: a data file a rewrite took out is still there, in no snapshot."""
    values = [value for _, value in event_values(30, seed=8)]
    destination = iceberg_destination(tmp_path)
    put(destination, 0, 0, values[:20])
    destination.rewind(TOPIC, {0: 10})
    put(destination, 0, 10, values[10:30])
    parquet_files = list(tmp_path.rglob("*.parquet"))

    counted = CliRunner().invoke(cli, ["inspect", str(tmp_path), "--count"])
    shown = CliRunner().invoke(cli, ["inspect", str(tmp_path), "--limit", "1"])

    assert counted.exit_code == 0, counted.output
    assert len(parquet_files) > len(counted.output.splitlines()) - 1  # taken-out files stay
    assert counted.output.splitlines()[-1].split()[0] == "30"
    assert '"_kafka_offset":0}' in shown.output


def test_a_catalog_set_up_wrong_is_refused_at_start_naming_the_setting(tmp_path: Path) -> None:
    config = IcebergSinkConfig(warehouse=str(tmp_path), catalog_uri="nosuchdb://catalog")

    with pytest.raises(ConfigError) as refused:
        IcebergDestination(config).check()

    assert refused.value.field == "sinks.iceberg.catalog_uri"
    assert not refused.value.retriable


def test_a_catalog_database_away_is_waited_out_not_refused(tmp_path: Path) -> None:
    config = IcebergSinkConfig(
        warehouse="s3://bucket/lake", catalog_uri="postgresql+psycopg2://kafkube@127.0.0.1:1/db"
    )

    with pytest.raises(SinkError) as away:
        IcebergDestination(config).check()

    assert away.value.retriable
    assert not isinstance(away.value, ConfigError)


def test_inspect_of_iceberg_topic_reads_the_table_through_the_configured_catalog(
    tmp_path: Path,
) -> None:
    values = [value for _, value in event_values(12, seed=9)]
    destination = iceberg_destination(tmp_path / "lake")
    put(destination, 0, 0, values)
    environment = {"KAFKUBE_SINKS__ICEBERG__WAREHOUSE": str(tmp_path / "lake")}

    one = CliRunner().invoke(cli, ["inspect", f"iceberg://{TOPIC}", "--count"], env=environment)
    every = CliRunner().invoke(cli, ["inspect", "iceberg://", "--count"], env=environment)

    assert one.exit_code == 0, one.output
    assert one.output.splitlines()[-1].split()[0] == "12"
    assert every.output.splitlines()[-1].split()[0] == "12"
