"""An Avro binary writer built once per schema, for the producer's hot path. Pure: no I/O.

fastavro's writer is generic: for every union it tries the branches in turn
against the value's Python type, which made encoding an event the producer's
largest cost (a third of it on the nested ObjectReference alone). The schema
does not change while the producer runs, so this module turns it into a tree of
small closures once, each of which knows its branch: ``None`` is branch 0 of a
``["null", X]`` union, anything else branch 1. The bytes are Avro's binary
encoding, the same as fastavro writes (a test compares them on thousands of
events and every edge case of the schema).

Only what the schemas use is compiled: null, boolean, int, long, float,
double, string, bytes, enum, record, map, array, ``["null", X]`` unions and the
timestamp-micros logical type. Anything else raises ``UnsupportedSchema`` at
build time, and the codec falls back to fastavro for that schema version.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

Write = Callable[[bytearray, Any], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PRIMITIVE_NAMES = {"null", "boolean", "int", "long", "float", "double", "string", "bytes"}


class UnsupportedSchema(ValueError):  # noqa: N818 - reads as what it is
    """The schema uses something this writer does not compile; use fastavro for it."""


def write_long(out: bytearray, value: int) -> None:
    """Avro's zig-zag varint."""
    if 0 <= value < 64:
        out.append(value << 1)
        return
    encoded = (value << 1) ^ (value >> 63)
    while encoded > 0x7F:
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded)


def _write_string(out: bytearray, value: str) -> None:
    data = value.encode()
    size = len(data)
    if size < 64:  # a one-byte length: most names, reasons and versions
        out.append(size << 1)
    else:
        write_long(out, size)
    out += data


def _write_optional_string(out: bytearray, value: str | None) -> None:
    """``["null", "string"]``, the schema's most common field, in one call."""
    if value is None:
        out.append(0)
        return
    data = value.encode()
    size = len(data)
    out.append(2)
    if size < 64:
        out.append(size << 1)
    else:
        write_long(out, size)
    out += data


def _write_bytes(out: bytearray, value: bytes) -> None:
    write_long(out, len(value))
    out += value


def _write_boolean(out: bytearray, value: bool) -> None:  # noqa: FBT001 - a value, not a flag
    out.append(1 if value else 0)


def _write_null(out: bytearray, value: None) -> None:  # noqa: ARG001 - null writes no bytes
    if value is not None:
        raise ValueError(f"expected null, got {value!r}")


def _write_float(out: bytearray, value: float) -> None:
    out += struct.pack("<f", value)


def _write_double(out: bytearray, value: float) -> None:
    out += struct.pack("<d", value)


_TIMESTAMPS: dict[datetime, bytes] = {}
_TIMESTAMPS_KEPT = 4096


def _write_timestamp_micros(out: bytearray, value: datetime | int) -> None:
    if not isinstance(value, datetime):
        write_long(out, value)
        return
    # An event's times mostly repeat its neighbours' (and are the same objects: the
    # producer caches parsing them); their encoding is kept, a few thousand at most.
    encoded = _TIMESTAMPS.get(value)
    if encoded is None:
        if value.tzinfo is None:
            raise ValueError(f"timestamp without a time zone: {value!r}")
        fresh = bytearray()
        write_long(fresh, (value - _EPOCH) // _MICROSECOND)
        if len(_TIMESTAMPS) >= _TIMESTAMPS_KEPT:
            _TIMESTAMPS.clear()
        encoded = _TIMESTAMPS[value] = bytes(fresh)
    out += encoded


_PRIMITIVES: dict[str, Write] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "int": write_long,
    "long": write_long,
    "float": _write_float,
    "double": _write_double,
    "string": _write_string,
    "bytes": _write_bytes,
}


class _Builder:
    def __init__(self) -> None:
        self.named: dict[str, Write] = {}
        self.pending: dict[str, list[Write]] = {}

    def build(self, schema: Any, namespace: str = "") -> Write:  # noqa: ANN401, PLR0911 - JSON
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            return self._reference(schema if "." in schema else f"{namespace}.{schema}".lstrip("."))
        kind = schema.get("type")
        if schema.get("logicalType") == "timestamp-micros" and kind == "long":
            return _write_timestamp_micros
        if kind in _PRIMITIVE_NAMES:
            return self.build(kind, namespace)
        if kind == "record":
            return self._record(schema, namespace)
        if kind == "enum":
            return self._enum(schema, namespace)
        if kind == "map":
            return self._map(self.build(schema["values"], namespace))
        if kind == "array":
            return self._array(self.build(schema["items"], namespace))
        raise UnsupportedSchema(f"type {kind!r}")

    def _reference(self, name: str) -> Write:
        if name not in self.named:
            raise UnsupportedSchema(f"unknown named type {name!r}")
        return self.named[name]

    def _union(self, branches: list[Any], namespace: str) -> Write:
        if len(branches) != 2 or branches[0] != "null":
            raise UnsupportedSchema(f"union {branches!r}: only [null, X] is compiled")
        if branches[1] == "string":
            return _write_optional_string
        other = self.build(branches[1], namespace)

        def write_optional(out: bytearray, value: Any) -> None:  # noqa: ANN401
            if value is None:
                out.append(0)
            else:
                out.append(2)  # branch 1, zig-zag encoded
                other(out, value)

        return write_optional

    def _record(self, schema: dict[str, Any], namespace: str) -> Write:
        space = schema.get("namespace", namespace)
        name = schema["name"] if "." in schema["name"] else f"{space}.{schema['name']}".lstrip(".")
        fields: list[tuple[str, Write, Any]] = []

        def write_record(out: bytearray, value: Mapping[str, Any]) -> None:
            for field, write, default in fields:
                write(out, value.get(field, default))

        self.named[name] = write_record  # before its fields: a field may refer to it
        fields.extend(
            (field["name"], self.build(field["type"], space), field.get("default"))
            for field in schema["fields"]
        )
        return write_record

    def _enum(self, schema: dict[str, Any], namespace: str) -> Write:
        index = {symbol: position for position, symbol in enumerate(schema["symbols"])}

        def write_enum(out: bytearray, value: str) -> None:
            try:
                write_long(out, index[value])
            except KeyError:
                raise ValueError(f"{value!r} is not a symbol of {schema['name']}") from None

        space = schema.get("namespace", namespace)
        name = schema["name"] if "." in schema["name"] else f"{space}.{schema['name']}".lstrip(".")
        self.named[name] = write_enum
        return write_enum

    @staticmethod
    def _map(values: Write) -> Write:
        def write_map(out: bytearray, value: Mapping[str, Any]) -> None:
            if value:
                write_long(out, len(value))
                for key, item in value.items():
                    _write_string(out, key)
                    values(out, item)
            out.append(0)

        return write_map

    @staticmethod
    def _array(items: Write) -> Write:
        def write_array(out: bytearray, value: list[Any]) -> None:
            if value:
                write_long(out, len(value))
                for item in value:
                    items(out, item)
            out.append(0)

        return write_array


def compile_writer(schema: dict[str, Any] | list[Any] | str) -> Write:
    """A function that appends a datum of this schema (JSON as Python data) to a bytearray."""
    return _Builder().build(schema)
