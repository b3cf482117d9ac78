# The compiled one pass's interface (producer/_convert.pyx), for mypy.
from collections.abc import Callable
from typing import Any

VERSION: int

class Converter:
    def __init__(
        self,
        header: bytes,
        cluster: str,
        producer_id: str,
        core_by_default: bool,
        micros_of: Callable[[str], int | None],
    ) -> None: ...
    def convert(
        self, event: dict[str, Any], watch_type: str, now: float
    ) -> tuple[bytes, str, str, int | None, tuple[str, str], bytes] | None: ...
    def convert_line(
        self, line: bytes, now: float
    ) -> tuple[str, tuple[bytes, str, str, int | None, tuple[str, str], bytes]] | None: ...
