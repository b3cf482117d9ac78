"""Where each sink group stands on the topic, and moving it: Kafka's admin API, nothing else.

Lag is counted in records. On a topic written in transactions the log end sits
one transaction marker past the last record, so ``end - committed`` (what
Kafka's own tool prints) never reaches 0; here the end of the records is read
from the tail of each partition with read_committed, and lag is measured to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self, TypeVar

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

# OffsetSpec is documented under confluent_kafka.admin, which does not re-export it for mypy.
from confluent_kafka.admin._listoffsets import OffsetSpec

from kafkube.consumers.replaying import Move, PartitionOffsets
from kafkube.core.errors import ConfigError, KafkubeError
from kafkube.core.waiting import Deadline

T = TypeVar("T")

_TIMEOUT = 30.0
_TAIL = 64  # records read back from a partition's end to find its last record
# A topic just created, or a coordinator just elected, answers these for a moment.
_SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    # A partition's leader just moved or made: the broker asked has not caught up with the
    # epoch the client knows (the demo met it listing a new topic's offsets, and exited 1).
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.FENCED_LEADER_EPOCH,
}
_IDLE = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN}


class GroupBusyError(KafkubeError):
    """The group has live members; moving its offsets under them would be lost or fought over."""

    retriable = True


@dataclass(frozen=True)
class GroupPosition:
    group: str
    state: str  # Stable, Empty, PreparingRebalance, ...
    members: list[str]  # client id @ host of each live member
    partitions: list[PartitionOffsets]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "lag": self.lag,
            "partitions": [
                {
                    "partition": p.partition,
                    "committed": p.committed,
                    "start": p.start,
                    "end": p.end,
                    "records_end": p.records_end,
                    "lag": p.lag,
                }
                for p in self.partitions
            ],
        }


def _state_name(state: ConsumerGroupState) -> str:
    return {
        ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
        ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    }.get(state, state.name.capitalize())


class Offsets:
    """One admin connection to the cluster, for status and replay."""

    def __init__(self, kafka: dict[str, str], topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self._admin = AdminClient(dict(kafka))
        self._tail: Consumer | None = None
        self._partitions: list[int] = []

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _result(self, call: Callable[[], T], what: str) -> T:
        """Kafka's answer, asking again while a coordinator loads; a clear error otherwise."""
        deadline = Deadline(60)
        while True:
            try:
                return call()
            except TimeoutError as err:  # a future's own wait ended: Kafka slow or away
                if deadline.passed():
                    raise KafkubeError(f"{what}: no answer from Kafka in time") from err
            except KafkaException as err:
                error = err.args[0]
                loading = isinstance(error, KafkaError) and (
                    error.code() in _SETTLING or error.retriable()
                )
                if not loading or deadline.passed():
                    raise KafkubeError(f"{what}: {error}") from err
            time.sleep(0.5)

    def partitions(self) -> list[int]:
        if not self._partitions:
            metadata = self._result(
                lambda: self._admin.list_topics(self.topic, timeout=_TIMEOUT), "listing topics"
            )
            found = metadata.topics.get(self.topic)
            if found is None or found.error is not None or not found.partitions:
                raise ConfigError("topic", f"topic {self.topic!r} does not exist")
            self._partitions = sorted(found.partitions)
        return self._partitions

    def _list_offsets(self, spec: Callable[[], OffsetSpec]) -> dict[int, int]:
        def ask() -> dict[int, int]:  # the whole request again on a retry: a future keeps its error
            request = {TopicPartition(self.topic, p): spec() for p in self.partitions()}
            futures = self._admin.list_offsets(request, request_timeout=_TIMEOUT)
            return {tp.partition: int(f.result(_TIMEOUT).offset) for tp, f in futures.items()}

        return self._result(ask, "listing offsets")

    def log_bounds(self) -> tuple[dict[int, int], dict[int, int]]:
        """The start and end offset of each partition."""
        return self._list_offsets(OffsetSpec.earliest), self._list_offsets(OffsetSpec.latest)

    def at_time(self, moment: datetime) -> dict[int, int]:
        """The first offset at or after ``moment`` in each partition, -1 where none is."""
        millis = int(moment.timestamp() * 1000)
        return self._list_offsets(lambda: OffsetSpec.for_timestamp(millis))

    def records_ends(self, starts: dict[int, int], ends: dict[int, int]) -> dict[int, int]:
        """The offset after the last committed record of each partition, read from its tail."""
        if self._tail is None:
            self._tail = Consumer(
                {
                    **self.kafka,
                    "group.id": "kafkube-status",  # assign() only: nothing is ever committed
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                }
            )
        result = {}
        for partition, end in ends.items():
            window, found = _TAIL, -1
            while found < 0:
                begin = max(starts[partition], end - window)
                found = self._last_record(partition, begin, end)
                if begin <= starts[partition]:
                    break
                window *= 8
            result[partition] = found + 1 if found >= 0 else starts[partition]
        return result

    def _last_record(self, partition: int, begin: int, end: int) -> int:
        assert self._tail is not None  # noqa: S101 - records_ends made it
        if begin >= end:
            return -1
        self._tail.assign([TopicPartition(self.topic, partition, begin)])
        last, deadline = -1, Deadline(_TIMEOUT)
        try:
            while not deadline.passed():
                message = self._tail.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                        return last
                    raise KafkubeError(f"reading the end of {self.topic}/{partition}: {error}")
                last = message.offset() or 0
            raise KafkubeError(f"reading the end of {self.topic}/{partition} took over 30 s")
        finally:
            self._tail.unassign()

    def committed(self, group: str) -> dict[int, int | None]:
        """The group's committed offsets; None where it never committed.

        A group that does not exist is asked for by DescribeGroups first, never by
        OffsetFetch: librdkafka's admin client can crash the process (SIGSEGV) when an
        OffsetFetch for an unknown group meets NOT_COORDINATOR (librdkafka issue seen as
        confluent-kafka-python #1982)."""
        state, _members = self.members(group)
        return self._committed(group, state)

    def _committed(self, group: str, state: str) -> dict[int, int | None]:
        """``committed`` for a group already described as being in ``state``."""
        if state == _state_name(ConsumerGroupState.DEAD):
            return dict.fromkeys(self.partitions())
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(self.topic, p) for p in self.partitions()]
        )
        result = self._result(
            lambda: self._admin.list_consumer_group_offsets([request])[group].result(_TIMEOUT),
            f"reading the offsets of group {group}",
        )
        return {
            tp.partition: None if tp.offset in {OFFSET_INVALID, -1} else tp.offset
            for tp in result.topic_partitions
        }

    def members(self, group: str) -> tuple[str, list[str]]:
        described = self._result(
            lambda: self._admin.describe_consumer_groups([group])[group].result(_TIMEOUT),
            f"describing group {group}",
        )
        members = [f"{m.client_id}@{m.host.lstrip('/')}" for m in described.members]
        return _state_name(described.state), members

    def groups(self) -> list[str]:
        """Every consumer group that has committed an offset on this topic."""
        listed = self._result(
            lambda: self._admin.list_consumer_groups(request_timeout=_TIMEOUT).result(_TIMEOUT),
            "listing consumer groups",
        )
        names = sorted(g.group_id for g in listed.valid)
        return [name for name in names if any(v is not None for v in self.committed(name).values())]

    def position(
        self, group: str, *, bounds: tuple[dict[int, int], dict[int, int]] | None = None
    ) -> GroupPosition:
        """The group's offsets against the log; pass ``bounds`` to reuse one reading of the log."""
        starts, ends = bounds if bounds is not None else self.log_bounds()
        records_ends = self.records_ends(starts, ends)
        state, members = self.members(group)
        committed = self._committed(group, state)
        return GroupPosition(
            group,
            state,
            members,
            [
                PartitionOffsets(p, committed.get(p), starts[p], ends[p], records_ends[p])
                for p in self.partitions()
            ],
        )

    def check_idle(self, group: str) -> None:
        """Refuse, as Kafka's own tool does, to touch a group that has live members."""
        state, members = self.members(group)
        if members or not any(state == _state_name(idle) for idle in _IDLE):
            raise GroupBusyError(
                f"group {group} is {state} with {len(members)} live member(s) "
                f"({', '.join(members) or 'rebalancing'}): stop its sinks, then replay"
            )

    def move(self, group: str, moves: list[Move]) -> None:
        """Commit the new offsets for the group; refused while it has live members."""
        self.check_idle(group)
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(self.topic, m.partition, m.after) for m in moves]
        )
        self._result(
            lambda: self._admin.alter_consumer_group_offsets([request])[group].result(_TIMEOUT),
            f"moving the offsets of group {group}",
        )
