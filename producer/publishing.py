"""Kafka edge of the producer: one transaction per batch, events and state together.

``init_transactions`` fences any older producer with the same transactional id
(a zombie that still thinks it leads) and aborts what it left open; the state
topic is read back only after that, with read_committed, so it is exactly the
state of the last committed batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kafkube.producer.dedup import StateUpdate
from kafkube.schemas.errors import KafkubeError

log = logging.getLogger(__name__)
# librdkafka's own lines go through Python logging (text or JSON like the rest), not stderr.
RDKAFKA_LOG = logging.getLogger("kafkube.librdkafka")


class PublishError(KafkubeError):
    """Kafka refused a batch; it was aborted and nothing of it is visible."""

    retriable = True


class FencedError(KafkubeError):
    """Another producer with the same transactional id took over; this one must stop."""

    retriable = False


def ensure_topic(
    admin_config: Mapping[str, Any], name: str, *, partitions: int, config: dict[str, str]
) -> None:
    """Create the topic if it is missing; an existing topic is left as it is."""
    admin = AdminClient(dict(admin_config))
    if name in admin.list_topics(timeout=30).topics:
        return
    future = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=-1, config=config)]
    )[name]
    try:
        future.result(30)
    except KafkaException as err:
        if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    log.info("created topic %s with %d partitions", name, partitions)


@dataclass(frozen=True)
class StateRead:
    records: int
    last_written: datetime | None  # when the newest state record was written: the last publish


def read_state(
    consumer_config: Mapping[str, Any], topic: str, apply: Callable[[bytes, bytes | None], None]
) -> StateRead:
    """Read the compacted state topic from its start to its end, handing each record to apply."""
    consumer = Consumer(
        {
            **consumer_config,
            "group.id": "kafkube-producer-state-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "logger": RDKAFKA_LOG,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = list(metadata.topics[topic].partitions)
        ends = {}
        for p in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            ends[p] = high
        pending = {p for p, high in ends.items() if high > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        count, newest = 0, 0
        deadline = time.monotonic() + 120
        while pending:
            if time.monotonic() > deadline:
                raise PublishError(f"could not read the state topic {topic} within 120 s")
            message = consumer.poll(1.0)
            if message is None:
                continue
            error, partition = message.error(), message.partition() or 0
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    pending.discard(partition)
                    continue
                raise PublishError(f"reading the state topic: {error}")
            apply(message.key() or b"", message.value())
            count += 1
            newest = max(newest, message.timestamp()[1])
            if (message.offset() or 0) + 1 >= ends[partition]:
                pending.discard(partition)
        last = datetime.fromtimestamp(newest / 1000, UTC) if newest > 0 else None
        return StateRead(count, last)
    finally:
        consumer.close()


class TransactionalPublisher:
    def __init__(self, producer_config: Mapping[str, Any], *, topic: str, state_topic: str) -> None:
        self.topic = topic
        self.state_topic = state_topic
        self._producer = Producer(
            {
                **producer_config,
                "enable.idempotence": True,
                "acks": "all",
                "logger": RDKAFKA_LOG,
            }
        )
        self._open = False

    def init(self, timeout: float = 60.0) -> None:
        try:
            self._producer.init_transactions(timeout)
        except KafkaException as err:
            raise PublishError(f"initialising transactions: {err}") from err

    def publish(
        self,
        events: Sequence[tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]],
        state: Sequence[StateUpdate],
    ) -> None:
        """Write events (key, value, headers) and state updates atomically, or none of them."""
        try:
            self._producer.begin_transaction()
            self._open = True
            for key, value, headers in events:
                self._produce(self.topic, key, value, headers)
            for update in state:
                self._produce(self.state_topic, update.key, update.value, None)
            self._commit()
        except KafkaException as err:
            error = err.args[0]
            if error.fatal() or error.code() == KafkaError._FENCED:  # noqa: SLF001
                self._open = False  # nothing to abort: the broker already did, for the new owner
                raise FencedError(f"this producer was fenced: {error}") from err
            self.abort()
            raise PublishError(f"transaction aborted: {error}") from err

    def _commit(self, attempts: int = 5) -> None:
        """Commit; a retriable failure (a timeout, a coordinator moving) is retried as is."""
        for attempt in range(1, attempts + 1):
            try:
                self._producer.commit_transaction(60)
            except KafkaException as err:
                if not err.args[0].retriable() or attempt == attempts:
                    raise
                log.warning("commit failed (%s); retrying", err.args[0])
            else:
                self._open = False
                return

    def _produce(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None,
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers)
            except BufferError:
                # The client's queue is full: let it deliver, then go on (bounded memory).
                self._producer.poll(0.1)
            else:
                return

    def abort(self) -> None:
        if not self._open:
            return
        try:
            self._producer.abort_transaction(30)
        except KafkaException as err:
            log.warning("aborting the transaction failed: %s", err)
        self._open = False

    def close(self) -> None:
        self.abort()
        self._producer.flush(30)
