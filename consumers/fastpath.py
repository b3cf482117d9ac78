"""The sinks' fast path: whether it runs, and the scanner it runs with.

Per record, a sink's Python path frames, checks and batches each consumed message on its
own: 20 µs of interpreter a record. The fast path hands the whole list ``consume()`` gave to
compiled code (``kafkube.consumers._scan``, Cython built by ``make``) that reads each
framing, checks each datum whole against its writer schema's program
(``kafkube.schemas.program``) and gives back runs of datums of one partition, writer and hour;
the runner appends a run to its batch at once. What the scan does not pass (an error, an end
of partition, a schema id not looked up yet, a datum its check refuses) comes back as the
message it was, and takes the Python path, which decides: a dead letter, a lookup, a retry.

The two paths write the same bytes: the objects are cut by the same rules at the same
records, and a datum is the same bytes copied or viewed. The fast path runs where a sink
needs a record's bytes alone (Avro output) or the whole record (Parquet, Iceberg: the scan
builds it as the Python reader does; JSON Lines: it writes the record's line of JSON straight
from the datum, as orjson writes it from that record), with no filter, the record's own time
and the topic layout. The Python path is taken everywhere else, and wherever the extension
is not built (no C compiler) or ``KAFKUBE_PURE_PYTHON=1`` asks for it (CI runs the contract
and fuzz tests both ways).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafkube.core.compiled import pure_python_asked
from kafkube.schemas.codec import Codec, SchemaVersion

try:
    from kafkube.consumers import _scan
except ImportError:  # not built here: the Python path
    _scan = None  # type: ignore[assignment]

# A run of records the scan passed: its topic, partition, writer schema, hour (in hours
# since the epoch), datums, offsets, their bytes, its messages' positions in the list, and
# the records built or their lines of JSON (None where only the bytes are wanted).
Run = tuple[str, int, SchemaVersion, int, list[bytes], list[int], int, int, int, list[Any] | None]


def built() -> bool:
    """Whether the compiled scan is importable here."""
    return _scan is not None


def compiled() -> Any:  # noqa: ANN401 - the extension module
    """The compiled module, for what builds on it (the Parquet columns); only where built."""
    if _scan is None:
        raise RuntimeError("kafkube.consumers._scan is not built here")
    return _scan


def wanted() -> bool:
    """Whether this process may take the fast path: built, and not told otherwise."""
    return built() and not pure_python_asked()


class FastScan:
    """The compiled scan over the writer schemas ``codec`` knows that it may pass: those of
    the reader's own schema (any other is resolved by fastavro, in Python), each with its
    program; a registry id learned later (by the Python path) is taken in at the next scan."""

    def __init__(self, codec: Codec, *, records: bool = False, lines: bool = False) -> None:
        self.codec = codec
        self.records = records  # whether each record is built whole too
        self.lines = lines  # whether each is rendered as its line of JSON instead
        self._known = -1
        self._scanner: Any = None

    def scan(self, messages: Sequence[Any]) -> list[Any]:
        """Runs (``Run``) and messages passed back, in the messages' order."""
        known = self.codec.known_count()
        if known != self._known:
            self._known, self._scanner = known, self._made()
        return self._scanner.scan(messages)  # type: ignore[no-any-return]

    def _made(self) -> Any:  # noqa: ANN401 - the extension's type
        by_fingerprint, by_id = {}, {}
        for key, writer in self.codec.writers():
            program = writer.program
            if program is None or writer.fingerprint != self.codec.reader.fingerprint:
                continue
            if isinstance(key, int):
                by_id[key] = (writer, program.code, program.constants)
            else:
                by_fingerprint[key] = (writer, program.code, program.constants)
        return _scan.Scanner(by_fingerprint, by_id, records=self.records, lines=self.lines)
