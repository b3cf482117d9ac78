"""The Parquet format: columns from the Avro schema, the same bytes for the same batch, and the
records read back as they went in (no service)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kafkube.consumers.formats import FORMATS, Batch
from kafkube.consumers.parquet import arrow_schema
from kafkube.schemas.codec import Codec, latest_version, released_versions
from tests.sinking import event_values


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
