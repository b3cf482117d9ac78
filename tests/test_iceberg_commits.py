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


def _batch(values: list[bytes]) -> bytes:
    codec = Codec()
    records = [codec.decode(value) for value in values]
    datums = [codec.split(value)[1] for value in values]
    parquet = FORMATS["parquet"]
    return parquet.write(Batch("b.parquet", codec.writer, datums, records, parquet.default_codec))


def _put(destination: IcebergDestination, partition: int, first: int, values: list[bytes]) -> None:
    metadata = {
        "kafkube-topic": TOPIC,
        "kafkube-partition": str(partition),
        "kafkube-first-offset": str(first),
        "kafkube-last-offset": str(first + len(values) - 1),
    }
    destination.put(f"{TOPIC}/{partition}-{first}.parquet", _batch(values), metadata)


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
