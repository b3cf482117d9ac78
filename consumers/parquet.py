"""Batch to Parquet bytes, for the query engines (Athena, Trino, Spark, BigQuery, DuckDB).
Pure: no I/O.

The columns come from the batch's Avro writer schema, field for field: a record becomes a
struct (the involved and related objects, the series, the truncation, the owner), a map a
``map<string, string>`` (labels, annotations), an array a list, an enum a string, a
``timestamp-micros`` a UTC timestamp in microseconds, ``["null", X]`` a nullable X. One file
per batch, one row group, column statistics on, compressed with zstd by default.

The same batch gives the same bytes: Parquet's footer holds no time, and the writer's
version string is the same for one pyarrow, so a rewrite after a crash or a replay lands
byte for byte on what is there.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kafkube.schemas.codec import SchemaVersion

# Parquet's compressions, by the names the configuration takes.
COMPRESSIONS = {"zstd": "zstd", "snappy": "snappy", "gzip": "gzip", "null": "none"}
_PRIMITIVES = {
    "string": pa.string(),
    "long": pa.int64(),
    "int": pa.int32(),
    "boolean": pa.bool_(),
    "double": pa.float64(),
    "float": pa.float32(),
    "bytes": pa.binary(),
}


class _Converter:
    """Avro schema JSON to an Arrow type, named types resolved in the order defined."""

    def __init__(self) -> None:
        self.named: dict[str, pa.DataType] = {}

    def field(self, definition: dict[str, Any], namespace: str) -> pa.Field:
        kind, nullable = self._unwrap(definition["type"])
        return pa.field(definition["name"], self.type(kind, namespace), nullable=nullable)

    @staticmethod
    def _unwrap(kind: Any) -> tuple[Any, bool]:  # noqa: ANN401 - Avro schema JSON
        if isinstance(kind, list):
            branches = [branch for branch in kind if branch != "null"]
            if len(branches) != 1:
                raise ValueError(f"union {kind!r}: only [null, X] has a column type")
            return branches[0], len(branches) != len(kind)
        return kind, False

    def type(self, kind: Any, namespace: str) -> pa.DataType:  # noqa: ANN401, PLR0911 - JSON
        if isinstance(kind, str):
            if kind in _PRIMITIVES:
                return _PRIMITIVES[kind]
            full = kind if "." in kind else f"{namespace}.{kind}"
            return self.named[full]
        if kind.get("logicalType") == "timestamp-micros":
            return pa.timestamp("us", tz="UTC")
        avro_type = kind["type"]
        if avro_type == "record":
            space = kind.get("namespace", namespace)
            full = f"{space}.{kind['name']}"
            struct = pa.struct([self.field(f, space) for f in kind["fields"]])
            self.named[full] = struct
            return struct
        if avro_type == "enum":
            self.named[f"{kind.get('namespace', namespace)}.{kind['name']}"] = pa.string()
            return pa.string()
        if avro_type == "map":
            return pa.map_(pa.string(), self.type(kind["values"], namespace))
        if avro_type == "array":
            return pa.list_(self.type(kind["items"], namespace))
        return self.type(avro_type, namespace)


def arrow_schema(writer: SchemaVersion) -> pa.Schema:
    """The Parquet columns of records written with ``writer``."""
    definition = json.loads(writer.schema_json)
    converter = _Converter()
    namespace = definition.get("namespace", "")
    fields = [converter.field(f, namespace) for f in definition["fields"]]
    return pa.schema(fields, metadata={"avro.schema": writer.schema_json})


# The columns a table's rows keep their place in the topic in (``positions``): a replay
# rewrites a range of offsets by them, and a reader can check each offset is there once.
PARTITION_COLUMN = "_kafka_partition"
OFFSET_COLUMN = "_kafka_offset"


def parquet_file(
    writer: SchemaVersion,
    records: Sequence[dict[str, Any]],
    codec: str,
    positions: tuple[int, Sequence[int]] | None = None,
) -> bytes:
    """One Parquet file of these records, one row group, the same bytes for the same batch;
    with ``positions`` (the partition, each record's offset) two columns more that hold them."""
    table = pa.Table.from_pylist(list(records), schema=arrow_schema(writer))
    if positions is not None:
        partition, offsets = positions
        table = table.append_column(
            pa.field(PARTITION_COLUMN, pa.int32(), nullable=False),
            pa.array([partition] * len(offsets), pa.int32()),
        ).append_column(
            pa.field(OFFSET_COLUMN, pa.int64(), nullable=False), pa.array(offsets, pa.int64())
        )
    out = io.BytesIO()
    pq.write_table(
        table,
        out,
        compression=COMPRESSIONS[codec],
        row_group_size=max(1, len(records)),
        write_statistics=True,
        use_dictionary=True,
    )
    return out.getvalue()


def read_parquet(data: bytes) -> Iterator[dict[str, Any]]:
    """Rows as records again: maps as dicts, timestamps as aware datetimes."""
    table = pq.read_table(io.BytesIO(data))
    yield from table.to_pylist(maps_as_pydicts="strict")
