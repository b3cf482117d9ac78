"""The Iceberg destination driven as the runner drives it, against a real catalog (SQLite) in
a folder: batches of Parquet with each row's partition and offset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kafkube.consumers.formats import FORMATS, Batch
from kafkube.consumers.icebergsink import IcebergDestination
from kafkube.consumers.settings import IcebergSinkConfig
from kafkube.schemas.codec import Codec

TOPIC = "kafkube.events"


def batch(values: list[bytes], partition: int, offsets: list[int]) -> bytes:
    codec = Codec()
    records = [codec.decode(value) for value in values]
    datums = [codec.split(value)[1] for value in values]
    parquet = FORMATS["parquet"]
    batch = Batch(
        "b.parquet", codec.writer, datums, records, parquet.default_codec, (partition, offsets)
    )
    return parquet.write(batch)


def put(
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
        f"{TOPIC}/{partition}-{first}.parquet", batch(values, partition, offsets), metadata
    )


def at_once(work: Callable[..., None], *arguments: tuple[Any, ...]) -> None:
    """``work`` called with each tuple of ``arguments``, each on a thread of its own, all at
    once; the first error any of them raised is raised here."""
    with ThreadPoolExecutor(len(arguments)) as pool:
        for done in [pool.submit(work, *each) for each in arguments]:
            done.result()


def iceberg_destination(warehouse: Path) -> IcebergDestination:
    return IcebergDestination(IcebergSinkConfig(warehouse=str(warehouse), group="g"))


def held_events(destination: IcebergDestination) -> Counter[tuple[str, str]]:
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    rows = table.scan(selected_fields=("uid", "resource_version")).to_arrow().to_pylist()
    return Counter((row["uid"], row["resource_version"]) for row in rows)


def held_positions(
    destination: IcebergDestination, snapshot_id: int | None = None
) -> Counter[tuple[int, int]]:
    table = destination.catalog().load_table(destination.table_name(TOPIC))
    columns = ("_kafka_partition", "_kafka_offset")
    rows = table.scan(selected_fields=columns, snapshot_id=snapshot_id).to_arrow()
    return Counter(zip(*(rows[name].to_pylist() for name in rows.column_names), strict=True))
