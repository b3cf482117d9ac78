"""Avro values of Kubernetes events in two framings, with every released schema version.

With a schema registry, a value is framed as Confluent's tools expect: a zero byte, the
writer schema's 4-byte registry id (big-endian), then the Avro binary datum; Connect's
AvroConverter, ksqlDB, Flink and ``confluent_kafka``'s ``AvroDeserializer`` read it. Without
one (the registry-less mode), a value is Avro single-object encoded: ``C3 01``, the writer
schema's 8-byte CRC-64-AVRO fingerprint (little-endian, as the Avro specification has it),
then the datum. The first byte tells the two apart, so one topic may hold both. A sink takes
the datum bytes as they are (``split``) to append them to an Avro container block without
decoding; a registry id it has not seen is looked up once (``lookup``) and kept.

Schemas live in ``avro/kubernetes_event.vN.avsc``; a released version is never
edited, a change is a new file, and every version stays loadable. Anything that
is not a well-formed value of a known version raises ``DecodeError``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from kafkube.core.errors import KafkubeError
from kafkube.schemas.program import Program, compile_program
from kafkube.schemas.reading import CorruptDatum, Read, compile_reader
from kafkube.schemas.writing import UnsupportedSchema, Write, compile_writer

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
REGISTRY_MAGIC = b"\x00"
REGISTRY_HEADER_SIZE = len(REGISTRY_MAGIC) + 4
_SCHEMA_FILE = re.compile(r"kubernetes_event\.v(\d+)\.avsc")

log = logging.getLogger(__name__)


class EncodeError(KafkubeError):
    """A record the writer schema refuses (a wrong type, a number out of range, an unknown
    symbol). The same record is refused every time: retrying cannot help."""

    retriable = False


class DecodeError(KafkubeError):
    """Bytes that are not a value of any known schema version. Retrying cannot help."""

    retriable = False


class UnknownSchemaIdError(DecodeError):
    """A registry-framed value whose schema id the registry does not know, or met with no
    registry configured."""


def registry_header(schema_id: int) -> bytes:
    """The Confluent framing's five bytes before the datum."""
    return REGISTRY_MAGIC + schema_id.to_bytes(4, "big")


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    schema: Any  # fastavro's parsed schema
    fingerprint: bytes  # 8 bytes, little-endian CRC-64-AVRO
    schema_json: str = ""  # the schema as released, for Avro container file headers
    # This schema's own writer (kafkube.schemas.writing); None: fastavro writes it.
    write: Write | None = field(default=None, compare=False, repr=False)
    # Its compiled readers (kafkube.schemas.reading) by the fields they keep, made on first
    # use; None: the schema is not compiled, fastavro reads it.
    _readers: dict[frozenset[str] | None, Read | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def reader(self, keep: frozenset[str] | None) -> Read | None:
        """A reader of this schema's datums that checks them whole and keeps the top-level
        fields ``keep`` (all when None); None when the schema is not compiled."""
        if keep not in self._readers:
            try:
                self._readers[keep] = compile_reader(json.loads(self.schema_json), keep)
            except (UnsupportedSchema, ValueError) as err:
                log.debug("schema v%d: read by fastavro (%s)", self.version, err)
                self._readers[keep] = None
        return self._readers[keep]

    @cached_property
    def program(self) -> Program | None:
        """This schema as the compiled validator's program (``kafkube.schemas.program``);
        None where its Python reader is not compiled either (fastavro reads it)."""
        if self.reader(frozenset()) is None:
            return None
        try:
            return compile_program(json.loads(self.schema_json))
        except (UnsupportedSchema, ValueError) as err:
            log.debug("schema v%d: no program (%s)", self.version, err)
            return None

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint

    @property
    def full_name(self) -> str:
        """The record's full name (namespace and name), as RecordNameStrategy's subject."""
        return str(self.schema["name"])


def parse_schema(definition: dict[str, Any] | str, version: int) -> SchemaVersion:
    """A schema (its JSON as Python data) with the version number it is released under."""
    canonical = to_parsing_canonical_form(fastavro.parse_schema(definition, _write_hint=False))
    return SchemaVersion(
        version=version,
        schema_json=json.dumps(definition, separators=(",", ":")),
        # Parsed with fastavro's "already parsed" hint: without it every write parses it again,
        # which made encoding 15 times slower.
        schema=fastavro.parse_schema(definition),
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        write=_compiled(definition),
    )


def _compiled(definition: dict[str, Any] | str) -> Write | None:
    try:
        return compile_writer(definition)
    except UnsupportedSchema:
        return None


@cache
def released_versions() -> dict[int, SchemaVersion]:
    """Every released schema version, by number."""
    versions = {}
    for entry in resources.files("kafkube.schemas").joinpath("avro").iterdir():
        matched = _SCHEMA_FILE.fullmatch(entry.name)
        if matched:
            version = int(matched.group(1))
            versions[version] = parse_schema(json.loads(entry.read_text()), version)
    return dict(sorted(versions.items()))


def latest_version() -> SchemaVersion:
    return list(released_versions().values())[-1]


def registered_version(schema_json: str) -> SchemaVersion:
    """A writer schema as a registry holds it: the released version it is (the same
    fingerprint), else a version of its own (numbered 0) that readers resolve against."""
    parsed = parse_schema(json.loads(schema_json), 0)
    for version in released_versions().values():
        if version.fingerprint == parsed.fingerprint:
            return version
    return dataclasses.replace(parsed, schema_json=schema_json)


# The writer schema a registry holds under an id, as its JSON; None when it holds none.
RegistryLookup = Callable[[int], "str | None"]


class Codec:
    """Encodes with one writer version; decodes any known version into one reader version.

    ``writer_id``: the writer's id in a schema registry, which frames what ``encode`` gives
    (else single-object encoding). ``lookup``: how a registry id not seen yet is resolved."""

    def __init__(
        self,
        *,
        writer: SchemaVersion | None = None,
        reader: SchemaVersion | None = None,
        known: Mapping[int, SchemaVersion] | None = None,
        writer_id: int | None = None,
        lookup: RegistryLookup | None = None,
    ) -> None:
        versions = dict(known if known is not None else released_versions())
        self.writer = writer or versions[max(versions)]
        self.reader = reader or self.writer
        for extra in (self.writer, self.reader):
            versions.setdefault(extra.version, extra)
        self._by_fingerprint = {v.fingerprint: v for v in versions.values()}
        self.header = self.writer.header if writer_id is None else registry_header(writer_id)
        self._by_id: dict[int, SchemaVersion] = {}
        if writer_id is not None:
            self._by_id[writer_id] = self.writer
        self._lookup = lookup

    def encode(self, record: Mapping[str, Any]) -> bytes:
        try:
            if self.writer.write is not None:
                buffer = bytearray(self.header)
                self.writer.write(buffer, record)
                return bytes(buffer)
            out = io.BytesIO()
            out.write(self.header)
            fastavro.schemaless_writer(out, self.writer.schema, record)
            return out.getvalue()
        except (ValueError, TypeError, OverflowError, AttributeError, struct.error) as err:
            raise EncodeError(f"schema v{self.writer.version} refuses the record: {err!r}") from err

    def known_count(self) -> int:
        """How many writer schemas this codec knows: more once a registry id is looked up."""
        return len(self._by_fingerprint) + len(self._by_id)

    def writers(self) -> Iterator[tuple[bytes | int, SchemaVersion]]:
        """Each writer schema known, by what a value's framing names it with: its
        fingerprint (single-object encoding), or its registry id."""
        yield from self._by_fingerprint.items()
        yield from self._by_id.items()

    def split(self, value: bytes) -> tuple[SchemaVersion, memoryview]:
        """The writer schema of a value and its datum bytes, without decoding the datum."""
        writer, start = self._framing(value)
        return writer, memoryview(value)[start:]

    def scan(
        self, value: bytes, keep: frozenset[str] | None = None
    ) -> tuple[SchemaVersion, memoryview, dict[str, Any]]:
        """What a sink needs of a value: its writer schema, its datum bytes, and its top-level
        fields named in ``keep`` (every field when None), the datum checked whole all the same.
        A datum of the reader's own schema is read by the schema's compiled reader, building
        only the fields kept; any other is decoded whole (and resolved) by fastavro."""
        value = value if isinstance(value, bytes) else bytes(value)
        writer, start = self._framing(value)
        read = writer.reader(keep) if writer.fingerprint == self.reader.fingerprint else None
        if read is None:
            return writer, memoryview(value)[start:], self._resolved(writer, value, start)
        try:
            record = read(value, start)
        except CorruptDatum as err:
            raise DecodeError(f"corrupt Avro datum (schema v{writer.version}): {err}") from err
        return writer, memoryview(value)[start:], record

    def _framing(self, value: bytes) -> tuple[SchemaVersion, int]:
        """The writer schema a value's framing names, and where its datum starts."""
        if value[:1] == REGISTRY_MAGIC:
            if len(value) < REGISTRY_HEADER_SIZE:
                raise DecodeError(f"a registry-framed value of {len(value)} bytes: no schema id")
            schema_id = int.from_bytes(value[1:REGISTRY_HEADER_SIZE], "big")
            return self._registered(schema_id), REGISTRY_HEADER_SIZE
        if len(value) < HEADER_SIZE or value[:2] != MAGIC:
            raise DecodeError(
                "neither registry-framed (00 and a schema id) nor Avro single-object encoded "
                "(C3 01 and a fingerprint)"
            )
        writer = self._by_fingerprint.get(bytes(value[2:HEADER_SIZE]))
        if writer is None:
            raise DecodeError(f"unknown writer schema fingerprint {value[2:HEADER_SIZE].hex()}")
        return writer, HEADER_SIZE

    def _registered(self, schema_id: int) -> SchemaVersion:
        known = self._by_id.get(schema_id)
        if known is not None:
            return known
        if self._lookup is None:
            raise UnknownSchemaIdError(
                f"schema id {schema_id}: a registry-framed value, and no schema registry is "
                "configured (kafka.schema_registry.url)"
            )
        schema_json = self._lookup(schema_id)
        if schema_json is None:
            raise UnknownSchemaIdError(f"schema id {schema_id} is unknown to the schema registry")
        try:
            found = registered_version(schema_json)
        except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as err:
            raise DecodeError(f"schema id {schema_id} is no Avro schema we read: {err}") from err
        self._by_id[schema_id] = found
        return found

    def decode(self, value: bytes) -> dict[str, Any]:
        """A value as a record of the reader's schema."""
        return self.scan(value)[2]

    def _resolved(self, writer: SchemaVersion, value: bytes, start: int) -> dict[str, Any]:
        """A datum decoded whole by fastavro, resolved from its writer's schema to the
        reader's (the reference the compiled reader is tested against)."""
        stream = io.BytesIO(memoryview(value)[start:])
        try:
            record = fastavro.schemaless_reader(stream, writer.schema, self.reader.schema)
        except (EOFError, ValueError, IndexError, TypeError, UnicodeDecodeError, KeyError) as err:
            raise DecodeError(f"corrupt Avro datum (schema v{writer.version}): {err!r}") from err
        if start + stream.tell() != len(value):
            left = len(value) - start - stream.tell()
            raise DecodeError(f"{left} bytes left over after the datum (schema v{writer.version})")
        if not isinstance(record, dict):
            raise DecodeError(f"datum is not a record: {type(record).__name__}")
        return record
