"""The Iceberg destination's commits against a real catalog (SQLite) in a folder: a batch the
table holds is not appended twice, and two writers committing at once both land, each commit
that met the other's counted and tried again."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from kafkube.consumers.formats import FORMATS, Batch
from kafkube.consumers.icebergsink import IcebergDestination, offsets_key
from kafkube.consumers.settings import IcebergSinkConfig
from kafkube.schemas.codec import Codec
from tests.sinking import event_values

TOPIC = "kafkube.events"


def _batch(values: list[bytes], partition: int, offsets: list[int]) -> bytes:
    codec = Codec()
    records = [codec.decode(value) for value in values]
    datums = [codec.split(value)[1] for value in values]
    parquet = FORMATS["parquet"]
    batch = Batch(
        "b.parquet", codec.writer, datums, records, parquet.default_codec, (partition, offsets)
    )
    return parquet.write(batch)


def _put(
    destination: IcebergDestination,
    partition: int,
    first: int,
    values: list[bytes],
    *,
    last: int | None = None,
    offsets: list[int] | None = None,
) -> None:
    """A batch of offsets ``first`` on (or ``offsets``), up to ``last`` (its last record's,
    unless records after it were filtered out)."""
    offsets = offsets if offsets is not None else list(range(first, first + len(values)))
    metadata = {
        "kafkube-topic": TOPIC,
        "kafkube-partition": str(partition),
        "kafkube-first-offset": str(first),
        "kafkube-last-offset": str(offsets[-1] if last is None else last),
    }
    destination.put(
        f"{TOPIC}/{partition}-{first}.parquet", _batch(values, partition, offsets), metadata
    )


def _destination(warehouse: Path) -> IcebergDestination:
    return IcebergDestination(IcebergSinkConfig(warehouse=str(warehouse), group="g"))


def _held(destination: IcebergDestination) -> Counter[tuple[str, str]]:
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    rows = table.scan(selected_fields=("uid", "resource_version")).to_arrow().to_pylist()
    return Counter((row["uid"], row["resource_version"]) for row in rows)


def test_a_batch_the_table_holds_is_not_appended_again(tmp_path: Path) -> None:
    values = [value for _, value in event_values(20, seed=1)]
    destination = _destination(tmp_path)

    _put(destination, 0, 100, values[:10])
    _put(destination, 0, 100, values[:10])  # its commit's answer lost: the runner writes again
    _put(destination, 0, 110, values[10:])

    assert set(_held(destination).values()) == {1}
    assert destination.offsets(TOPIC) == {0: 120}


def test_two_writers_committing_at_once_both_land_each_batch_once(tmp_path: Path) -> None:
    values = [value for _, value in event_values(400, seed=2)]
    first, second = _destination(tmp_path), _destination(tmp_path)
    _put(first, 0, 0, values[:5])  # the table made once, before both race

    def writing(destination: IcebergDestination, partition: int) -> None:
        for n in range(1, 16):  # 15 batches of 5 each, as fast as they commit
            start = partition * 200 + n * 5
            _put(destination, partition, n * 5, values[start : start + 5])

    writers = [
        threading.Thread(target=writing, args=(first, 0)),
        threading.Thread(target=writing, args=(second, 1)),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    held = _held(first)
    assert set(held.values()) == {1}
    assert len(held) == 5 + 2 * 15 * 5
    assert first.conflicts + second.conflicts > 0
    table = first.catalog().load_table(first.table_name(TOPIC))
    assert offsets_key("g", TOPIC) in table.current_snapshot().summary.additional_properties
    assert first.offsets(TOPIC) == {0: 80, 1: 80}


def _positions(
    destination: IcebergDestination, snapshot_id: int | None = None
) -> Counter[tuple[int, int]]:
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    columns = ("_kafka_partition", "_kafka_offset")
    rows = table.scan(selected_fields=columns, snapshot_id=snapshot_id).to_arrow()
    return Counter(zip(*(rows[name].to_pylist() for name in rows.column_names), strict=True))


def test_a_replayed_range_is_rewritten_in_place_each_offset_once_at_every_commit(
    tmp_path: Path,
) -> None:
    values = [value for _, value in event_values(40, seed=3)]
    destination = _destination(tmp_path)
    for first in (0, 10, 20, 30):
        _put(destination, 0, first, values[first : first + 10])
    _put(destination, 1, 0, values[:5])

    before = destination.rewind(TOPIC, {0: 15})

    assert before is not None
    assert before.offsets == {0: 40, 1: 5}
    assert destination.offsets(TOPIC) == {0: 15, 1: 5}
    assert set(_positions(destination).values()) == {1}  # the rewind changed no row
    assert len(_positions(destination)) == 45
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    before_rewrite = table.current_snapshot().snapshot_id
    for first in (15, 25, 35):  # the sink reads the range again, cut where it likes
        _put(destination, 0, first, values[first : first + 10][: 40 - first])
        held = _positions(destination)
        assert set(held.values()) == {1}, f"after the batch from {first}: {held.most_common(3)}"
        assert len(held) == 45, f"after the batch from {first}"
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    log = [entry.snapshot_id for entry in table.metadata.snapshot_log]
    for snapshot_id in log[log.index(before_rewrite) :]:  # any a time-travelling reader sees
        assert sorted(_positions(destination, snapshot_id).values()) == [1] * 45, snapshot_id
    said = table.current_snapshot().summary.additional_properties
    assert "kafkube.rewrite.g." + TOPIC not in said  # the rewrite is done
    assert destination.offsets(TOPIC) == {0: 40, 1: 5}
    _put(destination, 0, 40, values[:3])  # then the sink appends as before
    assert len(_positions(destination)) == 48


def test_a_rewrite_takes_out_the_rows_the_filter_now_leaves_out(tmp_path: Path) -> None:
    values = [value for _, value in event_values(10, seed=4)]
    destination = _destination(tmp_path)
    _put(destination, 0, 0, values)

    destination.rewind(TOPIC, {0: 0})
    _put(destination, 0, 0, values[:4], offsets=[0, 2, 4, 6], last=9)  # 1, 3, 5, 7-9 filtered

    assert sorted(_positions(destination)) == [(0, 0), (0, 2), (0, 4), (0, 6)]
    assert destination.offsets(TOPIC) == {0: 10}


def test_a_rewind_of_no_table_changes_nothing(tmp_path: Path) -> None:
    assert _destination(tmp_path).rewind(TOPIC, {0: 0}) is None
