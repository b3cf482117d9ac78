"""What a partition's objects already written mean for each offset read again. Pure: no I/O.

A record must never be in two objects. After a crash, a rebalance or a replay, a sink
reads again offsets it wrote before; each such offset falls inside a written object
(its span: first to last offset) or between objects. An object is rewritten only
whole, under its own name, so the rewrite replaces it:

- An object is *entered* when its first offset is read again here (a record taken, or
  one that the filter, the time field or the dead-letter topic now leaves out). Every
  record read inside an entered object goes into the rewrite, which keeps the object's
  name (its first and last offset, and its folder's hour) whatever the records now
  left out at either end, and closes once its last offset is read.
- An object whose first offset was not read here (retention moved the log start into
  it, or a consumer was reset past it) cannot be rewritten whole: it stays as it is,
  and the records read inside it are passed over, committed, not written again.
- Between objects, the batching rules (``kafkube.consumers.batching``) apply; a batch
  closes before the next written object's first offset.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import Enum

from kafkube.consumers.naming import ObjectRange


class Place(Enum):
    FREE = "between objects"  # no written object holds the offset: the rules cut here
    REWRITE = "in an object entered here"  # into the object's rewrite
    KEEP = "in an object left as it is"  # its start was not read here: pass it over


@dataclass
class Boundaries:
    """The objects written from a partition's start offset on, in offset order."""

    spans: list[ObjectRange]
    entered: ObjectRange | None = None
    _firsts: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.spans = sorted(self.spans)
        self._firsts = [span.first for span in self.spans]

    def span_of(self, offset: int) -> ObjectRange | None:
        """The written object holding ``offset``, if one does."""
        at = bisect.bisect_right(self._firsts, offset) - 1
        if at >= 0 and self.spans[at].last >= offset:
            return self.spans[at]
        return None

    def free(self, first: int, last: int) -> bool:
        """Whether no written object holds any offset from ``first`` to ``last``."""
        at = bisect.bisect_right(self._firsts, last) - 1
        return at < 0 or self.spans[at].last < first

    def read(self, offset: int) -> tuple[Place, ObjectRange | None]:
        """Where the offset read now falls (offsets come in increasing order)."""
        span = self.span_of(offset)
        if span is None:
            return Place.FREE, None
        if offset == span.first:
            self.entered = span
        return (Place.REWRITE if self.entered == span else Place.KEEP), span
