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

Where the sinks' compiled scan is built (``kafkube.consumers.fastpath``), a batch of the
reader's own schema comes with its datums alone: the compiled builders fill Arrow's buffers
straight from them (a fifth of the time of building each record and converting those), and
the file is the same bytes as from the records (a test holds the two paths to that).
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kafkube.consumers import fastpath
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
    return _arrow_schema(writer.schema_json)


@functools.lru_cache(maxsize=32)  # a batch's writer is the last one's, mostly
def _arrow_schema(schema_json: str) -> pa.Schema:
    definition = json.loads(schema_json)
    converter = _Converter()
    namespace = definition.get("namespace", "")
    fields = [converter.field(f, namespace) for f in definition["fields"]]
    return pa.schema(fields, metadata={"avro.schema": schema_json})


# The columns a table's rows keep their place in the topic in (``positions``): a replay
# rewrites a range of offsets by them, and a reader can check each offset is there once.
PARTITION_COLUMN = "_kafka_partition"
OFFSET_COLUMN = "_kafka_offset"


# The builders of the other columns, by their Arrow type.
_FIXED = {
    pa.null(): "null",
    pa.bool_(): "bool",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.float32(): "float32",
    pa.float64(): "float64",
}


def columns_built() -> bool:
    """Whether batches may come as their datums alone: the compiled builders run here."""
    return fastpath.wanted()


def _builder(kind: pa.DataType) -> Any:  # noqa: ANN401 - the extension's Column
    """The compiled builder of a column of this Arrow type."""
    scan = fastpath.compiled()
    kinds = scan.COLUMN_KINDS
    if pa.types.is_struct(kind):
        children = [_builder(kind.field(i).type) for i in range(kind.num_fields)]
        return scan.Column(kinds["struct"], children)
    if pa.types.is_map(kind):
        return scan.Column(kinds["map"], [_builder(kind.key_type), _builder(kind.item_type)])
    if pa.types.is_list(kind):
        return scan.Column(kinds["list"], [_builder(kind.value_type)])
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        return scan.Column(kinds["text"], [])
    if pa.types.is_timestamp(kind):
        return scan.Column(kinds["int64"], [])
    return scan.Column(kinds[_FIXED[kind]], [])


def _array(kind: pa.DataType, built: tuple[Any, ...]) -> pa.Array:
    """The Arrow array of a builder's buffers (``Column.finished``)."""
    length, nulls, validity, buffers, children = built
    own = [None if validity is None else pa.py_buffer(validity)]
    own += [pa.py_buffer(buffer) for buffer in buffers]
    if pa.types.is_struct(kind):
        inner = [_array(kind.field(i).type, child) for i, child in enumerate(children)]
    elif pa.types.is_map(kind):  # a list of (key, value) structs
        keys, items = _array(kind.key_type, children[0]), _array(kind.item_type, children[1])
        entries = pa.struct([kind.key_field, kind.item_field])
        inner = [pa.Array.from_buffers(entries, len(keys), [None], 0, children=[keys, items])]
    elif pa.types.is_list(kind):
        inner = [_array(kind.value_type, children[0])]
    else:
        inner = None
    return pa.Array.from_buffers(kind, length, own, nulls, children=inner)


def _from_datums(writer: SchemaVersion, schema: pa.Schema, datums: Sequence[Any]) -> pa.Table:
    """The columns filled straight from the datums by the compiled builders."""
    program = writer.program
    if program is None:
        raise ValueError(f"schema v{writer.version} has no program: its records are needed")
    row = _builder(pa.struct(list(schema)))
    fastpath.compiled().fill(program.code, program.constants, row, list(datums))
    children = row.finished()[4]
    arrays = [_array(schema.field(i).type, child) for i, child in enumerate(children)]
    return pa.Table.from_arrays(arrays, schema=schema)


def parquet_file(
    writer: SchemaVersion,
    records: Sequence[dict[str, Any]],
    codec: str,
    positions: tuple[int, Sequence[int]] | None = None,
    datums: Sequence[bytes | memoryview] = (),
) -> bytes:
    """One Parquet file of these records, one row group, the same bytes for the same batch;
    with ``positions`` (the partition, each record's offset) two columns more that hold them.
    With no records but ``datums`` (where ``columns_built``), the columns come from those."""
    schema = arrow_schema(writer)
    if not records and datums:
        table = _from_datums(writer, schema, datums)
    else:
        table = pa.Table.from_pylist(list(records), schema=schema)
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
        row_group_size=max(1, table.num_rows),
        write_statistics=True,
        use_dictionary=True,
    )
    return out.getvalue()


def read_parquet(data: bytes) -> Iterator[dict[str, Any]]:
    """Rows as records again: maps as dicts, timestamps as aware datetimes."""
    table = pq.read_table(io.BytesIO(data))
    yield from table.to_pylist(maps_as_pydicts="strict")
