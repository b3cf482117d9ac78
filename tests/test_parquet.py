"""The Parquet format: columns from the Avro schema, the same bytes for the same batch, the
records read back as they went in, and the same file from the datums alone (the compiled
builders) as from the records (no service)."""

from __future__ import annotations

import io
import random
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kafkube.consumers.formats import FORMATS, Batch
from kafkube.consumers.parquet import COMPRESSIONS, arrow_schema, columns_built, parquet_file
from kafkube.schemas.codec import (
    HEADER_SIZE,
    Codec,
    SchemaVersion,
    latest_version,
    parse_schema,
    released_versions,
)
from tests.sinking import edge_case_records, event_values


def _batch(
    count: int, codec: str = "zstd", name: str = "t/x.parquet"
) -> tuple[Batch, list[dict[str, Any]]]:
    codec_ = Codec()
    values = [value for _key, value in event_values(count, seed=5)]
    records = [codec_.decode(value) for value in values]
    return Batch(name, latest_version(), values, records, codec), records


def test_the_columns_follow_the_avro_schema() -> None:
    schema = arrow_schema(latest_version())

    assert schema.field("uid").type == pa.string()
    assert not schema.field("uid").nullable
    assert schema.field("observed_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("labels").type == pa.map_(pa.string(), pa.string())
    assert schema.field("labels").nullable
    assert pa.types.is_struct(schema.field("regarding").type)
    assert schema.field("regarding").type == schema.field("related").type  # one named type
    assert schema.field("count").type == pa.int32()  # Avro int
    assert schema.field("watch_type").type == pa.string()  # the enum, as its symbol
    assert schema.field("regarding_owner").type == pa.struct(
        [
            pa.field("kind", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
        ]
    )
    for version in released_versions().values():  # every version has its columns
        assert arrow_schema(version).names[0] == "cluster"


def test_a_batch_is_written_the_same_bytes_twice_and_reads_back_as_it_went_in() -> None:
    parquet = FORMATS["parquet"]
    batch, records = _batch(300)

    first, second = parquet.write(batch), parquet.write(batch)
    read = list(parquet.read(first))

    assert first == second
    assert read == records
    metadata = pq.ParquetFile(io.BytesIO(first)).metadata
    assert metadata.num_row_groups == 1
    assert metadata.row_group(0).column(0).statistics.has_min_max
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_each_compression_is_its_own_and_zstd_is_the_default() -> None:
    parquet = FORMATS["parquet"]

    assert parquet.default_codec == "zstd"
    for codec, expected in (("snappy", "SNAPPY"), ("gzip", "GZIP"), ("null", "UNCOMPRESSED")):
        batch, _ = _batch(20, codec)
        column = pq.ParquetFile(io.BytesIO(parquet.write(batch))).metadata.row_group(0).column(0)
        assert column.compression == expected


# --- the columns built from the datums (the compiled builders) ---------------------------------


def _from_both(
    writer: SchemaVersion, datums: list[bytes], codec: str, positions: Any = None
) -> tuple[bytes, bytes]:
    """The file from the records the Python reader builds, and from the datums alone."""
    read = writer.reader(None)
    assert read is not None
    records = [read(datum, 0) for datum in datums]
    return (
        parquet_file(writer, records, codec, positions),
        parquet_file(writer, [], codec, positions, datums=[memoryview(d) for d in datums]),
    )


def test_the_columns_built_from_the_datums_are_the_records_bytes() -> None:
    """Recorded-like events and every edge of the schema, in batches of 1 to 700, each
    compression, with the table's offset columns and without."""
    assert columns_built()
    codec = Codec()
    values = [value for _key, value in event_values(1500, seed=41)]
    values += [codec.encode(r) for r in edge_case_records(codec.decode(values[0]))]
    datums = [value[HEADER_SIZE:] for value in values]
    rng, at, batches = random.Random(42), 0, 0
    while at < len(datums):
        size = rng.choice([1, 2, 50, 700])
        batch, at = datums[at : at + size], at + size
        output = rng.choice(list(COMPRESSIONS))
        positions = (7, list(range(at, at + len(batch)))) if rng.random() < 0.5 else None
        from_records, from_datums = _from_both(latest_version(), batch, output, positions)
        assert from_records == from_datums
        batches += 1
    assert batches > 8


# Every Avro type a Parquet column has, nullable and not (a field's), nested in structs, lists
# and maps.
EVERY_COLUMN = {
    "type": "record",
    "name": "All",
    "namespace": "t",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": ["null", "long"]},
        {"name": "f", "type": "float"},
        {"name": "d", "type": ["null", "double"]},
        {"name": "s", "type": "string"},
        {"name": "raw", "type": ["null", "bytes"]},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B_", "C"]}},
        {"name": "again", "type": ["null", "E"]},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "list", "type": {"type": "array", "items": "string"}},
        {"name": "map", "type": ["null", {"type": "map", "values": "long"}]},
        {
            "name": "inner",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Inner",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "flags", "type": {"type": "array", "items": "boolean"}},
                        {"name": "deep", "type": ["null", {"type": "map", "values": "E"}]},
                    ],
                },
            ],
        },
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
    ],
}


def _every_column(rng: random.Random) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.3 else value

    def text() -> str:
        return "".join(rng.choice("aé€😀 z") for _ in range(rng.randrange(0, 20)))

    def inner() -> dict[str, Any]:
        return {
            "name": text(),
            "flags": [rng.random() < 0.5 for _ in range(rng.randrange(0, 9))],
            "deep": maybe({text(): rng.choice(["A", "B_", "C"]) for _ in range(rng.randrange(3))}),
        }

    return {
        "b": rng.random() < 0.5,
        "i": rng.randrange(-(2**31), 2**31),
        "l": maybe(rng.randrange(-(2**63), 2**63)),
        "f": rng.random(),
        "d": maybe(rng.random() * 1e300),
        "s": text(),
        "raw": maybe(rng.randbytes(rng.randrange(0, 30))),
        "e": rng.choice(["A", "B_", "C"]),
        "again": maybe(rng.choice(["A", "B_", "C"])),
        "t": rng.randrange(-(2**52), 2**52),
        "list": [text() for _ in range(rng.randrange(0, 6))],
        "map": maybe({f"k{i}": rng.randrange(-(2**63), 2**63) for i in range(rng.randrange(4))}),
        "inner": maybe(inner()),
        "inners": [inner() for _ in range(rng.randrange(0, 3))],
    }


def _datum(parsed: Any, record: dict[str, Any]) -> bytes:
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, parsed, record)
    return stream.getvalue()


def test_the_columns_built_from_the_datums_agree_on_every_type_a_column_has() -> None:
    writer = parse_schema(EVERY_COLUMN, 1)
    parsed, rng = fastavro.parse_schema(EVERY_COLUMN), random.Random(43)
    datums = [_datum(parsed, _every_column(rng)) for _ in range(1200)]
    for start in range(0, len(datums), 300):
        from_records, from_datums = _from_both(writer, datums[start : start + 300], "zstd")
        assert from_records == from_datums
    empty = parquet_file(writer, [], "zstd", datums=[])
    assert pq.read_table(io.BytesIO(empty)).num_rows == 0


def test_a_datum_the_builders_cannot_fill_is_refused_not_written() -> None:
    """Bytes that are not one whole datum, and an int past 32 bits (which Arrow refuses from
    a record too): an error, no file of other rows."""
    writer = parse_schema(EVERY_COLUMN, 1)
    parsed = fastavro.parse_schema(EVERY_COLUMN)
    good = _datum(parsed, _every_column(random.Random(44)))
    for broken in (good[:-1], good + b"\x00", b""):
        with pytest.raises(Exception, match="not one whole value"):
            parquet_file(writer, [], "zstd", datums=[good, broken])
    wide = {**_every_column(random.Random(45)), "i": 0}
    datum = _datum(parsed, wide)
    assert datum[1] == 0  # "i" follows the one-byte boolean: widen it past 32 bits
    too_wide = datum[:1] + b"\x80\x80\x80\x80\x20" + datum[2:]
    with pytest.raises(OverflowError):
        parquet_file(writer, [], "zstd", datums=[too_wide])
