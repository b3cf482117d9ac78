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
