"""An Avro binary writer built once per schema, for the producer's hot path. Pure: no I/O.

fastavro's writer is generic: for every union it tries the branches in turn
against the value's Python type, which made encoding an event the producer's
largest cost (a third of it on the nested ObjectReference alone). The schema
does not change while the producer runs, so this module turns it, once, into the
source of one Python function per record that writes its fields in a straight run,
each union's branch decided in place: ``None`` is branch 0 of a ``["null", X]``
union, anything else branch 1 (a tree of small closures, its first form, cost a call
per field: 6 µs an event against 4). The bytes are Avro's binary encoding, the same
as fastavro writes (a test compares them on thousands of events and every edge case
of the schema). The schema's names enter the source only as string literals.

Only what the schemas use is compiled: null, boolean, int, long, float,
double, string, bytes, enum, record, map, array, ``["null", X]`` unions and the
timestamp-micros logical type. Anything else raises ``UnsupportedSchema`` at
build time, and the codec falls back to fastavro for that schema version.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
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


class Source:
    """The lines of a generated module, with fresh local names (the compiled writer's and
    the compiled reader's)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.counter = 0

    def name(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def compiled(self, title: str, scope: dict[str, Any]) -> dict[str, Any]:
        """The module's names once run in ``scope``."""
        code = compile("\n".join(self.lines), f"<kafkube {title}>", "exec")
        exec(code, scope)  # noqa: S102 - our own generated source: names only as literals
        return scope


def full_name(schema: dict[str, Any], space: str) -> str:
    """A named type's full name: its own namespace, else the enclosing one."""
    space = schema.get("namespace", space)
    name = str(schema["name"])
    return name if "." in name else f"{space}.{name}".lstrip(".")


class RecordGenerator:
    """What a generator of per-record functions keeps: each named record met, numbered, and
    which have their functions yet."""

    def __init__(self) -> None:
        self.source = Source()
        self.records: dict[str, tuple[int, dict[str, Any], str]] = {}  # name -> number, schema
        self.done: set[str] = set()

    def register(self, schema: dict[str, Any], space: str) -> int:
        name = full_name(schema, space)
        if name not in self.records:
            self.records[name] = (len(self.records), schema, schema.get("namespace", space))
        return self.records[name][0]

    def pending(self) -> Iterator[tuple[int, dict[str, Any], str]]:
        """Each record without its functions yet, those met while writing them included."""
        while len(self.done) < len(self.records):
            for name, (number, schema, space) in list(self.records.items()):
                if name not in self.done:
                    self.done.add(name)
                    yield number, schema, space


def _not_a_symbol(value: object, name: str) -> None:
    raise ValueError(f"{value!r} is not a symbol of {name}")


class _Generator(RecordGenerator):
    """Writes ``write_<n>(o, v)`` for each named record: appends the datum of mapping ``v``
    to bytearray ``o``, one straight run of code per field (unions and strings inline)."""

    def __init__(self) -> None:
        super().__init__()
        self.enums: dict[str, int] = {}  # name -> the number of its symbol table
        self.tables: list[Any] = []  # the generated code's constants: defaults, symbol indexes

    def constant(self, value: Any) -> str:  # noqa: ANN401 - any default
        self.tables.append(value)
        return f"K[{len(self.tables) - 1}]"

    def value(self, schema: Any, space: str, depth: int, x: str) -> None:  # noqa: ANN401 - JSON
        """Code that writes the value in local ``x``."""
        if isinstance(schema, list):
            if len(schema) != 2 or schema[0] != "null":
                raise UnsupportedSchema(f"union {schema!r}: only [null, X] is compiled")
            emit = self.source.emit
            emit(depth, f"if {x} is None:")
            emit(depth + 1, "o.append(0)")
            emit(depth, "else:")
            emit(depth + 1, "o.append(2)")  # branch 1, zig-zag encoded
            self.value(schema[1], space, depth + 1, x)
        elif isinstance(schema, dict):
            self.complex(schema, space, depth, x)
        elif schema in _PRIMITIVE_NAMES:
            self.primitive(schema, depth, x)
        elif isinstance(schema, str):
            full = schema if "." in schema else f"{space}.{schema}".lstrip(".")
            if full in self.records:
                self.source.emit(depth, f"write_{self.records[full][0]}(o, {x})")
            elif full in self.enums:
                self.enum_value(full, depth, x)
            else:
                raise UnsupportedSchema(f"unknown named type {schema!r}")
        else:
            raise UnsupportedSchema(f"schema {schema!r}")

    def complex(self, schema: dict[str, Any], space: str, depth: int, x: str) -> None:
        kind, emit = schema.get("type"), self.source.emit
        if kind == "record":
            emit(depth, f"write_{self.register(schema, space)}(o, {x})")
        elif kind == "enum":
            name = full_name(schema, space)
            self.enums[name] = len(self.tables)
            self.constant({symbol: i for i, symbol in enumerate(schema["symbols"])})
            self.enum_value(name, depth, x)
        elif kind in {"map", "array"}:
            keyed = kind == "map"
            key, item = self.source.name("k"), self.source.name("y")
            emit(depth, f"if {x}:")
            emit(depth + 1, f"_long(o, len({x}))")
            if keyed:
                emit(depth + 1, f"for {key}, {item} in {x}.items():")
                self.primitive("string", depth + 2, key)
            else:
                emit(depth + 1, f"for {item} in {x}:")
            self.value(schema["values" if keyed else "items"], space, depth + 2, item)
            emit(depth, "o.append(0)")
        elif kind == "long" and schema.get("logicalType") == "timestamp-micros":
            emit(depth, f"_timestamp(o, {x})")
        elif isinstance(kind, str) and kind in _PRIMITIVE_NAMES:
            self.primitive(kind, depth, x)
        else:
            raise UnsupportedSchema(f"type {kind!r}")

    def enum_value(self, name: str, depth: int, x: str) -> None:
        emit = self.source.emit
        emit(depth, f"i = K[{self.enums[name]}].get({x})")
        emit(depth, "if i is None:")
        emit(depth + 1, f"_not_a_symbol({x}, {name.rsplit('.', 1)[-1]!r})")
        emit(depth, "_long(o, i)")

    def primitive(self, schema: str, depth: int, x: str) -> None:
        emit = self.source.emit
        if schema in {"int", "long"}:
            emit(depth, f"if 0 <= {x} < 64: o.append({x} << 1)")
            emit(depth, f"else: _long(o, {x})")
        elif schema in {"string", "bytes"}:
            emit(depth, f"b = {x}.encode()" if schema == "string" else f"b = {x}")
            emit(depth, "n = len(b)")
            emit(depth, "if n < 64: o.append(n << 1)")  # a one-byte length: most names
            emit(depth, "else: _long(o, n)")
            emit(depth, "o += b")
        elif schema == "boolean":
            emit(depth, f"o.append(1 if {x} else 0)")
        elif schema in {"float", "double"}:
            emit(depth, f"o += _{schema}({x})")
        else:  # null
            emit(depth, f"if {x} is not None: raise ValueError(f'expected null, got {{{x}!r}}')")

    def functions(self) -> None:
        emit = self.source.emit
        for number, schema, space in self.pending():
            emit(0, f"def write_{number}(o, v):")
            emit(1, "get = v.get")
            for field in schema["fields"]:
                default = self.constant(field.get("default"))
                emit(1, f"x = get({field['name']!r}, {default})")
                self.value(field["type"], space, 1, "x")
            emit(0, "")


def compile_writer(schema: dict[str, Any] | list[Any] | str) -> Write:
    """A function that appends a datum of this record schema (JSON as Python data) to a
    bytearray: one generated function per record, every branch of the schema decided when
    it is built, not per value."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise UnsupportedSchema("only a record schema is compiled")
    generator = _Generator()
    generator.register(schema, "")
    generator.functions()
    scope = generator.source.compiled(
        f"writer of {schema['name']}",
        {
            "K": generator.tables,
            "_long": write_long,
            "_timestamp": _write_timestamp_micros,
            "_not_a_symbol": _not_a_symbol,
            "_float": struct.Struct("<f").pack,
            "_double": struct.Struct("<d").pack,
        },
    )
    write: Write = scope["write_0"]
    return write
