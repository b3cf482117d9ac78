"""A small index per partition of what a sink wrote, so recovery does not list its history.

Pure: no I/O. At every assignment the runner must know the objects of the
partition that end at or after the committed offset: a batch that starts where
one of them starts must end where it ended, so the rewrite lands on the same
name (``kafkube.consumers.naming.start_offset``). Listing every object under the
topic's prefix gives that, but takes time and requests that grow with the
history (a year of 1-minute objects over 6 partitions is 3 million names).

The index is one small object per partition and output format, beside the
output (``_kafkube/index/...``: Hive, Spark, DuckDB and pyarrow skip names that
start with ``_``). It holds the offset ranges of the partition's latest objects
and ``complete_from``: every object whose last offset is at or after it is
listed. The runner writes it *before* each object, so it is never behind what
is stored: a range whose object never got written (a crash in between) only
makes the next owner cut at the same place, which is right either way. Ranges
that end before the committed offset can no longer matter to a restart and are
dropped, all but the latest ``KEEP`` (so a short replay still finds them); a
committed offset before ``complete_from`` (a replay further back, or an index
lost) falls back to a full listing, and the index is rebuilt from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from kafkube.consumers.naming import ObjectRange

KEEP = 256  # ranges kept however old: a replay this far back needs no listing
_VERSION = 1


_HOUR = "%Y-%m-%dT%H"  # the hour of an object's folder (dt=, hour=), since the hour was kept


def _span(entry: list[object]) -> ObjectRange:
    """``[first, last]`` (an index written before hours were kept) or ``[first, last, hour]``."""
    first, last, *hour = entry
    when = datetime.strptime(str(hour[0]), _HOUR).replace(tzinfo=UTC) if hour else None
    return ObjectRange(int(str(first)), int(str(last)), when)


class UnreadableIndex(ValueError):  # noqa: N818 - reads as what it is
    """Bytes that are not an index this version wrote: rebuild it from a listing."""


@dataclass
class PartitionIndex:
    complete_from: int = 0
    ranges: list[ObjectRange] = field(default_factory=list)

    @classmethod
    def rebuilt(cls, written: list[ObjectRange], committed: int) -> PartitionIndex:
        """From a full listing of the partition's objects."""
        index = cls(ranges=sorted(written))
        index.prune(committed)
        return index

    @classmethod
    def parse(cls, data: bytes) -> PartitionIndex:
        try:
            document = orjson.loads(data)
            if document["version"] != _VERSION:
                raise UnreadableIndex(f"index version {document['version']}")
            ranges = [_span(entry) for entry in document["ranges"]]
            return cls(int(document["complete_from"]), sorted(ranges))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise UnreadableIndex(f"unreadable index: {err}") from err

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "version": _VERSION,
                "complete_from": self.complete_from,
                "ranges": [
                    [span.first, span.last]
                    + ([] if span.hour is None else [f"{span.hour:{_HOUR}}"])
                    for span in self.ranges
                ],
            }
        )

    def covers(self, committed: int) -> bool:
        """Whether every object that can matter to a start at ``committed`` is listed."""
        return committed >= self.complete_from

    def add(self, span: ObjectRange, committed: int) -> None:
        """Note an object about to be written; drop what can no longer matter."""
        if span not in self.ranges:
            self.ranges.append(span)
            self.ranges.sort()
        elif span.hour is not None:  # a rewrite: the object's folder, now known
            self.ranges[self.ranges.index(span)] = span
        self.prune(committed)

    def prune(self, committed: int) -> None:
        stale = [span for span in self.ranges if span.last < committed][: -KEEP or None]
        if len(self.ranges) - len(stale) > KEEP * 4:  # a partition replayed from far back
            stale = self.ranges[: len(self.ranges) - KEEP * 4]
        if stale:
            dropped = set(stale)
            self.ranges = [span for span in self.ranges if span not in dropped]
            self.complete_from = max(self.complete_from, max(s.last for s in stale) + 1)
