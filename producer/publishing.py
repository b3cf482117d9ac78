"""Kafka edge of the producer: one transaction per batch, events and state together.

``init_transactions`` fences any older producer with the same transactional id
(a zombie that still thinks it leads) and aborts what it left open; the state
topic is read back only after that, with read_committed, so it is exactly the
state of the last committed batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, NoReturn

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

# Documented under confluent_kafka.admin, which does not re-export them for mypy.
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.admin._resource import ResourceType

from kafkube.core.errors import ConfigError, KafkubeError
from kafkube.core.outages import RDKAFKA_LOG
from kafkube.core.waiting import Deadline, retrying
from kafkube.producer.dedup import StateUpdate

log = logging.getLogger(__name__)


Header = tuple[str, str | bytes | None]
# (topic, key, value, headers): one record of a transaction.
Outgoing = tuple[str, bytes, bytes, list[Header]]

# Kafka refuses these for the one record, whatever is tried again: a retry of the same
# transaction fails the same way, so the record must go elsewhere (the dead-letter topic).
PER_RECORD_REFUSALS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.POLICY_VIOLATION,
    }
)
# librdkafka's own default for message.max.bytes, when the configuration does not set it.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
# State updates handed to the client at once (``produce_batch``).
_STATE_SENT_AT_ONCE = 1000


_SIZE_REFUSALS = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}
)


class Refusal(NamedTuple):
    """A record Kafka refused for good: where it was going, its bytes, and why."""

    topic: str
    value: bytes
    reason: str
    size: bool  # too large (alone or in its batch): a smaller record, or batch, may pass


class PublishError(KafkubeError):
    """Kafka refused a batch; it was aborted and nothing of it is visible.

    ``refused`` lists the records Kafka refused for good: sent again as they were, they
    would be refused again."""

    retriable = True

    def __init__(self, message: str, refused: Sequence[Refusal] = ()) -> None:
        super().__init__(message)
        self.refused = list(refused)


class FencedError(KafkubeError):
    """Another producer with the same transactional id took over; this one must stop."""

    retriable = False


# Another producer with this transactional id took over: this one must stop publishing. Any
# other fatal error is this client's own (a failed abort, a coordinator lost for longer than a
# timeout): a new producer with the same id fences the broken one and goes on.
_FENCING = frozenset(
    {
        KafkaError._FENCED,  # noqa: SLF001
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    }
)


# What Kafka refuses at init_transactions for good, by the setting to fix: waiting cannot help.
_REFUSED_SETUP = {
    KafkaError.INVALID_TRANSACTION_TIMEOUT: "kafka.properties.transaction.timeout.ms",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "producer.transactional_id",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "kafka.security",
}


def max_message_bytes(kafka: Mapping[str, Any], topics: Sequence[str]) -> dict[str, int]:
    """The largest record batch each topic takes: its ``max.message.bytes``, no more than the
    producer's own ``message.max.bytes``."""
    producer_limit = int(kafka.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
    resources = [ConfigResource(ResourceType.TOPIC, topic) for topic in topics]
    client: dict[str, Any] = {**kafka, "logger": RDKAFKA_LOG}
    admin = AdminClient(client)
    limits = {}
    for resource, future in admin.describe_configs(resources).items():
        try:
            entry = future.result(30).get("max.message.bytes")
        except (KafkaException, TimeoutError) as err:  # the future's own wait may end first
            raise PublishError(
                f"reading the configuration of topic {resource.name}: {err}"
            ) from err
        topic_limit = int(entry.value) if entry is not None and entry.value else producer_limit
        limits[resource.name] = min(producer_limit, topic_limit)
    return limits


@dataclass(frozen=True)
class StateRead:
    records: int
    last_written: datetime | None  # when the newest state record was written: the last publish


_STATE_BATCH = 10_000  # state records taken from the client at a time


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
            # The end of a transactional topic is its last commit marker, past its last record:
            # the end is known only by a fetch that finds nothing more, which the broker would
            # hold 500 ms (its default wait for data) of every start.
            "fetch.wait.max.ms": 10,
            "logger": RDKAFKA_LOG,
        }
    )
    try:
        ends = _ends(consumer_config, consumer, topic)
        pending = {p for p, high in ends.items() if high > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in pending])
        count, newest = 0, 0
        deadline = Deadline(120)
        while pending:
            if deadline.passed():
                raise PublishError(f"could not read the state topic {topic} within 120 s")
            # In batches: a poll for each record cost a producer with 10,000 of them 0.4 s of
            # its start. A short wait: a batch that is not full returns when it ends.
            for message in consumer.consume(_STATE_BATCH, timeout=0.05):
                error, partition = message.error(), message.partition() or 0
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                        continue  # for now: _read_to says whether it is the end
                    raise PublishError(f"reading the state topic: {error}")
                apply(message.key() or b"", message.value())
                count += 1
                newest = max(newest, message.timestamp()[1])
                if (message.offset() or 0) + 1 >= ends[partition]:
                    pending.discard(partition)
            pending -= _read_to(consumer, topic, pending, ends)
        last = datetime.fromtimestamp(newest / 1000, UTC) if newest > 0 else None
        return StateRead(count, last)
    except KafkaException as err:
        raise PublishError(f"reading the state topic {topic}: {err.args[0].str()}") from err
    finally:
        consumer.close()


def _read_to(consumer: Consumer, topic: str, pending: set[int], ends: dict[int, int]) -> set[int]:
    """The partitions read as far as they ended when the read began. At read_committed a
    partition ends for now at its last stable offset: a transaction still open on it (another
    cluster's producer sharing the topic, or one killed mid-batch, until its next start or the
    broker's timeout aborts it) holds back every record committed after its first one, and a
    read that stopped there lost them: their events were published again. The read waits for
    that transaction to end."""
    if not pending:
        return set()
    at = consumer.position([TopicPartition(topic, p) for p in sorted(pending)])
    return {tp.partition for tp in at if tp.offset >= ends[tp.partition]}


def _ends(consumer_config: Mapping[str, Any], consumer: Consumer, topic: str) -> dict[int, int]:
    """Each partition's end, past every record written to it so far, committed or not (at
    read_committed Kafka answers its last stable offset, before any transaction still open);
    an answer that lacks the topic or a partition's leader is an error (read as empty, the
    state would be lost and everything published again)."""
    found = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        why = "no answer" if found is None else found.error or "no partitions"
        raise PublishError(f"reading the state topic {topic}: {why}")
    every = Consumer(
        {
            **consumer_config,
            "group.id": "kafkube-producer-state-reader",
            "isolation.level": "read_uncommitted",
            "logger": RDKAFKA_LOG,
        }
    )
    try:
        return {
            p: every.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in found.partitions
        }
    finally:
        every.close()


class TransactionalPublisher:
    def __init__(self, producer_config: Mapping[str, Any], *, topic: str, state_topic: str) -> None:
        self.topic = topic
        self.state_topic = state_topic
        self._config = {
            **producer_config,
            "enable.idempotence": True,
            "acks": "all",
            "logger": RDKAFKA_LOG,
            "on_delivery": self._delivered,
            # Only a refusal is reported: a report for every record delivered, made and
            # handed to Python in flush(), cost 1.5-2.5 µs a record, for nothing to act on.
            "delivery.report.only.error": True,
        }
        self._producer: Any = None
        self._open = False
        self._refused: list[Refusal] = []
        # False until init succeeds, and after a failed abort or a fatal error: the next
        # round makes a new producer, whose init_transactions fences this one.
        self.usable = False

    def init(self, *, batch_bytes: int, timeout: float = 60.0) -> None:
        """(Re)start the Kafka producer, its record batches at most ``batch_bytes`` (a topic
        takes no larger batch), and fence any older producer of the transactional id."""
        if self._producer is not None:
            self.close()
        self._producer = Producer({**self._config, "batch.size": batch_bytes})
        try:
            self._producer.init_transactions(timeout)
        except KafkaException as err:
            self._fenced_if(err.args[0])
            refused = _REFUSED_SETUP.get(err.args[0].code())
            if refused is not None:  # cannot pass by itself: say what to fix, and stop
                why = f"Kafka refuses this producer: {err.args[0].str()}"
                raise ConfigError(refused, why) from err
            raise PublishError(f"initialising transactions: {err.args[0].str()}") from err
        self.usable = True

    def publish(self, records: Sequence[Outgoing], state: Sequence[StateUpdate]) -> None:
        """Write records and state updates atomically, or none of them."""
        self._refused = []
        try:
            self._producer.begin_transaction()
            self._open = True
            for topic, key, value, headers in records:
                self._produce(topic, key, value, headers)
            self._produce_state(state)
            # Delivery reports first: they name a record Kafka refused for good.
            self._producer.flush(60)
        except KafkaException as err:
            self._failed(err)
        except SystemError as err:
            # confluent-kafka: a fatal error met inside flush() (this producer fenced) was left
            # set while it served the next callback, and comes out as SystemError, caused by it.
            if not isinstance(err.__cause__, KafkaException):
                raise
            self._failed(err.__cause__)
        if self._refused:
            self.abort()
            first = self._refused[0].reason
            raise PublishError(
                f"transaction aborted: Kafka refused {len(self._refused)} record(s): {first}",
                self._refused,
            )
        try:
            self._commit()
        except KafkaException as err:
            self._failed(err)

    def _failed(self, err: KafkaException) -> NoReturn:
        """The transaction failed: aborted, and this producer made anew for the next round (its
        sequence numbers and epoch may be stale after a broker's absence; a new producer's
        init_transactions starts clean and fences this one)."""
        error = err.args[0]
        self._fenced_if(error)
        if error.fatal():
            self._open, self.usable = False, False
            raise PublishError(
                f"transaction failed ({error.str()}): starting a new producer", self._refused
            ) from err
        self.abort()
        self.usable = False
        raise PublishError(f"transaction aborted: {error.str()}", self._refused) from err

    def _fenced_if(self, error: KafkaError) -> None:
        if error.code() in _FENCING:
            self._open, self.usable = False, False  # the broker aborted it for the new owner
            raise FencedError(f"this producer was fenced: {error.str()}")

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None and error.code() in PER_RECORD_REFUSALS:
            self._refuse(message.topic() or "", message.value() or b"", error)

    def _refuse(self, topic: str, value: bytes, error: KafkaError) -> None:
        size = error.code() in _SIZE_REFUSALS
        self._refused.append(Refusal(topic, value, str(error), size))

    def _commit(self, attempts: int = 2) -> None:
        """Commit; a retriable failure (a timeout, a coordinator moving) is retried as is."""
        for attempt in retrying(
            retry=lambda err: isinstance(err, KafkaException) and err.args[0].retriable(),
            attempts=attempts,
            before_sleep=lambda retry: log.warning(
                "commit failed (%s); retrying", retry.outcome and retry.outcome.exception()
            ),
        ):
            with attempt:
                self._producer.commit_transaction(60)
        self._open = False

    def _produce(
        self, topic: str, key: bytes, value: bytes | None, headers: list[Header] | None
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, headers=headers)
            except KafkaException as err:
                if err.args[0].code() in PER_RECORD_REFUSALS:
                    self._refuse(topic, value or b"", err.args[0])
                raise
            except BufferError:
                # The client's queue is full: let it deliver, then go on (bounded memory).
                self._producer.poll(0.1)
            else:
                return

    def _produce_state(self, state: Sequence[StateUpdate]) -> None:
        """The state updates, a thousand a call: they carry no headers, so ``produce_batch``
        takes them (a third of ``produce``'s time a record); one the client's full queue
        turned away goes again once it delivered some."""
        for start in range(0, len(state), _STATE_SENT_AT_ONCE):
            pending: list[dict[str, Any]] = [
                {"key": update.key, "value": update.value}
                for update in state[start : start + _STATE_SENT_AT_ONCE]
            ]
            while pending:
                self._producer.produce_batch(self.state_topic, pending)
                failed = [message for message in pending if "_error" in message]
                for message in failed:
                    error = message.pop("_error")
                    if error.code() != KafkaError._QUEUE_FULL:  # noqa: SLF001 - its public name
                        if error.code() in PER_RECORD_REFUSALS:
                            self._refuse(self.state_topic, message["value"] or b"", error)
                        raise KafkaException(error)
                if failed:
                    self._producer.poll(0.1)
                pending = failed

    def poll(self) -> None:
        """Serve the client's callbacks while no batch is under way (a login refused later
        in the run is raised from here)."""
        if self._producer is not None:
            self._producer.poll(0)

    def abort(self) -> None:
        """Abort the open transaction; if even that fails (the coordinator away longer than
        the timeout), this producer is done with: the next round makes a new one, whose
        init_transactions aborts the transaction on the broker and fences this one."""
        if not self._open:
            return
        self._open = False
        try:
            self._producer.abort_transaction(30)
        except KafkaException as err:
            self.usable = False
            log.warning("aborting the transaction failed (%s): a new producer will be made", err)

    def close(self) -> None:
        if self._producer is None:
            return
        try:
            if self.usable:
                self.abort()
            if self.usable:
                self._producer.flush(30)
            else:  # what it still holds belongs to an aborted transaction: sent again from state
                self._producer.purge()
                self._producer.flush(0)
        except (KafkaException, KafkubeError) as err:
            # A producer in a fatal state, or its login refused (raised from the error
            # callback): dropped all the same, now. Left to the interpreter's exit, its
            # callbacks would run in a Python half gone.
            log.debug("closing a failed producer: %s", err)
        self._producer, self.usable = None, False
