"""Batch to file bytes: Avro object container files, gzip JSON Lines and Parquet (its own
module, ``kafkube.consumers.parquet``, with the pyarrow of ``kafkube[parquet]``). Pure: no
I/O.

``FORMATS`` is the one table of output formats: the runner, the configuration, the CLI,
the object names and ``kafkube inspect`` all take the formats from it.

Both are deterministic, so a rewrite of the same records is byte for byte the
same file: the Avro sync marker is derived from the object's name (Avro's own
writers draw it at random), gzip's header carries no time.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro
import orjson
from isal import igzip, isal_zlib

from kafkube.core.errors import ConfigError
from kafkube.schemas.codec import SchemaVersion
from kafkube.schemas.writing import write_long

AVRO_MAGIC = b"Obj\x01"
# Deflate (Avro's deflate codec, gzip JSON Lines) by Intel's ISA-L: at its level 2 a tenth of
# zlib's level 6 CPU on our records (0.5 µs a record, not 5: most of a sink's time), for
# objects a sixth larger. Any inflate reads it; the same level gives the same bytes again.
DEFLATE_LEVEL = 2
BLOCK_RECORDS = 4096  # records per container block, so a reader need not hold a whole file


def _long(value: int) -> bytes:
    out = bytearray()
    write_long(out, value)
    return bytes(out)


def _bytes(value: bytes) -> bytes:
    return _long(len(value)) + value


def _snappy(block: bytes) -> bytes:
    import cramjam  # noqa: PLC0415 - only for this codec

    return bytes(cramjam.snappy.compress_raw(block)) + zlib.crc32(block).to_bytes(4, "big")


def _zstd(block: bytes) -> bytes:
    import cramjam  # noqa: PLC0415

    return bytes(cramjam.zstd.compress(block))


def _deflate(block: bytes) -> bytes:
    compressor = isal_zlib.compressobj(DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)
    return compressor.compress(block) + compressor.flush()


CODECS: dict[str, Callable[[bytes], bytes]] = {
    "null": lambda block: block,
    "deflate": _deflate,
    "snappy": _snappy,
    "zstandard": _zstd,
}


def sync_marker(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()[:16]


def avro_container(
    name: str, writer: SchemaVersion, datums: Sequence[bytes | memoryview], codec: str
) -> bytes:
    """An Avro object container file of datums already encoded with ``writer``'s schema."""
    if codec not in CODECS:
        raise ConfigError("format.codec", f"must be one of {', '.join(CODECS)}, got {codec!r}")
    compress, sync = CODECS[codec], sync_marker(name)
    out = io.BytesIO()
    out.write(AVRO_MAGIC)
    metadata = {"avro.schema": writer.schema_json.encode(), "avro.codec": codec.encode()}
    out.write(_long(len(metadata)))
    for key, value in metadata.items():
        out.write(_bytes(key.encode()))
        out.write(_bytes(value))
    out.write(_long(0))
    out.write(sync)
    for start in range(0, len(datums), BLOCK_RECORDS):
        chunk = datums[start : start + BLOCK_RECORDS]
        block = compress(b"".join(chunk))
        out.write(_long(len(chunk)))
        out.write(_bytes(block))
        out.write(sync)
    return out.getvalue()


def json_line(record: dict[str, Any]) -> str:
    """A record as one line of compact JSON, times as ISO 8601 in UTC ("Z")."""
    return orjson.dumps(record, option=orjson.OPT_UTC_Z).decode()


def json_line_bytes(record: dict[str, Any]) -> bytes:
    """A record's line of JSON Lines, newline included. orjson: a tenth of the standard
    library's time on our records, the same bytes (a test compares them); the compiled scan
    writes these bytes too, straight from the datum (``kafkube.consumers._scan``)."""
    return orjson.dumps(record, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def json_lines_gzip(lines: Sequence[bytes]) -> bytes:
    """Lines of JSON (``json_line_bytes``), gzip-compressed with no timestamp in the header."""
    return igzip.compress(b"".join(lines), compresslevel=DEFLATE_LEVEL, mtime=0)


def _read_avro(data: bytes) -> Iterator[dict[str, Any]]:
    for record in fastavro.reader(io.BytesIO(data)):
        assert isinstance(record, dict)  # noqa: S101 - a record schema's rows are dicts
        yield record


def _read_json_lines(data: bytes) -> Iterator[dict[str, Any]]:
    for line in gzip.decompress(data).decode().splitlines():
        yield json.loads(line)


@dataclass(frozen=True)
class Batch:
    """What a format may turn into bytes: the object's name, the writer schema, the datums as
    they came (Avro binary), and the records decoded (only for formats that need them, and
    none where a format ``from_datums`` builds from the datums)."""

    name: str
    writer: SchemaVersion
    datums: Sequence[bytes | memoryview]
    records: Sequence[dict[str, Any]]
    codec: str  # the format's compression (one of its ``codecs``)
    # For a table's rows: the partition and each record's offset (``SinkConfig.keeps_offsets``).
    positions: tuple[int, Sequence[int]] | None = None
    # Each record's line of JSON, for a format of ``lines`` (instead of its records).
    lines: Sequence[bytes] = ()


@dataclass(frozen=True)
class Format:
    """An output format: records in, bytes out; nothing of where the bytes go."""

    extension: str  # of every object's name
    needs_records: bool  # whether the runner must decode each datum to a dict for it
    write: Callable[[Batch], bytes]
    read: Callable[[bytes], Iterator[dict[str, Any]]]  # for inspect and the tests
    description: str
    label: str = ""  # its short name for people (tables, reports); else its key in FORMATS
    codecs: tuple[str, ...] = ()  # the compressions it takes, its default first
    # Whether it takes each record as its line of JSON (``Batch.lines``), not as a dict: the
    # runner renders it as it takes it, the compiled scan straight from the datum.
    lines: bool = False
    # Whether it takes a batch of the reader's own schema as its datums alone (no records)
    # where the sinks' compiled scan is built: it fills its columns straight from them.
    from_datums: bool = False
    # The module it needs beyond kafkube's own (a library an extra brings), and that extra.
    module: str | None = None
    extra: str | None = None

    @property
    def default_codec(self) -> str:
        return self.codecs[0] if self.codecs else ""

    def check(self, field: str) -> None:
        """Refuse at start, naming what to install, a format whose library is missing."""
        require_extra(self.module, self.extra, field=field)


def require_extra(module: str | None, extra: str | None, *, field: str) -> None:
    """Import ``module`` (a library an extra brings: a store's client, a format's writer), or
    refuse the setting ``field`` saying which extra to install."""
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(
            field, f"needs {module}, not installed: pip install 'kafkube[{extra}]'"
        ) from err


def _parquet_write(batch: Batch) -> bytes:
    from kafkube.consumers.parquet import parquet_file  # noqa: PLC0415 - its extra's pyarrow

    return parquet_file(batch.writer, batch.records, batch.codec, batch.positions, batch.datums)


def _parquet_read(data: bytes) -> Iterator[dict[str, Any]]:
    from kafkube.consumers.parquet import read_parquet  # noqa: PLC0415

    return read_parquet(data)


# Every output format, by the name the configuration and the CLI use. A new format is a
# module of its own with its writer and reader, and one entry here.
FORMATS: dict[str, Format] = {
    "avro": Format(
        extension="avro",
        needs_records=False,
        write=lambda batch: avro_container(batch.name, batch.writer, batch.datums, batch.codec),
        read=_read_avro,
        description="Avro object container files (the writer schema inside)",
        label="Avro",
        codecs=("deflate", "snappy", "zstandard", "null"),
    ),
    "jsonl": Format(
        extension="jsonl.gz",
        needs_records=True,
        write=lambda batch: json_lines_gzip(batch.lines),
        read=_read_json_lines,
        description="gzip JSON Lines, one event a line",
        label="JSON Lines",
        lines=True,
    ),
    "parquet": Format(
        extension="parquet",
        needs_records=True,
        write=_parquet_write,
        read=_parquet_read,
        description="Parquet, columns from the Avro schema, for SQL engines (kafkube[parquet])",
        label="Parquet",
        codecs=("zstd", "snappy", "gzip", "null"),
        from_datums=True,
        module="pyarrow",
        extra="parquet",
    ),
}


def format_of(name: str) -> Format | None:
    """The format an object's name says it is in; None if it is none of ours."""
    for output in FORMATS.values():
        if name.endswith(f".{output.extension}"):
            return output
    return None
