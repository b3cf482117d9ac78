"""The producer's own Avro writer writes exactly the bytes fastavro writes, for every shape of
event, and a schema it cannot compile is written by fastavro instead."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest

from kafkube.schemas.codec import Codec, EncodeError, parse_schema
from kafkube.schemas.writing import UnsupportedSchema, compile_writer
from tests.sinking import event_values


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


def _edge_cases(base: dict[str, Any]) -> list[dict[str, Any]]:
    optional = [k for k, v in base.items() if k not in {"cluster", "watch_type", "observed_at",
                "producer_id", "api_version", "uid", "resource_version", "name"}]  # fmt: skip
    reference = {"kind": "Pod", "api_version": "v1", "namespace": "ns", "name": "n", "uid": "u",
                 "resource_version": "1", "field_path": "spec.containers{x}"}  # fmt: skip
    return [
        {**base, **dict.fromkeys(optional)},  # every optional field null
        {**base, "labels": {}, "annotations": {"ä/ß": "日本語 ✓", "": ""}},
        {**base, "note": "x" * 70_000, "name": "", "watch_type": "DELETED"},  # long varints
        {**base, "count": 2**31 - 1, "series": {"count": -(2**31), "last_observed_time": None}},
        {
            **base,
            "observed_at": datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            "event_time": datetime(9999, 12, 31, tzinfo=UTC),
            "first_timestamp": datetime(2026, 1, 1, tzinfo=UTC) - timedelta(microseconds=1),
            "creation_timestamp": datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=5.5))),
        },
        {**base, "regarding": reference, "related": {**reference, "uid": None}},
        {**base, "count": 0, "series": {"count": 63, "last_observed_time": base["observed_at"]}},
        {**base, "count": 64},
    ]


def test_every_edge_of_the_schema_encodes_to_fastavros_bytes() -> None:
    codec = Codec()
    base = codec.decode(event_values(1, seed=3)[0][1])
    for record in _edge_cases(base):
        assert codec.encode(record) == _fastavro(codec, record), record
        assert codec.decode(codec.encode(record)) == codec.decode(_fastavro(codec, record))


def test_a_value_the_schema_does_not_allow_is_refused() -> None:
    codec = Codec()
    base = codec.decode(event_values(1, seed=3)[0][1])
    with pytest.raises(EncodeError, match="not a symbol"):
        codec.encode({**base, "watch_type": "BOOKMARK"})
    with pytest.raises(EncodeError, match="time zone"):
        codec.encode({**base, "observed_at": datetime(2026, 1, 1)})  # noqa: DTZ001 - naive on purpose


def test_a_schema_the_writer_cannot_compile_is_written_by_fastavro() -> None:
    definition = {
        "type": "record",
        "name": "Wide",
        "fields": [{"name": "either", "type": ["null", "string", "long"]}],
    }
    with pytest.raises(UnsupportedSchema):
        compile_writer(definition)
    version = parse_schema(definition, 99)
    codec = Codec(writer=version, known={99: version})

    assert version.write is None
    assert codec.decode(codec.encode({"either": 5})) == {"either": 5}
    assert json.loads(version.schema_json) == definition
