"""The sinks' compiled Avro reader reads what fastavro reads, builds only the fields asked
for, and refuses every datum fastavro refuses: a sink that checks a datum with it writes no
corrupt datum into a file."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import fastavro
import pytest

from kafkube.schemas.codec import (
    HEADER_SIZE,
    Codec,
    DecodeError,
    SchemaVersion,
    released_versions,
)
from kafkube.schemas.reading import CorruptDatum, compile_reader
from kafkube.schemas.writing import UnsupportedSchema
from tests.sinking import edge_case_records, event_values


def _fastavro(version: SchemaVersion, datum: bytes) -> dict[str, Any]:
    stream = io.BytesIO(datum)
    record = fastavro.schemaless_reader(stream, version.schema, version.schema)
    if stream.tell() != len(datum):
        raise ValueError("bytes left over")
    assert isinstance(record, dict)
    return record


def test_thousands_of_realistic_events_read_as_fastavro_reads_them() -> None:
    codec = Codec()
    read = compile_reader(json.loads(codec.writer.schema_json))
    values = [value for _, value in event_values(3000, seed=12)]

    assert [read(v, HEADER_SIZE) for v in values] == [
        _fastavro(codec.writer, v[HEADER_SIZE:]) for v in values
    ]


def test_every_edge_of_the_schema_reads_as_fastavro_reads_it() -> None:
    codec = Codec()
    read = compile_reader(json.loads(codec.writer.schema_json))
    base = codec.decode(event_values(1, seed=3)[0][1])
    for record in edge_case_records(base):
        value = codec.encode(record)
        assert read(value, HEADER_SIZE) == _fastavro(codec.writer, value[HEADER_SIZE:]), record


def test_a_reader_builds_only_the_fields_it_keeps() -> None:
    codec = Codec()
    definition = json.loads(codec.writer.schema_json)
    full = compile_reader(definition)
    keep = frozenset({"cluster", "namespace", "regarding", "last_timestamp", "series"})
    some, none = compile_reader(definition, keep), compile_reader(definition, frozenset())
    for _, value in event_values(500, seed=13):
        whole = full(value, HEADER_SIZE)
        assert some(value, HEADER_SIZE) == {name: whole[name] for name in keep}
        assert none(value, HEADER_SIZE) == {}
    with pytest.raises(UnsupportedSchema, match="no field"):
        compile_reader(definition, frozenset({"nonsense"}))


def _mutations(value: bytes, rng: random.Random) -> list[bytes]:
    """A value cut short, grown, and with a byte changed, a byte dropped and a byte added."""
    at = rng.randrange(HEADER_SIZE, len(value))
    flipped = bytearray(value)
    flipped[at] = rng.randrange(256)
    return [
        value[: rng.randrange(HEADER_SIZE, len(value))],
        value + bytes([rng.randrange(256)]),
        bytes(flipped),
        value[:at] + value[at + 1 :],
        value[:at] + bytes([rng.randrange(256)]) + value[at:],
    ]


def test_a_corrupted_datum_is_refused_whenever_fastavro_refuses_it() -> None:
    """Whatever the compiled reader takes, fastavro takes too, as the same record; and the
    validating reader (which builds nothing) takes exactly what the full reader takes."""
    codec, rng = Codec(), random.Random(14)
    definition = json.loads(codec.writer.schema_json)
    full, check = compile_reader(definition), compile_reader(definition, frozenset())
    refused = 0
    for _, value in event_values(600, seed=15):
        for corrupted in _mutations(value, rng):
            try:
                ours = full(corrupted, HEADER_SIZE)
            except CorruptDatum:
                refused += 1
                with pytest.raises(CorruptDatum):
                    check(corrupted, HEADER_SIZE)
                continue
            check(corrupted, HEADER_SIZE)
            assert ours == _fastavro(codec.writer, corrupted[HEADER_SIZE:])
    assert refused > 1000  # most of 3,000 corruptions are refused; those taken read alike


@pytest.mark.parametrize(
    ("datum", "why"),
    [
        (b"", "ends inside"),
        (b"\x81", "ends inside"),  # a varint's continuation, then nothing
        (b"\x01", "negative length"),
        (b"\xff" * 11, "does not end"),
        (b"\x02\xff", "not UTF-8"),
        (b"\x00\x00", "left over"),
    ],
)
def test_a_broken_datum_is_refused_saying_why(datum: bytes, why: str) -> None:
    read = compile_reader(
        {"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]}
    )
    with pytest.raises(CorruptDatum, match=why):
        read(b"\x00" + datum, 1)


def test_a_union_branch_or_enum_symbol_that_does_not_exist_is_refused() -> None:
    definition = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            {"name": "o", "type": ["null", "long"]},
        ],
    }
    read = compile_reader(definition)
    assert read(b"\x02\x02\x03", 0) == {"e": "B", "o": -2}
    with pytest.raises(CorruptDatum, match="no symbol"):
        read(b"\x04\x00", 0)
    with pytest.raises(CorruptDatum, match="no branch"):
        read(b"\x00\x04\x00", 0)


def test_the_codec_scans_older_versions_through_fastavro_as_the_reader_schema() -> None:
    """A datum of an older version is resolved to the reader's schema (new fields at their
    defaults); the scan keeps what was asked for, and more."""
    versions = released_versions()
    oldest, codec = versions[min(versions)], Codec()
    old = Codec(writer=oldest)
    record = codec.decode(event_values(1, seed=3)[0][1])
    fields = {field["name"] for field in oldest.schema["fields"]}
    value = old.encode({k: v for k, v in record.items() if k in fields})
    writer, datum, scanned = codec.scan(value, frozenset({"cluster"}))

    assert writer.version == oldest.version
    assert bytes(datum) == value[HEADER_SIZE:]
    assert scanned["cluster"] == record["cluster"]
    assert scanned == codec.decode(value)


def test_the_codec_refuses_a_corrupt_datum_as_a_decode_error() -> None:
    codec = Codec()
    value = event_values(1, seed=3)[0][1]
    with pytest.raises(DecodeError, match="corrupt Avro datum"):
        codec.scan(value[:-3], frozenset())
    with pytest.raises(DecodeError, match="left over"):
        codec.scan(value + b"\x00", frozenset())
