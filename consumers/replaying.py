"""Where an offset reset moves each partition of a sink group. Pure: no I/O.

The rules are those of Kafka's own ``kafka-consumer-groups --reset-offsets``: a
target outside the partition's log is clamped to its start or end, a partition
the group never committed counts as being at the log start (the sinks read from
the earliest offset), and ``--to-datetime`` takes the first record at or after
that time, or the log end when none is that late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kafkube.core.errors import ConfigError

ResetKind = Literal["earliest", "latest", "datetime", "offset", "shift"]


@dataclass(frozen=True)
class ResetTarget:
    kind: ResetKind
    offset: int = 0  # --to-offset N, or --shift-by N
    moment: datetime | None = None  # --to-datetime
    partition: int | None = None  # --to-offset only this partition; None: every partition

    def __post_init__(self) -> None:
        if self.kind == "datetime" and (self.moment is None or self.moment.tzinfo is None):
            raise ConfigError("to_datetime", "needs a time with its zone, e.g. 2026-11-25T10:00Z")
        if self.kind == "offset" and self.offset < 0:
            raise ConfigError("to_offset", f"must be 0 or more, got {self.offset}")
        if self.partition is not None and self.kind != "offset":
            raise ConfigError("partition", "goes with --to-offset only")


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition of the topic as a group sees it."""

    partition: int
    committed: int | None  # None: the group never committed here
    start: int  # the log start offset
    end: int  # the log end offset (transaction markers included)
    records_end: int  # the offset after the last committed record (markers not counted)

    @property
    def position(self) -> int:
        """Where the group would read next."""
        return self.start if self.committed is None else max(self.committed, self.start)

    @property
    def lag(self) -> int:
        """Records the group has not committed yet; 0 once it passed the last record."""
        return max(0, self.records_end - self.position)


@dataclass(frozen=True)
class Move:
    partition: int
    before: int | None
    after: int
    end: int

    @property
    def changes(self) -> bool:
        return self.before != self.after


def plan(
    partitions: list[PartitionOffsets],
    target: ResetTarget,
    *,
    at_time: dict[int, int] | None = None,
) -> list[Move]:
    """The new offset of each partition; ``at_time`` is Kafka's answer for ``--to-datetime``
    (the first offset at or after the moment per partition, -1 where there is none)."""
    known = {p.partition for p in partitions}
    if target.partition is not None and target.partition not in known:
        raise ConfigError(
            "partition", f"the topic has partitions {sorted(known)}, not {target.partition}"
        )
    moves = []
    for p in partitions:
        if target.partition is not None and p.partition != target.partition:
            continue
        if target.kind == "earliest":
            wanted = p.start
        elif target.kind == "latest":
            wanted = p.end
        elif target.kind == "offset":
            wanted = target.offset
        elif target.kind == "shift":
            wanted = p.position + target.offset
        else:
            found = (at_time or {}).get(p.partition, -1)
            wanted = p.end if found < 0 else found
        moves.append(Move(p.partition, p.committed, min(max(wanted, p.start), p.end), p.end))
    return moves
