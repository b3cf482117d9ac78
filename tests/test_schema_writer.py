"""The producer's own Avro writer writes exactly the bytes fastavro writes, for every shape of
event, and a schema it cannot compile is written by fastavro instead."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import fastavro
import pytest

from kafkube.schemas.codec import Codec, EncodeError, parse_schema
from kafkube.schemas.reading import compile_reader
from kafkube.schemas.writing import UnsupportedSchema, compile_writer
from tests.sinking import edge_case_records, event_values


def _fastavro(codec: Codec, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(codec.writer.header)
    fastavro.schemaless_writer(out, codec.writer.schema, record)
    return out.getvalue()


def test_thousands_of_realistic_events_encode_to_fastavros_bytes() -> None:
    codec = Codec()
    assert codec.writer.write is not None  # the released schema compiles
    records = [codec.decode(value) for _, value in event_values(3000, seed=11)]

    assert [codec.encode(r) for r in records] == [_fastavro(codec, r) for r in records]


def test_every_edge_of_the_schema_encodes_to_fastavros_bytes() -> None:
    codec = Codec()
    base = codec.decode(event_values(1, seed=3)[0][1])
    for record in edge_case_records(base):
        assert codec.encode(record) == _fastavro(codec, record), record
        assert codec.decode(codec.encode(record)) == codec.decode(_fastavro(codec, record))


def test_a_value_the_schema_does_not_allow_is_refused() -> None:
    codec = Codec()
    base = codec.decode(event_values(1, seed=3)[0][1])
    with pytest.raises(EncodeError, match="not a symbol"):
        codec.encode({**base, "watch_type": "BOOKMARK"})
    with pytest.raises(EncodeError, match="time zone"):
        codec.encode({**base, "observed_at": datetime(2026, 1, 1)})  # noqa: DTZ001 - naive on purpose


def test_a_schema_that_does_not_compile_is_written_and_read_by_fastavro() -> None:
    definition = {
        "type": "record",
        "name": "Wide",
        "fields": [{"name": "either", "type": ["null", "string", "long"]}],
    }
    with pytest.raises(UnsupportedSchema):
        compile_writer(definition)
    with pytest.raises(UnsupportedSchema):
        compile_reader(definition)
    version = parse_schema(definition, 99)
    codec = Codec(writer=version, known={99: version})

    assert version.write is None
    assert version.reader(frozenset()) is None
    assert codec.decode(codec.encode({"either": 5})) == {"either": 5}
    assert codec.scan(codec.encode({"either": 5}), frozenset())[2] == {"either": 5}
    assert json.loads(version.schema_json) == definition
