"""A schema as a flat program of integers, for the compiled validator of the sinks' fast path
(``kafkube.consumers._scan``). Pure: no I/O.

The compiled validator cannot be generated per schema as the Python reader is (a schema
comes from a registry at run time), so it walks this program instead: one node per type,
each node its opcode followed by its operands, nodes referring to each other by position.
A named record is one node however often it is met, so a recursive schema is a cycle.

It covers exactly what ``kafkube.schemas.reading`` compiles, and checks a datum as the
reader does: the same varint, length, union, boolean, enum and UTF-8 rules, the datum whole
and nothing left over. The compiled code may refuse more than the reader (then the record
takes the Python path, which decides); never less. Beside the integers go the constants the
decoder builds records with: each record's field names and each enum's symbols.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from typing import Any

from kafkube.schemas.writing import UnsupportedSchema, full_name

# Opcodes, and after each its operands.
NULL = 0
BOOLEAN = 1
LONG = 2  # int, long and their logical types: a zig-zag varint
FLOAT = 3
DOUBLE = 4
STRING = 5  # a length, then as many bytes of UTF-8
BYTES = 6  # a length, then as many bytes
ENUM = 7  # symbols: an index below it; then where its symbols are among the constants
RECORD = 8  # fields, where their names are among the constants, then each field's node
ARRAY = 9  # the items' node
MAP = 10  # the values' node (keys are strings)
NULLABLE = 11  # the node of X in ["null", X]
TIMESTAMP = 12  # a timestamp-micros long (read as a datetime in UTC)

_PRIMITIVES = {
    "null": NULL,
    "boolean": BOOLEAN,
    "int": LONG,
    "long": LONG,
    "float": FLOAT,
    "double": DOUBLE,
    "string": STRING,
    "bytes": BYTES,
}


class _Builder:
    def __init__(self) -> None:
        self.code: list[int] = []
        self.constants: list[tuple[str, ...]] = []
        self.named: dict[str, int] = {}  # a named record's or enum's node, by full name

    def node(self, schema: Any, space: str) -> int:  # noqa: ANN401 - JSON
        """The position of ``schema``'s node, written if new."""
        if isinstance(schema, list):
            if len(schema) != 2 or schema[0] != "null":
                raise UnsupportedSchema(f"union {schema!r}: only [null, X] is compiled")
            return self.emit(NULLABLE, lambda: [self.node(schema[1], space)])
        if isinstance(schema, str):
            return self.named_or_primitive(schema, space)
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"schema {schema!r}")
        return self.complex(schema, space)

    def named_or_primitive(self, name: str, space: str) -> int:
        if name in _PRIMITIVES:
            return self.emit(_PRIMITIVES[name])
        full = name if "." in name else f"{space}.{name}".lstrip(".")
        if full not in self.named:
            raise UnsupportedSchema(f"unknown named type {name!r}")
        return self.named[full]

    def complex(self, schema: dict[str, Any], space: str) -> int:
        kind = schema.get("type")
        if kind == "record":
            return self.record(schema, space)
        if kind == "enum":
            symbols = tuple(str(symbol) for symbol in schema["symbols"])
            at = self.emit(ENUM, lambda: [len(symbols), self.constant(symbols)])
            self.named[full_name(schema, space)] = at
            return at
        if kind in {"array", "map"}:
            items = schema["items"] if kind == "array" else schema["values"]
            return self.emit(ARRAY if kind == "array" else MAP, lambda: [self.node(items, space)])
        if kind == "long" and schema.get("logicalType") == "timestamp-micros":
            return self.emit(TIMESTAMP)
        if isinstance(kind, str) and kind in _PRIMITIVES:  # a logical type's base among them
            return self.emit(_PRIMITIVES[kind])
        raise UnsupportedSchema(f"type {kind!r}")

    def constant(self, value: tuple[str, ...]) -> int:
        self.constants.append(value)
        return len(self.constants) - 1

    def record(self, schema: dict[str, Any], space: str) -> int:
        fields = schema["fields"]
        names = self.constant(tuple(str(field["name"]) for field in fields))
        at = len(self.code)
        self.code.extend([RECORD, len(fields), names, *([0] * len(fields))])
        self.named[full_name(schema, space)] = at
        inner = schema.get("namespace", space)
        for number, field in enumerate(fields):
            self.code[at + 3 + number] = self.node(field["type"], inner)
        return at

    def emit(self, opcode: int, operands: Any = None) -> int:  # noqa: ANN401 - a thunk
        """A node: its opcode, then its operands (a thunk, so that the nodes they name are
        written after it)."""
        at = len(self.code)
        self.code.append(opcode)
        if operands is not None:
            slots = len(self.code)
            self.code.append(0)
            values = operands()
            self.code[slots : slots + 1] = values
        return at


@dataclass(frozen=True)
class Program:
    """A schema's program: native 32-bit integers, the top-level record's node first, and the
    names its nodes refer to."""

    code: bytes
    constants: tuple[tuple[str, ...], ...]


def compile_program(schema: dict[str, Any]) -> Program:
    """The program of a record schema (its JSON as Python data)."""
    if schema.get("type") != "record":
        raise UnsupportedSchema("only a record schema is compiled")
    builder = _Builder()
    builder.record(schema, "")
    names = tuple(tuple(sys.intern(name) for name in names) for names in builder.constants)
    return Program(array("i", builder.code).tobytes(), names)
