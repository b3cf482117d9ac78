"""When a sink's batch closes. Pure: no I/O, no clock of its own.

A batch holds records of one partition and becomes one object. It closes, whichever comes
first, at ``max_records`` records, at ``max_bytes`` bytes of datums, ``max_age_seconds``
after it opened (also when nothing more arrives), or before a record of another hour or
another writer schema (one hour and one schema per object). A batch that starts where an
object already written starts (a rewrite after a crash, a rebalance or a replay) follows
none of these: it ends exactly at that object's last offset, so the rewrite lands on the
same name with the same bytes.

The runner keeps the Kafka I/O; it asks these rules, with its clock's reading, what to do.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime


@dataclass
class BatchShape:
    """What the rules look at in an open batch."""

    first: int
    hour: datetime
    writer: Hashable  # the writer schema version
    opened: float  # the runner's clock, in seconds
    forced_last: int | None  # a written object starts at ``first``: end where it ended
    records: int = 0
    size: int = 0  # bytes of datums

    def add(self, size: int) -> None:
        self.records += 1
        self.size += size


@dataclass(frozen=True)
class BatchRules:
    max_records: int
    max_bytes: int
    max_age_seconds: float

    def open(
        self,
        offset: int,
        hour: datetime,
        writer: Hashable,
        *,
        now: float,
        boundaries: dict[int, int],
    ) -> BatchShape:
        """A batch that starts at ``offset``: bound to a written object if one starts there."""
        return BatchShape(offset, hour, writer, now, boundaries.get(offset))

    def closes_before(self, batch: BatchShape, hour: datetime, writer: Hashable) -> bool:
        """Whether a record of this hour and writer must go into a new batch."""
        if batch.forced_last is not None:
            return False
        return hour != batch.hour or writer != batch.writer

    def full(self, batch: BatchShape, offset: int) -> bool:
        """Whether the batch closes now, ``offset`` being the last it took."""
        if batch.forced_last is not None:
            return offset >= batch.forced_last
        return batch.records >= self.max_records or batch.size >= self.max_bytes

    def aged(self, batch: BatchShape, now: float) -> bool:
        """Whether the wall-clock rule closes the batch at ``now``."""
        return batch.forced_last is None and now - batch.opened >= self.max_age_seconds
