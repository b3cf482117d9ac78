# The compiled scan's interface (consumers/_scan.pyx), for mypy.
from typing import Any

OPCODES: dict[str, int]

def valid(program: bytes, datum: bytes) -> bool: ...

class Scanner:
    def __init__(
        self,
        by_fingerprint: dict[bytes, tuple[Any, bytes]],
        by_id: dict[int, tuple[Any, bytes]],
    ) -> None: ...
    def scan(self, messages: list[Any]) -> list[Any]: ...
