"""An Avro binary reader built once per schema, for the sinks' hot path. Pure: no I/O.

A sink must know that every datum it writes is a well-formed value of its writer schema (a
corrupt one goes to the dead-letter topic, never into a file), but for Avro output it needs
nothing of the datum: the bytes go into the container block as they came. fastavro's reader
builds the whole record to tell, trying each union's branches in turn, at 35-50 µs a record:
most of a sink's time. This module turns a schema, once, into the source of one Python
function that walks a datum field by field and checks every step (each varint ends, each
union branch and enum symbol exists, each length stays inside the datum, each string is
UTF-8), and builds values only for the top-level fields it is asked to ``keep``: none for
validation alone, a few for filters, event time or the cluster, every one for JSON Lines and
Parquet (then the record is what fastavro gives, a test compares them on thousands of events
and on corrupted ones).

Only what the schemas use is compiled: null, boolean, int, long, float, double, string,
bytes, enum, record, map, array, ``["null", X]`` unions and the timestamp-micros logical
type. Anything else raises ``UnsupportedSchema`` at build time, and the codec falls back to
fastavro for that schema version. The schema's names enter the generated source only as
string literals (``repr``), never as code: a schema from a registry cannot inject any.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from kafkube.schemas.writing import RecordGenerator, UnsupportedSchema, full_name

# (a value, where the datum starts in it) -> the top-level fields kept, by name.
Read = Callable[[bytes, int], dict[str, Any]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_VARINT_BYTES = 10
_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from


class CorruptDatum(ValueError):  # noqa: N818 - reads as what it is
    """Bytes that are not a value of the schema; says where and what."""


def _long(data: bytes, position: int) -> tuple[int, int]:
    """A zig-zag varint, and where it ends (IndexError if the data ends first)."""
    result = shift = 0
    index = position
    while True:
        byte = data[index]
        index += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), index
        shift += 7
        if shift >= 7 * _MAX_VARINT_BYTES:
            raise CorruptDatum(f"a varint that does not end at byte {position}")


def _length(data: bytes, position: int) -> tuple[int, int]:
    """A string's or bytes' length, and where it ends: never negative."""
    length, end = _long(data, position)
    if length < 0:
        raise CorruptDatum(f"a negative length at byte {position}")
    return length, end


@functools.lru_cache(maxsize=4096)
def timestamp(micros: int) -> datetime:
    """A timestamp-micros as fastavro gives it. An event's times mostly repeat its
    neighbours' (created, first seen, last seen): a few thousand are kept."""
    return _EPOCH + timedelta(microseconds=micros)


def _corrupt(what: str, position: int) -> CorruptDatum:
    return CorruptDatum(f"{what} at byte {position}")


class _Generator(RecordGenerator):
    """Writes, for each named record, ``read_<n>`` (builds the record) and ``skip_<n>``
    (validates it), and the top-level function that keeps the fields asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.enums: dict[str, list[str]] = {}

    # Each ``value`` below emits code that reads one value at ``p`` in ``d`` (the bytes, of
    # length ``n``), advancing ``p``; with ``target`` set, it assigns the value to it.

    def value(self, schema: Any, space: str, depth: int, target: str | None) -> None:  # noqa: ANN401 - JSON
        if isinstance(schema, list):
            self.union(schema, space, depth, target)
        elif isinstance(schema, dict):
            self.complex(schema, space, depth, target)
        elif schema in _PRIMITIVES:
            self.primitive(schema, depth, target)
        elif isinstance(schema, str):
            self.reference(schema, space, depth, target)
        else:
            raise UnsupportedSchema(f"schema {schema!r}")

    def complex(self, schema: dict[str, Any], space: str, depth: int, target: str | None) -> None:
        kind = schema.get("type")
        if kind == "record":
            self.call(self.register(schema, space), depth, target)
        elif kind == "enum":
            self.enum(schema, space, depth, target)
        elif kind in {"map", "array"}:
            items = schema["values"] if kind == "map" else schema["items"]
            self.block(items, space, depth, target, keyed=kind == "map")
        elif kind == "long" and schema.get("logicalType") == "timestamp-micros":
            self.varint(depth, target and "v")
            if target:
                self.source.emit(depth, f"{target} = _timestamp(v)")
        elif isinstance(kind, str) and kind in _PRIMITIVES:
            self.primitive(kind, depth, target)
        else:
            raise UnsupportedSchema(f"type {kind!r}")

    def primitive(self, schema: str, depth: int, target: str | None) -> None:
        emit = self.source.emit
        if schema in {"int", "long"}:
            self.varint(depth, target)
        elif schema in {"string", "bytes"}:
            # A length: one byte for most (below 64, even), a helper for the rest.
            emit(depth, "x = d[p]")
            emit(depth, "if x & 129:")
            emit(depth + 1, "m, p = _length(d, p)")
            emit(depth, "else:")
            emit(depth + 1, "m = x >> 1")
            emit(depth + 1, "p += 1")
            emit(depth, "e = p + m")
            emit(depth, "if e > n: raise _corrupt('a length past the end', p)")
            if schema == "string":  # decoded even when skipped: it must be UTF-8
                emit(depth, f"{target or '_'} = d[p:e].decode()")
            elif target:
                emit(depth, f"{target} = bytes(d[p:e])")
            emit(depth, "p = e")
        elif schema == "boolean":
            emit(depth, "if p >= n or d[p] > 1: raise _corrupt('no boolean', p)")
            if target:
                emit(depth, f"{target} = d[p] == 1")
            emit(depth, "p += 1")
        elif schema in {"float", "double"}:
            size = 4 if schema == "float" else 8
            emit(depth, f"if p + {size} > n: raise _corrupt('a {schema} past the end', p)")
            if target:
                emit(depth, f"{target} = {'_FLOAT' if size == 4 else '_DOUBLE'}(d, p)[0]")
            emit(depth, f"p += {size}")
        elif target:  # null
            emit(depth, f"{target} = None")

    def varint(self, depth: int, target: str | None) -> None:
        """A zig-zag long into ``target`` (or only past it); one byte read inline."""
        emit = self.source.emit
        if target is None:  # only past it: no arithmetic (IndexError past the end: corrupt)
            emit(depth, "if d[p] & 128:")
            emit(depth + 1, "e = p + 1")
            emit(depth + 1, "while d[e] & 128: e += 1")
            emit(depth + 1, f"if e - p >= {_MAX_VARINT_BYTES}: raise _corrupt('a long varint', p)")
            emit(depth + 1, "p = e")
            emit(depth, "p += 1")
            return
        emit(depth, "x = d[p]")
        emit(depth, "p += 1")
        emit(depth, "if x & 128:")  # more bytes: a timestamp's eight, say
        emit(depth + 1, "v = x & 127")
        emit(depth + 1, "s = 7")
        emit(depth + 1, "while True:")
        emit(depth + 2, "x = d[p]")
        emit(depth + 2, "p += 1")
        emit(depth + 2, "v |= (x & 127) << s")
        emit(depth + 2, "if not x & 128: break")
        emit(depth + 2, "s += 7")
        emit(
            depth + 2,
            f"if s >= {7 * _MAX_VARINT_BYTES}: raise _corrupt('a varint that does not end', p)",
        )
        emit(depth + 1, f"{target} = (v >> 1) ^ -(v & 1)")
        emit(depth, "else:")
        emit(depth + 1, f"{target} = (x >> 1) ^ -(x & 1)")

    def union(self, branches: list[Any], space: str, depth: int, target: str | None) -> None:
        if len(branches) != 2 or branches[0] != "null":
            raise UnsupportedSchema(f"union {branches!r}: only [null, X] is compiled")
        emit = self.source.emit
        emit(depth, "x = d[p]")
        emit(depth, "p += 1")
        emit(depth, "if x == 2:")
        self.value(branches[1], space, depth + 1, target)
        emit(depth, "elif x:")
        emit(depth + 1, "raise _corrupt('no branch of a [null, X] union', p - 1)")
        if target:
            emit(depth, "else:")
            emit(depth + 1, f"{target} = None")

    def enum(self, schema: dict[str, Any], space: str, depth: int, target: str | None) -> None:
        name = full_name(schema, space)
        self.enums[name] = list(schema["symbols"])
        self.enum_value(name, depth, target)

    def enum_value(self, name: str, depth: int, target: str | None) -> None:
        emit, symbols = self.source.emit, self.enums[name]
        self.varint(depth, "i")
        why = f"no symbol of {name}"
        emit(depth, f"if not 0 <= i < {len(symbols)}: raise _corrupt({why!r}, p)")
        if target:
            emit(depth, f"{target} = {symbols!r}[i]")

    def block(
        self,
        items: Any,  # noqa: ANN401 - JSON
        space: str,
        depth: int,
        target: str | None,
        *,
        keyed: bool,
    ) -> None:
        """A map's or an array's blocks: a count (negative: its byte size follows), items,
        until a count of zero."""
        emit, source = self.source.emit, self.source
        out, count, key, item = source.name("c"), source.name("k"), source.name("t"), None
        if target:
            emit(depth, f"{out} = {{}}" if keyed else f"{out} = []")
            item = source.name("v")
        emit(depth, "while True:")
        self.varint(depth + 1, count)
        emit(depth + 1, f"if not {count}: break")
        emit(depth + 1, f"if {count} < 0:")
        emit(depth + 2, f"{count} = -{count}")
        self.varint(depth + 2, None)
        emit(depth + 1, f"for _ in range({count}):")
        if keyed:
            self.value("string", space, depth + 2, key if target else None)
        self.value(items, space, depth + 2, item)
        if target:
            emit(depth + 2, f"{out}[{key}] = {item}" if keyed else f"{out}.append({item})")
        if target:
            emit(depth, f"{target} = {out}")

    def reference(self, name: str, space: str, depth: int, target: str | None) -> None:
        full = name if "." in name else f"{space}.{name}".lstrip(".")
        if full in self.records:
            self.call(self.records[full][0], depth, target)
        elif full in self.enums:
            self.enum_value(full, depth, target)
        else:
            raise UnsupportedSchema(f"unknown named type {name!r}")

    def call(self, number: int, depth: int, target: str | None) -> None:
        if target:
            self.source.emit(depth, f"{target}, p = read_{number}(d, p, n)")
        else:
            self.source.emit(depth, f"p = skip_{number}(d, p, n)")

    def functions(self) -> None:
        """``read_<n>`` and ``skip_<n>`` of each record met so far, and of those they meet."""
        for number, schema, space in self.pending():
            self.function(f"read_{number}", schema, space, keep=None, returns="r, p")
            self.function(f"skip_{number}", schema, space, keep=frozenset(), returns="p")

    def function(
        self,
        name: str,
        schema: dict[str, Any],
        space: str,
        *,
        keep: frozenset[str] | None,
        returns: str,
    ) -> None:
        emit = self.source.emit
        emit(0, f"def {name}(d, p, n):")
        emit(1, "r = {}")
        for field in schema["fields"]:
            kept = keep is None or field["name"] in keep
            self.value(field["type"], space, 1, f"r[{field['name']!r}]" if kept else None)
        emit(1, f"return {returns}")
        emit(0, "")


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "string", "bytes"}


def _fields(schema: dict[str, Any]) -> Iterator[str]:
    for field in schema["fields"]:
        yield str(field["name"])


def compile_reader(schema: dict[str, Any], keep: frozenset[str] | None = None) -> Read:
    """A function that validates a datum of this record schema (its JSON as Python data) and
    gives its top-level fields named in ``keep`` (all of them when None), as fastavro would.

    It raises ``CorruptDatum`` for bytes that are not one value of the schema, leftovers
    included."""
    if schema.get("type") != "record":
        raise UnsupportedSchema("only a record schema is compiled")
    unknown = (keep or frozenset()) - set(_fields(schema))
    if unknown:
        raise UnsupportedSchema(f"no field {sorted(unknown)} to keep")
    generator = _Generator()
    generator.register(schema, "")
    # The top-level record: its own function, keeping only what was asked for.
    generator.function("top", schema, schema.get("namespace", ""), keep=keep, returns="r, p")
    generator.functions()
    scope = generator.source.compiled(
        f"reader of {schema['name']}",
        {
            "_long": _long,
            "_length": _length,
            "_timestamp": timestamp,
            "_corrupt": _corrupt,
            "_FLOAT": _FLOAT,
            "_DOUBLE": _DOUBLE,
        },
    )
    body: Callable[[bytes, int, int], tuple[dict[str, Any], int]] = scope["top"]

    def read(data: bytes, start: int) -> dict[str, Any]:
        size = len(data)
        try:
            record, end = body(data, start, size)
        except IndexError:
            raise CorruptDatum("the datum ends inside a value") from None
        except UnicodeDecodeError as err:
            raise CorruptDatum(f"a string that is not UTF-8: {err.reason}") from None
        except OverflowError as err:  # a timestamp out of datetime's range
            raise CorruptDatum(f"a value out of range: {err}") from None
        if end != size:
            raise CorruptDatum(f"{size - end} bytes left over after the datum")
        return record

    return read
