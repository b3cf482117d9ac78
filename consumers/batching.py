"""When a sink's batch closes. Pure: no I/O, no clock of its own.

A batch holds records of one partition and becomes one object. It closes, whichever comes
first, at ``max_records`` records, at ``max_bytes`` bytes of datums, ``max_age_seconds``
after it opened (also when nothing more arrives), or before a record of another hour or
another writer schema (one hour and one schema per object). A batch that starts where an
object already written starts (a rewrite after a crash, a rebalance or a replay) follows
none of these: it is that object's rewrite, named by the object's offsets and hour, and ends
at its last offset (``kafkube.consumers.boundaries`` says which records belong to it).

The runner keeps the Kafka I/O; it asks these rules, with its clock's reading, what to do.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import Field

from kafkube.consumers.naming import ObjectRange
from kafkube.core.settings import Section


@dataclass
class BatchShape:
    """What the rules look at in an open batch."""

    first: int
    hour: datetime
    writer: Hashable  # the writer schema version
    opened: float  # the runner's clock, in seconds
    forced: ObjectRange | None  # the rewrite of this written object: its name and its end
    records: int = 0
    size: int = 0  # bytes of datums

    def add(self, size: int) -> None:
        self.records += 1
        self.size += size


class Rotation(Section):
    """When a sink closes an object: whichever limit comes first. The configuration's
    ``sinks.<type>.rotation`` section, and the rules the runner asks."""

    max_records: Annotated[int, Field(ge=1)] = Field(50_000, description="Records an object.")
    max_bytes: Annotated[int, Field(ge=1024)] = Field(64 << 20, description="Bytes an object.")
    max_age_seconds: Annotated[float, Field(gt=0, le=86_400)] = Field(
        60.0, description="Seconds after an object's first record."
    )

    def open(
        self,
        offset: int,
        hour: datetime,
        writer: Hashable,
        *,
        now: float,
        rewrite: ObjectRange | None = None,
    ) -> BatchShape:
        """A batch whose first record is at ``offset`` (of ``hour``); or the ``rewrite`` of
        an object written before, which keeps that object's first offset and hour."""
        if rewrite is None:
            return BatchShape(offset, hour, writer, now, None)
        return BatchShape(rewrite.first, rewrite.hour or hour, writer, now, rewrite)

    def last(self, batch: BatchShape, offset: int) -> int:
        """The last offset a batch names, ``offset`` being the last record it took."""
        return offset if batch.forced is None else batch.forced.last

    def closes_before(self, batch: BatchShape, hour: datetime, writer: Hashable) -> bool:
        """Whether a record of this hour and writer must go into a new batch."""
        if batch.forced is not None:
            return False
        return hour != batch.hour or writer != batch.writer

    def full(self, batch: BatchShape, offset: int) -> bool:
        """Whether the batch closes now, ``offset`` being the last it took."""
        if batch.forced is not None:
            return offset >= batch.forced.last
        return batch.records >= self.max_records or batch.size >= self.max_bytes

    def aged(self, batch: BatchShape, now: float) -> bool:
        """Whether the wall-clock rule closes the batch at ``now``."""
        return batch.forced is None and now - batch.opened >= self.max_age_seconds
