"""A live count of a topic's committed records, for watching sinks catch up (the demo).

It reads from given offsets with read_committed, keeps every offset it saw per
partition, and answers how many records a group with given committed offsets has
not committed yet, and whether the count reached the partitions' record ends.
"""

from __future__ import annotations

import bisect
import contextlib
import threading

from confluent_kafka import Consumer, TopicPartition

from kafkube.core.registry import SchemaRegistry
from kafkube.schemas.codec import Codec, DecodeError


class TopicTally(threading.Thread):
    """Reads the committed records of the topic from given offsets and keeps their offsets."""

    def __init__(
        self,
        kafka: dict[str, str],
        topic: str,
        starts: dict[int, int],
        registry: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name="kafkube-demo-tally", daemon=True)
        self._consumer = Consumer(
            {
                **kafka,
                "group.id": "kafkube-demo-tally",  # assign() only: nothing is committed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        self._offsets: dict[int, list[int]] = {p: [] for p in starts}
        self._starts = dict(starts)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.occurrences: set[tuple[str, str]] = set()
        self.error: str | None = None
        self._registry = registry

    def run(self) -> None:
        try:
            with contextlib.ExitStack() as closing:
                lookup = None
                if self._registry is not None:
                    lookup = closing.enter_context(SchemaRegistry(self._registry)).schema
                self._count(Codec(lookup=lookup))
        except Exception as err:  # noqa: BLE001 - shown to the user, the demo then stops
            self.error = str(err)
        finally:
            self._consumer.close()

    def _count(self, codec: Codec) -> None:
        while not self._halt.is_set():
            message = self._consumer.poll(0.3)
            if message is None or message.error() is not None:
                continue
            partition, offset = message.partition() or 0, message.offset() or 0
            with self._lock:
                self._offsets[partition].append(offset)
            try:
                record = codec.decode(message.value() or b"")
                self.occurrences.add((record["uid"], record["resource_version"]))
            except DecodeError:
                pass  # the sinks send it to the dead-letter topic; it is not an event

    def halt(self) -> None:
        self._halt.set()
        self.join(10)

    def total(self) -> int:
        with self._lock:
            return sum(len(offsets) for offsets in self._offsets.values())

    def behind(self, committed: dict[int, int | None]) -> int:
        """Records counted here that a group with these committed offsets has not committed."""
        with self._lock:
            return sum(
                len(offsets) - bisect.bisect_left(offsets, committed.get(p) or 0)
                for p, offsets in self._offsets.items()
            )

    def reached(self, records_ends: dict[int, int]) -> bool:
        with self._lock:
            return all(
                (offsets[-1] + 1 if offsets else self._starts[p]) >= records_ends[p]
                for p, offsets in self._offsets.items()
            )
