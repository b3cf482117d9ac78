"""The sinks' fast path (the compiled scan) and their Python path take the same records and
write the same bytes.

The compiled check never takes a datum the Python reader refuses, and the compiled decoder
builds the records it builds (fuzzed on realistic events and on a schema of every type the
programs cover); the scan cuts runs where the
partition, the writer or the hour changes and hands back, in place, every message it does
not pass; and a sink run both ways over the same topic (poison records, three partitions,
the size and count rules both cutting) leaves the same objects, byte for byte, in a folder,
a bucket of MinIO and one of the GCS emulator, in Avro (the datums as they came), and in JSON
Lines and Parquet (the records the scan built).
"""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from confluent_kafka import KafkaError, Message

from kafkube.compose.endpoints import Endpoints
from kafkube.consumers import _scan, fastpath
from kafkube.consumers.formats import json_line_bytes
from kafkube.core.compiled import PURE_PYTHON_VARIABLE
from kafkube.schemas import program
from kafkube.schemas.codec import HEADER_SIZE, Codec, parse_schema, registry_header
from kafkube.schemas.reading import CorruptDatum, compile_reader
from tests.conftest import unique
from tests.sinking import (
    SinkProcess,
    committed,
    create_topic,
    edge_case_records,
    event_values,
    produce,
    s3_env,
)


def test_the_compiled_scan_is_built_here() -> None:
    """`make` builds it; a machine like CI's must not fall back without saying so."""
    assert fastpath.built()


def test_the_programs_opcodes_are_the_scans() -> None:
    names = ["NULL", "BOOLEAN", "LONG", "FLOAT", "DOUBLE", "STRING", "BYTES", "ENUM"]
    names += ["RECORD", "ARRAY", "MAP", "NULLABLE", "TIMESTAMP"]
    assert {name: getattr(program, name) for name in names} == _scan.OPCODES


def _python_takes(read: Any, datum: bytes) -> bool:
    try:
        read(datum, 0)
    except CorruptDatum:
        return False
    return True


def _python_builds(read: Any, datum: bytes) -> dict[str, Any] | None:
    """The record the Python reader builds (a timestamp out of range it refuses then, where
    the check, which builds nothing, takes it)."""
    try:
        return read(datum, 0)  # type: ignore[no-any-return]
    except CorruptDatum:
        return None


def _mutations(datum: bytes, rng: random.Random) -> list[bytes]:
    """Cut short, grown, a byte changed, a bit flipped, a byte dropped, a byte added."""
    at = rng.randrange(len(datum))
    changed, flipped = bytearray(datum), bytearray(datum)
    changed[at] = rng.randrange(256)
    flipped[at] ^= 1 << rng.randrange(8)
    return [
        datum[: rng.randrange(len(datum))],
        datum + bytes([rng.randrange(256)]),
        bytes(changed),
        bytes(flipped),
        datum[:at] + datum[at + 1 :],
        datum[:at] + bytes([rng.randrange(256)]) + datum[at:],
    ]


def _built(compiled: program.Program, datum: bytes) -> dict[str, Any] | None:
    try:
        return _scan.decode(compiled.code, compiled.constants, datum)
    except Exception:  # noqa: BLE001 - whatever it raises, it did not take the datum
        return None


def _same(built: dict[str, Any], python: dict[str, Any] | None) -> bool:
    """Equal records, a NaN (a float's bits mutated) being its own equal."""
    return built == python or repr(built) == repr(python)


def _rendered(compiled: program.Program, datum: bytes) -> bytes | None:
    try:
        return _scan.render(compiled.code, compiled.constants, datum)
    except Exception:  # noqa: BLE001 - whatever it raises, it did not take the datum
        return None


def _python_line(record: dict[str, Any] | None) -> bytes | None:
    """The line the Python path writes for a record (None: it writes none, bytes being no
    JSON)."""
    try:
        return None if record is None else json_line_bytes(record)
    except orjson.JSONEncodeError:
        return None


def _agree(definition: dict[str, Any], datums: list[bytes], seed: int) -> tuple[int, int]:
    """Each datum and its mutations: the compiled check and the compiled decoder say what the
    Python reader says (they never take what it refuses), the decoder builds the record it
    builds, and the JSON renderer writes the line orjson writes for it. How many were taken
    and refused."""
    check, read = compile_reader(definition, frozenset()), compile_reader(definition)
    compiled = program.compile_program(definition)
    rng, taken, refused, stricter = random.Random(seed), 0, 0, 0
    for datum in datums:
        assert _scan.valid(compiled.code, datum)
        assert _built(compiled, datum) == read(datum, 0) is not None
        assert _rendered(compiled, datum) == _python_line(read(datum, 0))
        for mutated in _mutations(datum, rng):
            python = _python_takes(check, mutated)
            assert _scan.valid(compiled.code, mutated) == python, mutated.hex()
            built = _built(compiled, mutated)
            line = _rendered(compiled, mutated)
            if built is not None:  # it may refuse more (a long past 64 bits): never less
                assert _same(built, _python_builds(read, mutated))
                # The renderer may refuse more (a map's key again): never write other bytes.
                assert line is None or line == _python_line(built)
                stricter += line is None and _python_line(built) is not None
            else:
                stricter += _python_builds(read, mutated) is not None
                assert line is None
            taken, refused = taken + python, refused + (not python)
    assert stricter <= len(datums) * 6 // 100  # under 1 % of the mutations go the Python way
    return taken, refused


def test_the_compiled_check_takes_exactly_what_the_python_reader_takes() -> None:
    codec = Codec()
    base = codec.decode(event_values(1, seed=3)[0][1])
    values = [value for _, value in event_values(2000, seed=31)]
    values += [codec.encode(record) for record in edge_case_records(base)]
    taken, refused = _agree(
        json.loads(codec.writer.schema_json), [v[HEADER_SIZE:] for v in values], seed=32
    )
    assert refused > 5000  # most of 12,000 mutations are refused; some stay valid
    assert taken > 100


EVERY_TYPE = {
    "type": "record",
    "name": "All",
    "namespace": "t",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "s", "type": "string"},
        {"name": "raw", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "again", "type": "E"},
        {"name": "n", "type": "null"},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "list", "type": {"type": "array", "items": ["null", "string"]}},
        {"name": "map", "type": {"type": "map", "values": "long"}},
        {"name": "next", "type": ["null", "All"]},  # recursive
    ],
}


def _every_type_datum(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    text = "".join(rng.choice("aé€😀 z") for _ in range(rng.randrange(0, 80)))
    return {
        "b": rng.random() < 0.5,
        "i": rng.randrange(-(2**31), 2**31),
        "f": rng.random(),
        "d": rng.random() * 1e300,
        "s": text,
        "raw": rng.randbytes(rng.randrange(0, 200)),
        "e": rng.choice("ABC"),
        "again": rng.choice("ABC"),
        "n": None,
        "t": rng.randrange(0, 2**52),  # within datetime's range
        "list": [rng.choice([None, text[:5]]) for _ in range(rng.randrange(0, 70))],
        "map": {f"k{i}": rng.randrange(-(2**63), 2**63) for i in range(rng.randrange(0, 5))},
        "next": _every_type_datum(rng, depth + 1) if depth < 2 and rng.random() < 0.5 else None,
    }


def _every_type_datums(count: int, seed: int) -> list[bytes]:
    parsed, rng, out = fastavro.parse_schema(EVERY_TYPE), random.Random(seed), []
    for _ in range(count):
        stream = io.BytesIO()
        fastavro.schemaless_writer(stream, parsed, _every_type_datum(rng))
        out.append(stream.getvalue())
    # Arrays in blocks with their byte size (a negative count), as some writers write them.
    return out


def test_the_compiled_check_agrees_on_every_type_it_covers() -> None:
    taken, refused = _agree(EVERY_TYPE, _every_type_datums(1500, seed=33), seed=34)
    assert refused > 2000
    assert taken > 1000


MIN_MICROS = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def _without_raw(datum: dict[str, Any]) -> dict[str, Any]:
    inner = datum["next"] and _without_raw(datum["next"])
    return {key: value for key, value in datum.items() if key != "raw"} | {"next": inner}


def test_the_json_renderer_writes_orjsons_bytes_for_every_type_json_has() -> None:
    """Every type but bytes (which JSON has not: such a record takes the Python path): each
    string escape, times at both ends of datetime's range, floats written by orjson."""
    fields = [field for field in EVERY_TYPE["fields"] if field["name"] != "raw"]
    definition = {**EVERY_TYPE, "fields": fields}
    parsed, rng, datums = fastavro.parse_schema(definition), random.Random(36), []
    for number in range(800):
        datum = _without_raw(_every_type_datum(rng))
        if number == 0:
            datum["s"] = "".join(chr(c) for c in range(128)) + "\u2028é😀"
        if number < 5:
            datum["t"] = [MIN_MICROS, MAX_MICROS, 0, -1, 1][number]
        datum["f"] = [float("-inf"), float("inf"), -0.0, 1e-7, 3e38][number % 5]  # NaN: != NaN
        stream = io.BytesIO()
        fastavro.schemaless_writer(stream, parsed, datum)
        datums.append(stream.getvalue())
    taken, refused = _agree(definition, datums, seed=37)
    assert taken > 500
    assert refused > 1000


@pytest.mark.parametrize(
    "datum",
    [
        b"",
        b"\x81",  # a varint's continuation, then nothing
        b"\x01",  # a negative length
        b"\xff" * 11,  # a varint that does not end
        b"\x02\xff",  # not UTF-8
        b"\x04\xed\xa0\x80",  # a surrogate, which strict UTF-8 refuses
        b"\x00\x00",  # left over
    ],
)
def test_a_broken_datum_is_refused(datum: bytes) -> None:
    compiled = program.compile_program(
        {"type": "record", "name": "R", "fields": [{"name": "s", "type": "string"}]}
    )
    assert not _scan.valid(compiled.code, datum)
    assert _built(compiled, datum) is None


def test_a_block_counting_the_lowest_long_is_refused() -> None:
    """-2**63 items (a negative count: a byte size follows) has no positive twin in 64 bits:
    the Python reader runs out of bytes, the compiled code must not take it as no items."""
    definition = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": {"type": "array", "items": "long"}}],
    }
    datum = b"\xff" * 9 + b"\x01" + b"\x00" + b"\x00"  # the count, its size, one item
    compiled = program.compile_program(definition)
    assert not _python_takes(compile_reader(definition, frozenset()), datum)
    assert not _scan.valid(compiled.code, datum)
    assert _built(compiled, datum) is None


def _message(value: bytes, partition: int, offset: int, hour: int, topic: str = "t") -> Message:
    return Message(
        topic=topic, partition=partition, offset=offset, value=value,
        timestamp=(1, hour * 3_600_000 + offset),
    )  # fmt: skip


def test_runs_end_where_the_partition_writer_or_hour_changes_and_the_rest_comes_back() -> None:
    """Messages of two partitions, two hours and two framings (the same schema under a
    registry id), with an end of partition, a corrupt datum and an unknown id among them."""
    codec = Codec(writer_id=7)  # frames with registry id 7
    plain = Codec()
    values = [v for _, v in event_values(8, seed=35)]
    datum = [plain.split(v)[1].tobytes() for v in values]
    framed = [registry_header(7) + d for d in datum]
    eof = Message(topic="t", partition=0, offset=3, error=KafkaError(KafkaError._PARTITION_EOF))  # noqa: SLF001
    messages = [
        _message(values[0], 0, 0, 10),
        _message(values[1], 0, 1, 10),
        _message(values[2], 0, 2, 11),  # another hour
        eof,
        _message(values[3], 1, 5, 11),  # another partition
        _message(framed[4], 1, 6, 11),  # the same schema, framed by id: another run
        _message(values[5][:-2], 1, 7, 11),  # corrupt
        _message(registry_header(8) + datum[6], 1, 8, 11),  # an id not looked up yet
        _message(values[7], 1, 9, 11, topic="u"),  # another topic
    ]
    scanned = fastpath.FastScan(codec).scan(messages)

    shapes = [
        (item[0], item[1], item[3], item[5], item[7], item[8], item[6])
        if isinstance(item, tuple)
        else messages.index(item)
        for item in scanned
    ]
    sizes = [len(d) for d in datum]
    assert shapes == [
        ("t", 0, 10, [0, 1], 0, 2, sizes[0] + sizes[1]),
        ("t", 0, 11, [2], 2, 3, sizes[2]),
        3,
        ("t", 1, 11, [5], 4, 5, sizes[3]),
        ("t", 1, 11, [6], 5, 6, sizes[4]),
        6,
        7,
        ("u", 1, 11, [9], 8, 9, sizes[7]),
    ]
    runs = [item for item in scanned if isinstance(item, tuple)]
    assert [d for run in runs for d in run[4]] == [datum[i] for i in (0, 1, 2, 3, 4, 7)]
    assert all(run[2] is codec.writer for run in runs)


def test_a_schema_of_another_version_is_left_to_the_python_path() -> None:
    """Only the reader's own schema is passed: another is resolved by fastavro, in Python."""
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "long"}]}
    older = parse_schema(other, 1)
    codec = Codec(known={1: older, 2: Codec().writer}, reader=Codec().writer)
    value = older.header + b"\x02"
    assert fastpath.FastScan(codec).scan([_message(value, 0, 0, 1)])[0].value() == value


# --- both paths through a real sink -------------------------------------------------------

PATHS = {"compiled": {}, "python": {PURE_PYTHON_VARIABLE: "1"}}


def _sink(
    kind: str, endpoints: Endpoints, topic: str, where: Path, bucket: str, path: str
) -> SinkProcess:
    targets: dict[str, tuple[list[str], dict[str, str]]] = {
        "file": ([], {}),
        "s3": (["--bucket", bucket, "--prefix", path], s3_env(endpoints)),
        "gcs": (
            ["--bucket", bucket, "--prefix", path],
            {"STORAGE_EMULATOR_HOST": endpoints.gcs_endpoint},
        ),
    }
    target, env = targets[kind]
    return SinkProcess(
        bootstrap=endpoints.kafka_bootstrap, topic=topic, directory=where / path, kind=kind,
        log=where / f"{kind}-{path}.log", group=unique(f"paths-{path}"), target=target,
        env={**env, **PATHS[path]},
        # Both rules cut: 150 records, or 50 kB of datums (about as many of these events).
        extra=["--max-records", "150", "--max-bytes", "50000", "--max-age-seconds", "0.5"],
    )  # fmt: skip


@pytest.mark.services
@pytest.mark.parametrize(
    ("kind", "output_format"),
    [("file", "avro"), ("s3", "avro"), ("gcs", "avro"), ("file", "jsonl"), ("file", "parquet")],
)
def test_both_paths_write_the_same_objects_byte_for_byte(
    kind: str,
    output_format: str,
    endpoints: Endpoints,
    tmp_path: Path,
    s3_client: Any,
    gcs_client: Any,
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    topic = unique("paths")
    create_topic(bootstrap, topic, 3)
    create_topic(bootstrap, f"{topic}.dlq", 1)
    values = event_values(1200, seed=37)
    poison = [(b"bad", b"\xc3\x01" + b"\x00" * 8 + b"junk"), (b"cut", values[5][1][:-4])]
    produce(bootstrap, topic, [*values[:600], *poison, *values[600:]])
    bucket = unique("paths").lower()
    if kind == "s3":
        s3_client.create_bucket(Bucket=bucket)
    elif kind == "gcs":
        gcs_client.create_bucket(bucket)

    objects = {}
    for path in PATHS:
        sink = _sink(kind, endpoints, topic, tmp_path, bucket, path)
        sink.extra += ["--format", output_format]
        sink.start()
        wait_until_committed(bootstrap, sink, topic, 1202)
        sink.terminate()
        objects[path] = _stored(kind, tmp_path / path, s3_client, gcs_client, bucket, path)
        assert '"dead_letters": 2' in sink.log.read_text()

    written = [name for name in objects["compiled"] if not name.startswith("_kafkube/")]
    assert len(written) >= 9  # 1,200 records in three partitions, cut at 150 or 50 kB
    assert objects["compiled"] == objects["python"]


def wait_until_committed(bootstrap: str, sink: SinkProcess, topic: str, records: int) -> None:
    deadline = time.monotonic() + 120
    while sum(committed(bootstrap, sink.group, topic, 3).values()) < records:
        assert sink.alive(), sink.log.read_text()[-3000:]
        assert time.monotonic() < deadline, sink.log.read_text()[-3000:]
        time.sleep(0.2)


def _stored(kind: str, folder: Path, s3: Any, gcs: Any, bucket: str, path: str) -> dict[str, bytes]:
    """Every object under the path, by its name below it, with its bytes."""
    if kind == "file":
        return {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*")
            if p.is_file()
        }
    if kind == "s3":
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{path}/").get("Contents", [])
        return {
            o["Key"].removeprefix(f"{path}/"): s3.get_object(Bucket=bucket, Key=o["Key"])[
                "Body"
            ].read()
            for o in listed
        }
    return {
        blob.name.removeprefix(f"{path}/"): blob.download_as_bytes()
        for blob in gcs.bucket(bucket).list_blobs(prefix=f"{path}/")
    }


@pytest.mark.parametrize(
    "micros",
    [
        0,
        -1,
        1,
        951_782_400_000_000,  # 2000-02-29
        -2_203_891_200_000_000,  # 1900-03-01, after a century's missing leap day
        -62_135_596_800_000_000,
        -62_135_596_800_000_001,  # the first microsecond of year 1
        253_402_300_799_999_999,
        253_402_300_800_000_000,  # the last one of 9999
        2**62,
        -(2**62),
    ],
)
def test_a_timestamp_is_built_as_the_python_reader_builds_it_or_refused_alike(micros: int) -> None:
    definition = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}}],
    }
    stream = io.BytesIO()
    fastavro.schemaless_writer(stream, fastavro.parse_schema(definition), {"t": micros})
    datum = stream.getvalue()
    assert _built(program.compile_program(definition), datum) == _python_builds(
        compile_reader(definition), datum
    )
