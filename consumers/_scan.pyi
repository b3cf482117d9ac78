# The compiled scan's interface (consumers/_scan.pyx), for mypy.
from typing import Any

OPCODES: dict[str, int]

def valid(program: bytes, datum: bytes) -> bool: ...
def decode(code: bytes, constants: tuple[tuple[str, ...], ...], datum: bytes) -> dict[str, Any]: ...
def render(code: bytes, constants: tuple[tuple[str, ...], ...], datum: bytes) -> bytes: ...

class Scanner:
    def __init__(
        self,
        by_fingerprint: dict[bytes, tuple[Any, bytes, tuple[tuple[str, ...], ...]]],
        by_id: dict[int, tuple[Any, bytes, tuple[tuple[str, ...], ...]]],
        records: bool = False,
        lines: bool = False,
    ) -> None: ...
    def scan(self, messages: list[Any]) -> list[Any]: ...

COLUMN_KINDS: dict[str, int]

class Column:
    def __init__(self, kind: int, children: list[Column]) -> None: ...
    def finished(self) -> tuple[int, int, bytes | None, list[Any], list[Any]]: ...

def fill(
    code: bytes, constants: tuple[tuple[str, ...], ...], row: Column, datums: list[Any]
) -> None: ...
