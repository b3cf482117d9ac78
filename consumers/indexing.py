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
listed. The runner writes it *before* an object it would not cover, so it is
never behind what is stored: a range whose object never got written (a crash in
between) only makes the next owner cut at the same place, which is right either
way.

Not before every object: each write also names the folders the partition's next
objects go to (``open``: the batch's own, those of the same hour kept) and the
offset they start from (``open_from``). An object that starts there or later in
one of those folders needs no new index; the next owner lists those folders
from that offset on (one narrow request each: the names of one partition's
objects sort by their first offset), and a sink that stops cleanly writes the
index once more with nothing open, so its successor lists nothing. A batch in
another folder (a new hour, a new cluster) writes the index first again. So the
store takes one request a batch, not two, at the cost of a short listing after
a crash. Ranges
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
_VERSION = 2
_OPEN_AT_MOST = 16  # open folders named at once; past that, only the batch's own


_HOUR = "%Y-%m-%dT%H"  # the hour of an object's folder (dt=, hour=), since the hour was kept


def _span(entry: list[object]) -> ObjectRange:
    """``[first, last]`` (an index written before hours were kept) or ``[first, last, hour]``."""
    first, last, *hour = entry
    when = datetime.strptime(str(hour[0]), _HOUR).replace(tzinfo=UTC) if hour else None
    return ObjectRange(int(str(first)), int(str(last)), when)


def _hour_part(folder: str) -> str:
    """``dt=.../hour=..`` of an object's folder."""
    return "/".join(folder.split("/")[-2:])


class UnreadableIndex(ValueError):  # noqa: N818 - reads as what it is
    """Bytes that are not an index this version wrote: rebuild it from a listing."""


@dataclass
class PartitionIndex:
    complete_from: int = 0
    ranges: list[ObjectRange] = field(default_factory=list)
    # Folders (below the sink's prefix) where objects starting at or after ``open_from`` may
    # be stored that ``ranges`` does not hold: the next owner lists them.
    open: list[str] = field(default_factory=list)
    open_from: int = 0

    @classmethod
    def rebuilt(cls, written: list[ObjectRange], committed: int) -> PartitionIndex:
        """From a full listing of the partition's objects."""
        index = cls(ranges=sorted(written))
        index.prune(committed)
        return index

    @classmethod
    def parse(cls, data: bytes, *, within: str = "") -> PartitionIndex:
        """An index's bytes; its open folders, if any, must be ``within`` that folder."""
        try:
            document = orjson.loads(data)
            if document["version"] not in (1, _VERSION):  # 1: before folders were left open
                raise UnreadableIndex(f"index version {document['version']}")
            ranges = [_span(entry) for entry in document["ranges"]]
            open_folders = [str(folder) for folder in document.get("open", [])]
            if any(
                ".." in folder.split("/") or not folder.startswith(within)
                for folder in open_folders
            ):
                raise UnreadableIndex(f"open folders outside the topic's: {open_folders}")
            return cls(
                int(document["complete_from"]),
                sorted(ranges),
                open_folders,
                int(document.get("open_from", 0)),
            )
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
                "open": self.open,
                "open_from": self.open_from,
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

    def holds(self, first: int, folders: list[str]) -> bool:
        """Whether the stored index already covers an object from ``first`` in ``folders``:
        it left them open from that offset or before."""
        return first >= self.open_from and set(folders) <= set(self.open)

    def leave_open(self, folders: list[str], after: int) -> None:
        """Before a write of this index: the next objects, from ``after`` on, may go to
        ``folders`` unnoted, and to the folders of the same hour it had open (other
        clusters')."""
        hours = {_hour_part(folder) for folder in folders}
        kept = set(folders) | {folder for folder in self.open if _hour_part(folder) in hours}
        self.open = sorted(kept if len(kept) <= _OPEN_AT_MOST else folders)
        self.open_from = after

    def close(self) -> None:
        """Nothing open: every object this owner wrote is in ``ranges`` (a clean stop)."""
        self.open, self.open_from = [], 0

    def prune(self, committed: int) -> None:
        stale = [span for span in self.ranges if span.last < committed][: -KEEP or None]
        if len(self.ranges) - len(stale) > KEEP * 4:  # a partition replayed from far back
            stale = self.ranges[: len(self.ranges) - KEEP * 4]
        if stale:
            dropped = set(stale)
            self.ranges = [span for span in self.ranges if span not in dropped]
            self.complete_from = max(self.complete_from, max(s.last for s in stale) + 1)
