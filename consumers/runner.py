"""The sink runner, shared by every sink: poll, batch per partition, write durably, then commit.

Exactly once in the sink
------------------------
A batch holds records of one partition and becomes one object, named from the
topic, the partition, its first and last offset and its hour
(``kafkube.consumers.naming``). The runner writes the object durably (the
destination returns only once the bytes are fsynced or acknowledged by the
store), and only then commits the offset after the batch. Nothing else commits.

Every crash point then ends the same way. Before the write is durable, nothing
names the batch and its offsets are not committed: the next owner reads them
again. After the write and before the commit, the object exists but the offset
is behind it: the next owner, when it is assigned the partition, reads where
each batch ended from the partition's index (``kafkube.consumers.indexing``,
never behind the store, with a narrow listing of the folders it left open; a
full listing of the sink's own objects when the index is missing or does not
reach back to the committed offset), and a batch that starts at a written
object's first offset closes exactly at that object's last offset, whatever the
count, size, age or time rules would say. A partition's objects may be written
at once, so one may be missing before another that is stored: a batch read
again closes before the next stored object's first offset.
The rewrite has the same name and, because the formats are deterministic (the
Avro sync marker comes from the name, gzip carries no time), the same bytes: it
replaces the object with itself. An offset reset into the middle of an object
starts at that object's first offset, so replays rewrite whole objects too, even
when the first run had cut them on the wall clock.

When a batch closes is decided by pure rules (``kafkube.consumers.batching``); the
runner keeps the Kafka I/O, the pause-and-retry, the dead letters and the commits.

Memory is bounded: one open batch per assigned partition, each closed at
``max_records`` or ``max_bytes``. A store that refuses writes pauses every
assigned partition while the runner retries with backoff, still polling so the
group keeps it; nothing is committed meanwhile. A record that cannot be decoded
goes to ``<topic>.dlq`` with the reason in its headers, and the DLQ is flushed
before any commit that passes it. SIGTERM writes and commits the open batches
and leaves the group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Self, TypeVar, cast

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from tenacity import RetryCallState

from kafkube.consumers import fastpath, metrics
from kafkube.consumers.batching import BatchShape
from kafkube.consumers.boundaries import Boundaries, Place
from kafkube.consumers.destinations import Destination, KeepsOffsets, MissingObjectError
from kafkube.consumers.formats import FORMATS, Batch, json_line_bytes
from kafkube.consumers.indexing import PartitionIndex, UnreadableIndex
from kafkube.consumers.naming import (
    ObjectRange,
    hour_numbered,
    hour_of,
    index_name,
    object_folder,
    object_name,
    objects_from,
    parse_object_name,
    start_offset,
)
from kafkube.consumers.settings import SinkSettings
from kafkube.core.admin import ensure_topic, kafka_probe, topic_exists
from kafkube.core.errors import ConfigError, KafkubeError, SinkError, SinkRefusedError
from kafkube.core.login import refusing_later_logins, wait_for_kafka_login
from kafkube.core.outages import RDKAFKA_LOG, Outage
from kafkube.core.registry import SchemaRegistry
from kafkube.core.serving import serving
from kafkube.core.waiting import Deadline, Stopped, retrying, waited_out
from kafkube.schemas.codec import Codec, DecodeError, SchemaVersion
from kafkube.schemas.topics import OWN_TOPIC_SUFFIXES, dlq_topic, is_cluster_name

log = logging.getLogger(__name__)
T = TypeVar("T")
_GONE = object()  # a retried call's answer when its partition went away meanwhile
# Closed batches queued or being written, all partitions together, before the reading waits;
# half as many of those that carry their records as dicts (Parquet, a table: ten times the
# memory of their datums, and a table's commits are slow, so its queue is always full).
_MAX_QUEUED = 8
# Writer threads: several writes at once, of one partition too (``SinkRunner._start_ready``).
_WRITERS = 4
# A record read: its writer schema, its datum, the fields kept, its hour, and its line of JSON
# (for a format of lines; else empty).
_Decoded = tuple[SchemaVersion, memoryview, dict[str, Any], datetime, bytes]


# A commit refused for these is committed again at the next tick: a rebalance under way, a
# coordinator moving or a broker away for a moment. Anything else (no rights on the group,
# a fenced instance) stops the sink with the reason.
_COMMIT_RETRIABLE = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._ASSIGNMENT_LOST,  # noqa: SLF001
        KafkaError._STATE,  # noqa: SLF001 - no generation yet, mid-rejoin
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,  # noqa: SLF001
        KafkaError._TRANSPORT,  # noqa: SLF001
        KafkaError._WAIT_COORD,  # noqa: SLF001
    }
)


class InstanceFencedError(SinkError):
    """Another instance took this one's place in the group with the same instance id."""

    retriable = False


def static_membership(instance_id: str) -> dict[str, str]:
    """The consumer properties of static group membership; none for dynamic membership."""
    return {"group.instance.id": instance_id} if instance_id else {}


class _Paused:
    """Every assigned partition paused while a write is retried, and resumed after it; the
    wait between tries keeps polling, which keeps this member in its group."""

    def __init__(self, consumer: Consumer, *, until: Callable[[], bool]) -> None:
        self.consumer, self.until, self.held = consumer, until, False

    def hold(self) -> None:
        if not self.held:
            self.consumer.pause(self.consumer.assignment())
            self.held = True

    def wait(self, seconds: float) -> None:
        deadline = Deadline(seconds)
        while not deadline.passed() and not self.until():
            # Paused partitions deliver nothing; one assigned during this wait (a rebalance
            # in this poll) may: its record is put back, never dropped, and it waits too.
            message = self.consumer.poll(0.1)
            if message is not None and message.error() is None:
                back = TopicPartition(message.topic() or "", message.partition() or 0)
                back.offset = message.offset() or 0
                self.consumer.pause([back])
                self.consumer.seek(back)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        if self.held:
            self.consumer.resume(self.consumer.assignment())


@dataclass
class SinkStats:
    records: int = 0
    batches: int = 0
    bytes: int = 0
    dead_letters: int = 0
    filtered: int = 0  # left out by this group's filter (committed, not written)
    rewrites_aligned: int = 0
    # Records read again inside an object whose first offset is gone from the log (retention
    # moved the log start into it): that object stays as it is; they are not written again.
    kept_as_written: int = 0
    write_retries: int = 0
    list_requests: int = 0  # to the store, to learn what it holds (pages)
    index_writes: int = 0  # of the partitions' indexes, before objects they did not cover
    commit_conflicts: int = 0  # a table's commits that met another's and were tried again
    # Wall-clock seconds: the first record taken and the last offset committed (0: none).
    first_record_at: float = 0.0
    last_commit_at: float = 0.0
    # CPU seconds of the whole process (every thread) from the first record to the last commit.
    busy_cpu_seconds: float = 0.0


@dataclass
class _Batch:
    shape: BatchShape  # what the rules decide on
    writer: SchemaVersion
    last: int = -1
    processed: int = -1  # the last offset taken, dead letters included
    datums: list[bytes | memoryview] = field(default_factory=list)  # viewed, or copied
    records: list[dict[str, Any]] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # each record's JSON, for such a format
    clusters: list[str] = field(default_factory=list)  # each datum's, in the cluster layout
    offsets: list[int] = field(default_factory=list)  # each datum's (a table's rows keep them)
    # Whether its format builds it from the datums alone, so it carries no records (its
    # writer is the reader's own schema, compiled, and it is no rewrite, which may mix).
    by_datums: bool = False

    @property
    def first(self) -> int:
        return self.shape.first


@dataclass
class _Write:
    """A closed batch on its way to the store (``SinkRunner._start_ready`` says when it goes)."""

    part: Part
    batch: _Batch
    last: int  # the last offset its object names
    index: bytes | None  # the partition's index as it is to be written first (None: a table's)
    began: float
    future: futures.Future[int] | None = None  # on a writer thread: the bytes written


def _done(job: _Write) -> bool:
    return job.future is not None and job.future.done()


class Part(NamedTuple):
    """One partition of one topic (a sink may read several topics: a pattern)."""

    topic: str
    number: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.number}]"


@dataclass
class _Partition:
    part: Part
    bounds: Boundaries  # the objects written from the start offset on
    index: PartitionIndex
    committed: int  # the offset last committed (or started from)
    batch: _Batch | None = None
    dead_letters_pending: bool = False
    read_to: int = 0  # the offset the consumer last reached the partition's end at
    # Past filtered records no batch carries: the offset to commit, and since when (clock).
    skipped: int | None = None
    skipped_at: float = 0.0
    # An offset whose records are durable but whose commit the group refused (a rebalance
    # was under way): committed again at the next tick while this member keeps the partition.
    uncommitted: int | None = None
    # An offset to commit (past dead letters or filtered records) once the writes queued
    # before it are durable.
    deferred: int | None = None


# The fields an event's own time comes from, first found first (``time_field: event``).
_EVENT_TIME_FIELDS = frozenset({"last_timestamp", "series", "event_time", "observed_at"})


def _fields_kept(settings: SinkSettings, needs_records: bool) -> frozenset[str] | None:  # noqa: FBT001 - the format's
    """The top-level fields a sink builds of each record (every one when None): those its
    format writes, else only those its filter, its time field and its layout read. Every
    datum is checked whole all the same."""
    if needs_records:
        return None
    kept = set(settings.sink.filter.event_filter().reads)
    if settings.sink.layout == "cluster":
        kept.add("cluster")
    if settings.sink.time_field == "event":
        kept |= _EVENT_TIME_FIELDS
    return frozenset(kept)


def _listed(partitions: list[TopicPartition], *, offsets: bool = False) -> str:
    """``partition t[0] from offset 5; partition t[1] ...``: one log line per rebalance."""
    return "; ".join(
        f"partition {Part(tp.topic, tp.partition)}"
        + (f" from offset {tp.offset}" if offsets else "")
        for tp in partitions
    )


def _may_pass(err: BaseException) -> bool:
    """A failure that time may mend: a store or registry away, Kafka away or settling (an
    admin request's future that did not answer in time among them)."""
    if isinstance(err, TimeoutError):
        return True
    if isinstance(err, KafkaException):
        error = err.args[0]
        return bool(error.retriable()) or error.code() in _COMMIT_RETRIABLE
    return isinstance(err, KafkubeError) and err.retriable


def _within(datums: list[bytes], at: int, most: int, room: int) -> tuple[int, int]:
    """How many datums from ``at`` (at most ``most``) a batch with ``room`` bytes left takes
    before the bytes rule closes it (the datum that reaches it included), and their bytes."""
    taken = 0
    for count in range(1, most + 1):
        taken += len(datums[at + count - 1])
        if taken >= room:
            return count, taken
    return most, taken


def _event_hour(record: dict[str, Any]) -> datetime:
    series = record.get("series") or {}
    for moment in (
        record.get("last_timestamp"),
        series.get("last_observed_time"),
        record.get("event_time"),
        record.get("observed_at"),
    ):
        if isinstance(moment, datetime):
            return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    raise DecodeError("the record carries no time at all")


class SinkRunner:
    def __init__(
        self,
        settings: SinkSettings,
        destination: Destination,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.destination = destination
        # Registry-framed values name their schema by id: looked up once each, then kept.
        registry = None
        if settings.registry is not None:
            grace = settings.sink.unknown_schema_id_grace_seconds
            registry = SchemaRegistry(settings.registry, unknown_id_grace=grace)
        self.codec = Codec(lookup=None if registry is None else registry.schema)
        self.registry = registry
        self.stats = SinkStats()
        self._clock = clock
        self._rules = settings.sink.rotation
        self._partitions: dict[Part, _Partition] = {}
        self._dlqs_made: set[str] = set()  # topics whose dead-letter topic exists
        self._format = FORMATS[settings.sink.format]
        # A format that builds its batches from their datums alone (Parquet), where the
        # compiled scan is built: no records made, nor carried.
        self._columns = self._format.from_datums and fastpath.wanted()
        records = self._format.needs_records and not self._format.lines and not self._columns
        self._max_queued = _MAX_QUEUED // 2 if records else _MAX_QUEUED
        self._extension = self._format.extension
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None
        self._dlq_refused: list[str] = []  # delivery reports of dead letters Kafka refused
        self._commit_failed: SinkError | None = None  # a commit Kafka refused for good
        # Each partition's closed batches, oldest first, the first being written; the writer
        # threads (none for a table, whose batches are written and committed in turn).
        self._writes: dict[Part, deque[_Write]] = {}
        self._pool: futures.ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._by_cluster = settings.sink.layout == "cluster"
        self._positions = settings.sink.keeps_offsets  # a table's rows keep their offsets
        self._filter = settings.sink.filter.event_filter()
        self._filtering = not self._filter.passes_all
        self._cpu_at_first = 0.0
        self._keep = _fields_kept(settings, self._format.needs_records)
        # The compiled scan, where a sink needs a record's bytes alone, or the whole record
        # (its format's), and nothing else of it (no filter, no event time, no cluster folder).
        whole = self._keep is None and not self._filtering and not self._by_cluster
        whole = whole and settings.sink.time_field == "record"
        scanned = whole or (self._keep == frozenset() and not self._filtering)
        self._fast = (
            fastpath.FastScan(
                self.codec,
                records=whole and not self._columns,
                lines=whole and self._format.lines,
            )
            if scanned and fastpath.wanted()
            else None
        )
        if scanned and not fastpath.built():
            log.warning(
                "the sinks' compiled scan is not built here (no C compiler when kafkube was "
                "installed?): every record takes the Python path, at a fifth of the pace"
            )
        # Said once per change of state: what is away (a store, the registry, Kafka) at start
        # or at an assignment, and Kafka refusing commits for a while.
        self._away = Outage(f"the {settings.sink.sink_type} sink's store, registry or Kafka", log)
        self._commits = Outage("Kafka's commits", log)
        self._store = Outage(f"the store {destination.description}", log)
        self._registry_away = Outage("the schema registry", log)

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> SinkStats:
        self._stop = stop
        metrics.start(self.settings.sink.sink_type)
        try:  # a store or a registry away at start is waited out, never a crash loop
            self._waited(self.destination.check)
            if self.registry is not None:
                self._waited(self.registry.check)
        except Stopped:
            return self.stats
        kafka = self.settings.kafka
        self._consumer = Consumer(
            {
                # Prefetch at most 8 MiB (librdkafka's default is 64) and 5,000 records a
                # partition (its default, 100,000, kept 35 MiB more alive for our small
                # records), fetched 256 KiB a partition at a time (1 MiB: 15 MiB more): a
                # fraction of a second of work, at a tenth less pace than the defaults, for
                # memory that stays flat however long the topic is. A full queue holds off
                # the next fetch for fetch.queue.backoff.ms, 1 s by default: a sink that
                # drains 8 MiB in a third of that then waited out the rest, at half its pace.
                "queued.max.messages.kbytes": 8192,
                "queued.min.messages": 5000,
                "max.partition.fetch.bytes": 262144,
                "fetch.queue.backoff.ms": 20,
                **kafka,
                "group.id": self.settings.sink.group_id,
                **static_membership(self.settings.sink.instance_id),
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                # Kafka 4's consumer protocol (group.protocol=consumer) assigns on the broker,
                # incrementally; the classic one is told to be incremental here.
                **(
                    {}
                    if kafka.get("group.protocol") == "consumer"
                    else {"partition.assignment.strategy": "cooperative-sticky"}
                ),
                "auto.offset.reset": "earliest",
                # Says when a partition is read to its end: past the commit markers, which the
                # lag must not count as records.
                "enable.partition.eof": True,
                "logger": RDKAFKA_LOG,
                "on_commit": self._on_commit,
            }
        )
        # Made at start if missing: with auto-creation off, a record sent to a topic that
        # does not exist is dropped, and its offset would be committed all the same.
        if not self.settings.sink.topics:
            try:
                self._wait_for_topic(self.settings.topic)
                self._waited(lambda: self._ensure_dlq(self.settings.topic))
            except Stopped:
                self._consumer.close()
                return self.stats
        self._dlq = Producer(
            {**kafka, "enable.idempotence": True, "acks": "all", "logger": RDKAFKA_LOG}
        )
        self._consumer.subscribe(
            [self.settings.sink.topics or self.settings.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info(
            "sink %s: group %s, topic %s -> %s",
            self.settings.sink.sink_type,
            self.settings.sink.group_id,
            self.settings.sink.topics or self.settings.topic,
            self.destination.description,
        )
        self._pool = futures.ThreadPoolExecutor(_WRITERS, thread_name_prefix="kafkube-write")
        try:
            self._loop(self._consumer, stop)
        except BaseException:
            self._close_clients(quietly=True)  # the error on its way out is the one to say
            raise
        self._close_clients(quietly=False)
        log.info("sink stopped: %s", self.stats)
        return self.stats

    def _close_clients(self, *, quietly: bool) -> None:
        """The writers finished, the consumer closed, the dead letters flushed and their
        producer purged and let go: each step whatever the one before raised (a login refused
        while closing raises from the error callback). A client left to the interpreter's exit
        runs its callbacks in a Python half gone: a sink so left ended on SIGSEGV. Unless
        ``quietly``, the first error met is raised once all are done."""
        pool, consumer, dlq = self._pool, self._consumer, self._dlq
        steps: list[Callable[[], object]] = []
        if pool is not None:
            steps.append(lambda: pool.shutdown(wait=True, cancel_futures=True))
        if consumer is not None:
            steps.append(consumer.close)
        if dlq is not None:  # purged, not closed: close() flushes with no end if Kafka is away
            steps += [functools.partial(dlq.flush, 30), dlq.purge]
        errors: list[Exception] = []
        for step in steps:
            try:
                step()
            except Exception as err:  # noqa: BLE001 - every client is closed; the first said
                errors.append(err)
                log.debug("closing the sink's clients: %s", err)
        steps.clear()
        self._dlq = dlq = None  # freed now, while Python is whole
        if errors and not quietly:
            raise errors[0]

    def _loop(self, consumer: Consumer, stop: threading.Event) -> None:
        """Read, batch, write, commit until asked to stop; then write and commit the open
        batches."""
        while not stop.is_set():
            self._take_all(consumer.consume(num_messages=1000, timeout=0.2))
            self._settle()
            if self._commit_failed is not None:
                raise self._commit_failed
            self._rotate_aged()
            self._commit_skipped()
            self._commit_refused()
        for part in list(self._partitions):
            self._flush(part)
        self._settle(all_of_them=True)
        if not self._writes:
            self._close_indexes()
        for part, state in list(self._partitions.items()):
            if state.batch is None and state.skipped is not None:
                self._commit(part, state, state.skipped)

    def _close_indexes(self) -> None:
        """At a clean stop, every write done: each index that left folders open written once
        more without them, so the next owner lists nothing (if this fails, it lists them)."""
        for part, state in self._partitions.items():
            if state.index.open and not self.settings.sink.keeps_offsets:
                state.index.close()
                try:
                    self.destination.put(self._index_name(part), state.index.to_bytes(), {})
                except SinkError as err:
                    log.warning("cannot store the index of partition %s: %s", part, err)
                    return

    def _wait_for_topic(self, topic: str) -> None:
        """A sink started before the producer made its topic (a chart installs both at once)
        waits for it, saying so once a minute; the readiness probe says not ready meanwhile.
        Past ``topic_wait_seconds`` a missing topic is the error it is."""
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - set in run()
        wait = self.settings.sink.topic_wait_seconds
        deadline, said_at = Deadline(wait), None
        while not self._stop.is_set():
            if self._waited(lambda: topic_exists(consumer, topic, timeout=10)):
                if said_at is not None:
                    log.info("topic %s exists now", topic)
                return
            now = time.monotonic()
            if deadline.passed():
                raise SinkError(
                    f"topic {topic} does not exist (waited {wait:.0f} s, "
                    f"sinks.{self.settings.sink.sink_type}.topic_wait_seconds): is the producer "
                    "running, and writing to this kafka.topic?"
                )
            if said_at is None or now - said_at >= 60:
                log.warning(
                    "topic %s does not exist yet; waiting up to %.0f s for the producer to make it",
                    topic,
                    deadline.left(),
                )
                said_at = now
            self._stop.wait(min(2.0, deadline.left()))

    # --- rebalances ---------------------------------------------------------------------------

    def _ensure_dlq(self, topic: str) -> None:
        """Made at start (or at a pattern's first assignment of the topic) if missing: with
        auto-creation off, a record sent to a topic that does not exist is dropped, and its
        offset would be committed all the same."""
        if topic in self._dlqs_made:
            return
        if any(topic.endswith(suffix) for suffix in OWN_TOPIC_SUFFIXES):
            raise ConfigError(
                f"sinks.{self.settings.sink.sink_type}.topics",
                f"the pattern {self.settings.sink.topics!r} takes in {topic}, one of kafkube's own "
                f"topics ({', '.join(OWN_TOPIC_SUFFIXES)}): write one that leaves them out",
            )
        ensure_topic(self.settings.kafka, dlq_topic(topic), partitions=1, config={})
        self._dlqs_made.add(topic)

    def _written(self, topic: str) -> dict[int, list[ObjectRange]]:
        """Every object of the topic the store holds, by partition: a full listing."""
        by_partition: dict[int, list[ObjectRange]] = {}
        for name in self.destination.names(topic):
            parsed = parse_object_name(name, topic)
            if parsed is not None:
                by_partition.setdefault(parsed[0], []).append(parsed[1])
        self.stats.list_requests = self.destination.list_requests
        return {p: sorted(ranges) for p, ranges in by_partition.items()}

    def _index_name(self, part: Part) -> str:
        return index_name(part.topic, part.number, self._extension)

    def _read_index(self, part: Part) -> PartitionIndex | None:
        try:
            data = self.destination.get(self._index_name(part))
            return PartitionIndex.parse(data, within=f"{part.topic}/")
        except MissingObjectError:
            return None
        except UnreadableIndex as err:
            log.warning("partition %s: %s; listing the store instead", part, err)
            return None

    def _list_open(self, part: Part, index: PartitionIndex, position: int) -> None:
        """Into ``index``, the objects its last owner wrote in the folders it left open (one
        narrow listing each: the partition's names from ``open_from`` on)."""
        for folder in index.open:
            begins = f"{folder}/{objects_from(part.topic, part.number)}"
            start = f"{folder}/{objects_from(part.topic, part.number, index.open_from)}"
            for name in self.destination.names_from(begins, start):
                parsed = parse_object_name(name, part.topic)
                if parsed is not None and parsed[0] == part.number:
                    index.add(parsed[1], position)
        self.stats.list_requests = self.destination.list_requests

    def _waited(self, call: Callable[[], T]) -> T:
        """``call()``, a store, the registry or Kafka away meanwhile waited out (said once per
        change of state, readiness says why); ``Stopped`` if the sink is told to stop."""
        return waited_out(call, self._away, self._stop, away=_may_pass)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Where each partition starts, from its committed offset and the objects written
        (a store or Kafka away meanwhile is waited out; stopped meanwhile: nothing taken)."""
        if not partitions:
            consumer.incremental_assign(partitions)
            return
        try:
            self._waited(lambda: self._prepare(consumer, partitions))
        except Stopped:
            for tp in partitions:
                self._partitions.pop(Part(tp.topic, tp.partition), None)
            return
        consumer.incremental_assign(partitions)

    def _prepare(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        listings: dict[str, dict[int, list[ObjectRange]]] = {}  # only if an index falls short
        held: dict[str, dict[int, int]] = {}  # a table's own offsets, by topic
        for tp, done in zip(partitions, committed, strict=True):
            part = Part(tp.topic, tp.partition)
            self._ensure_dlq(part.topic)
            log_start = consumer.get_watermark_offsets(tp, timeout=30)[0]
            position = done.offset
            if self.settings.sink.keeps_offsets:  # the table's commits say, not Kafka's
                if part.topic not in held:
                    held[part.topic] = cast("KeepsOffsets", self.destination).offsets(part.topic)
                position = held[part.topic].get(part.number, position)
            if position == OFFSET_INVALID or position < log_start:
                position = log_start  # where Kafka would reset it: the first record left
            tp.offset = self._start(part, position, log_start, listings, kafka_at=done.offset)
        log.info("assigned %s", _listed(partitions, offsets=True))

    def _start(
        self,
        part: Part,
        position: int,
        log_start: int,
        listings: dict[str, dict[int, list[ObjectRange]]],
        *,
        kafka_at: int,
    ) -> int:
        """Where a partition starts reading, from ``position``: there for a table (nothing
        is rewritten; Kafka's committed offset, ``kafka_at``, is brought up to it at the next
        tick, as after a refused commit: a table may hold more than the group committed, and
        a partition with nothing more to read would show that lag for ever); else at the first
        offset of a written object it falls in."""
        if self.settings.sink.keeps_offsets:
            index = PartitionIndex.rebuilt([], position)
            state = _Partition(part, Boundaries([]), index, position)
            if position > kafka_at:
                state.uncommitted = position
            self._partitions[part] = state
            return position
        found = self._read_index(part)
        if found is None or not found.covers(position):
            if part.topic not in listings:
                log.info("listing %s to find what was written", self.destination.description)
                listings[part.topic] = self._written(part.topic)
            found = PartitionIndex.rebuilt(listings[part.topic].get(part.number, []), position)
            try:
                self.destination.put(self._index_name(part), found.to_bytes(), {})
            except SinkError as err:  # written again before the partition's next object
                log.warning("cannot store the index of partition %s: %s", part, err)
        else:
            self._list_open(part, found, position)
        start, written = start_offset(position, found.ranges, log_start)
        if start < position:
            self.stats.rewrites_aligned += 1
        elif start > position:
            log.warning(
                "partition %s: offsets %d to %d are in an object written before whose "
                "first records are gone from the log (its start is %d now): it stays as "
                "it is, and reading starts after it",
                part, position, start - 1, log_start,
            )  # fmt: skip
        self._partitions[part] = _Partition(part, Boundaries(written), found, position)
        return start

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            # Whatever was not written is read again by the next owner: abandoning loses nothing.
            part = Part(tp.topic, tp.partition)
            self._partitions.pop(part, None)
            # The writes under way end first (an index must not land after the next owner's);
            # those not started are dropped, uncommitted.
            queue = self._writes.pop(part, None)
            started = [job.future for job in queue or () if job.future is not None]
            if started:
                futures.wait(started, timeout=120)
            labels = (self.settings.sink.sink_type, part.topic, str(part.number))
            for gauge in (metrics.COMMITTED, metrics.LAG):
                with contextlib.suppress(KeyError):  # never exported: nothing to take back
                    gauge.remove(*labels)
        if partitions:
            log.info("revoked %s", _listed(partitions))
        consumer.incremental_unassign(partitions)

    # --- taking records -----------------------------------------------------------------------

    def _take_all(self, messages: list[Message]) -> None:
        """The messages of one consume(): through the compiled scan where it runs (runs of
        checked records, each appended at once), else one at a time."""
        if self._fast is None:
            for message in messages:
                self._take(message)
            return
        for item in self._fast.scan(messages):
            if type(item) is tuple:
                self._take_run(messages, item)
            else:
                self._take(item)

    def _take_run(self, messages: list[Message], run: fastpath.Run) -> None:
        """Records the scan checked, of one partition, writer and hour, in offset order:
        appended as ``_take`` would one by one, the batch closed where the rules close it. A
        run that meets an object written before takes the Python path, record by record."""
        topic, number, writer, hour_number, datums, offsets, size, begin, end, records = run
        state = self._partitions.get((topic, number))  # type: ignore[call-overload]
        if state is None:
            return  # revoked meanwhile
        if not state.bounds.free(offsets[0], offsets[-1]):
            for message in messages[begin:end]:
                self._take(message)
            return
        self._note_first_record()
        part, hour, rules = state.part, hour_numbered(hour_number), self._rules
        at, left = 0, size  # the first datum not taken yet, and the bytes from it on
        while at < len(datums):
            offset = offsets[at]
            self._read_at(part, state, offset)  # closes a rewrite open before
            batch = self._batch_for(part, state, offset, hour, writer, rewrite=None)
            shape = batch.shape
            take = min(len(datums) - at, rules.max_records - shape.records)
            taken = left if at + take == len(datums) else sum(map(len, datums[at : at + take]))
            if shape.size + taken >= rules.max_bytes:  # the bytes rule closes it first
                take, taken = _within(datums, at, take, rules.max_bytes - shape.size)
            batch.datums.extend(datums[at : at + take])
            if records is not None:
                rows = batch.lines if self._format.lines else batch.records
                rows.extend(records[at : at + take])
            batch.offsets.extend(offsets[at : at + take])
            at, left = at + take, left - taken
            batch.last = batch.processed = offsets[at - 1]
            shape.records += take
            shape.size += taken
            if rules.full(shape, batch.last):
                self._flush(part)

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._not_a_record(message, error)
            return
        offset = message.offset() or 0
        # A Part is a tuple: the plain one finds it, and the key found is the Part.
        state = self._partitions.get((message.topic(), message.partition()))  # type: ignore[call-overload]
        if state is None:
            return  # revoked meanwhile
        part = state.part
        self._note_first_record()
        try:
            decoded = self._decoded(part, message)
        except DecodeError as err:
            self._dead_letter(part, message, err, state)
            return
        if decoded is None:
            return  # the partition went away meanwhile: the next owner reads it again
        writer, _, record, hour, _ = decoded
        if self._filtering and not self._filter.passes(record):
            self._skip(part, state, offset)
            return
        place, span = self._read_at(part, state, offset)
        if place is Place.KEEP:
            self._keep_as_written(part, state, offset)
            return
        batch = self._batch_for(part, state, offset, hour, writer, rewrite=span)
        self._append(batch, offset, decoded)
        if self._rules.full(batch.shape, offset):
            self._flush(part)

    def _append(self, batch: _Batch, offset: int, decoded: _Decoded) -> None:
        """A record into its batch: its datum, and what its format and the layout take of it."""
        _, datum, record, _, line = decoded
        batch.datums.append(datum)
        if self._format.lines:
            batch.lines.append(line)
        elif self._format.needs_records and not batch.by_datums:
            batch.records.append(record)
        if self._by_cluster:
            batch.clusters.append(record["cluster"])
        batch.offsets.append(offset)
        batch.last = batch.processed = offset
        batch.shape.add(len(datum))

    def _note_first_record(self) -> None:
        if not self.stats.first_record_at:
            self.stats.first_record_at = time.time()
            self._cpu_at_first = time.process_time()

    def _keep_as_written(self, part: Part, state: _Partition, offset: int) -> None:
        """A record inside an object whose start is gone from the log: that object keeps it."""
        self.stats.kept_as_written += 1
        self._skip(part, state, offset, counted=False)

    def _part_of(self, message: Message) -> Part:
        return Part(message.topic() or self.settings.topic, message.partition() or 0)

    def _not_a_record(self, message: Message, error: KafkaError) -> None:
        """A partition read to its end (past the last record and any commit marker after
        it), noted for the lag; any other error stops the loop."""
        if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
            state = self._partitions.get(self._part_of(message))
            if state is not None:
                state.read_to = message.offset() or 0
            return
        self._raise_if_fenced(error)
        raise SinkError(f"consuming {message.topic() or self.settings.topic}: {error}")

    def _raise_if_fenced(self, error: KafkaError) -> None:
        """Another instance joined with this one's instance id: say so, and stop for good."""
        fatal = error.fatal() or error.code() == KafkaError._FATAL  # noqa: SLF001
        if error.code() == KafkaError.FENCED_INSTANCE_ID or (
            fatal and "group.instance.id" in error.str()
        ):
            raise InstanceFencedError(
                f"another instance of group {self.settings.sink.group_id} joined with this one's "
                f"instance id {self.settings.sink.instance_id!r}, and Kafka let it in its place; "
                f"give each instance its own sinks.{self.settings.sink.sink_type}.instance_id "
                f"(Kafka said: {error.str()})"
            )

    def _read_at(
        self, part: Part, state: _Partition, offset: int
    ) -> tuple[Place, ObjectRange | None]:
        """Where an offset read now falls among the objects written before; an open batch it
        cannot join (another object's rewrite, or none) is written first."""
        place, span = state.bounds.read(offset)
        batch = state.batch
        joins = span if place is Place.REWRITE else None
        if batch is not None and (place is Place.KEEP or batch.shape.forced != joins):
            self._flush(part)
        return place, span

    def _batch_for(  # noqa: PLR0913 - the record's partition, place, hour and schema
        self,
        part: Part,
        state: _Partition,
        offset: int,
        hour: datetime,
        writer: SchemaVersion,
        *,
        rewrite: ObjectRange | None,
    ) -> _Batch:
        """The open batch this record joins, after closing one it must not join."""
        batch = state.batch
        if batch is not None and self._rules.closes_before(batch.shape, hour, writer):
            self._flush(part)
            batch = None
        if batch is None:
            shape = self._rules.open(offset, hour, writer, now=self._clock(), rewrite=rewrite)
            batch = state.batch = _Batch(shape, writer, by_datums=self._by_datums(writer, rewrite))
        return batch

    def _by_datums(self, writer: SchemaVersion, rewrite: ObjectRange | None) -> bool:
        """Whether a batch of ``writer`` is built from its datums alone (``_Batch.by_datums``)."""
        return (
            self._columns
            and rewrite is None
            and writer.fingerprint == self.codec.reader.fingerprint
            and writer.program is not None
        )

    def _passed_over(self, part: Part, state: _Partition, offset: int) -> None:
        """An offset not written (filtered, dead-lettered, kept as written): a rewrite whose
        last offset it is, whatever it holds, is complete."""
        batch = state.batch
        if batch is not None and batch.shape.forced is not None:
            batch.processed = offset
            if offset >= batch.shape.forced.last:
                self._flush(part)

    def _decoded(self, part: Part, message: Message) -> _Decoded | None:
        """The record, or DecodeError (the dead-letter topic); the registry away, or an id it
        does not know yet (within its grace), is asked again with the partitions paused."""
        try:
            return self._decode(message)
        except KafkubeError as err:
            if not err.retriable:  # a DecodeError among them: the dead-letter topic
                raise
        decoded = self._retried(part, lambda: self._decode(message), self._registry_away)
        return None if decoded is _GONE else decoded  # type: ignore[return-value]

    def _decode(self, message: Message) -> _Decoded:
        writer, datum, record = self.codec.scan(message.value() or b"", self._keep)
        if self._by_cluster and not is_cluster_name(record["cluster"]):
            raise DecodeError(
                f"cluster name {record['cluster']!r} is not a safe label: it would name a folder"
            )
        line = b""
        if self._format.lines:
            try:
                line = json_line_bytes(record)
            except TypeError as err:  # orjson's: a value JSON has not (bytes)
                raise DecodeError(f"it has no JSON: {err}") from err
        if self.settings.sink.time_field == "event":
            return writer, datum, record, _event_hour(record), line
        return writer, datum, record, hour_of(message.timestamp()[1]), line

    def _skip(self, part: Part, state: _Partition, offset: int, *, counted: bool = True) -> None:
        """A record this group's filter leaves out (or one kept as written): not written; its
        offset is committed with the batch open now, or (none open) within a second."""
        if counted:
            self.stats.filtered += 1
            metrics.FILTERED.labels(self.settings.sink.sink_type).inc()
            self._read_at(part, state, offset)
        if state.batch is not None:
            state.batch.processed = offset
            self._passed_over(part, state, offset)
            return
        if state.skipped is None:
            state.skipped_at = self._clock()
        state.skipped = offset + 1  # committed by _commit_skipped, from the loop

    def _commit_skipped(self) -> None:
        """Commit past filtered records no batch carries, at most once a second a partition."""
        now = self._clock()
        for part, state in list(self._partitions.items()):
            if state.batch is None and state.skipped is not None and now - state.skipped_at >= 1:
                self._commit(part, state, state.skipped)

    def _dead_letter_delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._dlq_refused.append(error.str())

    def _dead_letter(self, part: Part, message: Message, err: Exception, state: _Partition) -> None:
        assert self._dlq is not None  # noqa: S101 - set in run()
        timestamp = message.timestamp()[1]
        self._dlq.produce(
            dlq_topic(part.topic),
            key=message.key(),
            value=message.value(),
            on_delivery=self._dead_letter_delivered,
            headers=[
                ("error.class", type(err).__name__),
                ("error.message", str(err)),
                ("original.topic", message.topic() or ""),
                ("original.partition", str(message.partition())),
                ("original.offset", str(message.offset())),
                ("original.timestamp", str(timestamp)),
            ],
        )
        self.stats.dead_letters += 1
        metrics.DEAD_LETTERS.labels(self.settings.sink.sink_type).inc()
        log.warning(
            "partition %s offset %s to the dead-letter topic: %s", part, message.offset(), err
        )
        state.dead_letters_pending = True
        offset = message.offset() or 0
        self._read_at(part, state, offset)
        if state.batch is not None:
            state.batch.processed = offset
            self._passed_over(part, state, offset)
        else:  # no batch carries this offset: commit past the dead letter now
            self._commit(part, state, offset + 1)

    def _rotate_aged(self) -> None:
        """The wall-clock rule: also for a partition that receives nothing more."""
        now = self._clock()
        for part, state in list(self._partitions.items()):
            batch = state.batch
            if batch is not None and self._rules.aged(batch.shape, now):
                self._flush(part)
            elif batch is None and state.committed >= 0:
                self._export_position(part, state.committed)  # the lag, past any marker

    # --- writing and committing ---------------------------------------------------------------

    def _flush(self, part: Part) -> None:
        """Close a partition's open batch: its write joins the partition's queue (the index
        first, then the objects), and its offset is committed once it and every write before
        it are durable."""
        state = self._partitions.get(part)
        if state is None or state.batch is None:
            return
        batch, state.batch = state.batch, None
        last = self._rules.last(batch.shape, batch.last)
        index = None
        if batch.datums and not self.settings.sink.keeps_offsets:
            # The index first where it does not cover the object yet (another folder): never
            # behind the store. A crash in between leaves a range whose object is missing,
            # which the next owner simply writes, cut at the same place.
            state.index.add(ObjectRange(batch.first, last, batch.shape.hour), state.committed)
            folders = self._folders(part, batch)
            if not state.index.holds(batch.first, folders):
                state.index.leave_open(folders, last + 1)
                index = state.index.to_bytes()
                self.stats.index_writes += 1
        queue = self._writes.setdefault(part, deque())
        queue.append(_Write(part, batch, last, index, time.monotonic()))
        self._start_ready(queue)
        self._settle()

    def _start_ready(self, queue: deque[_Write]) -> None:
        """Start a partition's writes that may go now: the first, and behind it (on writer
        threads) each that carries no index while none before it does. A write with an index
        waits for those before it and holds back those after it: an index must never land
        after a later one, nor an object before the index that covers it. Commits still go
        in order, each once every write before it is durable."""
        if self.settings.sink.keeps_offsets:  # a table's: its commits are its offsets
            if queue[0].future is None:
                self._start_write(queue[0])
            return
        for at, job in enumerate(queue):
            if at and job.index is not None:
                return
            if job.future is None:
                self._start_write(job)
            if job.index is not None:
                return

    def _start_write(self, job: _Write) -> None:
        """A partition's write, on a writer thread (here and now before they exist)."""
        if self._pool is not None:
            job.future = self._pool.submit(self._put, job)
            return
        self._retry_write(job)

    def _put(self, job: _Write) -> int:
        """Every write of a batch, in order: the index, then each object. Its bytes."""
        part = job.part
        if job.index is not None:
            self.destination.put(self._index_name(part), job.index, {})
        if self.settings.sink.keeps_offsets:
            with cast("KeepsOffsets", self.destination).coming(part.topic):
                return self._put_objects(job)
        return self._put_objects(job)

    def _put_objects(self, job: _Write) -> int:
        part, batch = job.part, job.batch
        written = 0
        for cluster, piece in self._parts(batch):
            name = object_name(
                part.topic,
                part.number,
                first=batch.first,
                last=job.last,
                hour=batch.shape.hour,
                extension=self._extension,
                cluster=cluster,
            )
            data = self._format.write(
                Batch(
                    name,
                    batch.writer,
                    piece.datums,
                    () if batch.by_datums else piece.records,
                    self.settings.sink.output_codec,
                    (part.number, piece.offsets) if self._positions else None,
                    lines=piece.lines,
                )
            )
            metadata = {
                "kafkube-topic": part.topic,
                "kafkube-partition": str(part.number),
                "kafkube-first-offset": str(batch.first),
                "kafkube-last-offset": str(job.last),
                "kafkube-records": str(len(piece.datums)),
                "kafkube-schema": batch.writer.fingerprint_hex,
                **({"kafkube-cluster": cluster} if cluster is not None else {}),
            }
            self.destination.put(name, data, metadata)
            written += len(data)
        return written

    def _settle(self, *, all_of_them: bool = False) -> None:
        """Take in the writes done: commit behind them, start each partition's next. Then
        wait while more batches are queued than ``_max_queued`` (a store slower than Kafka
        holds the reading back), or, with ``all_of_them``, until none is left."""
        while self._writes:
            for part, queue in list(self._writes.items()):
                # In order: a later write done waits for those before it.
                while self._writes.get(part) is queue and _done(queue[0]):
                    self._finish(queue[0])
            queued = sum(len(queue) for queue in self._writes.values())
            if not queued or (not all_of_them and queued <= self._max_queued):
                return
            running = [q[0].future for q in self._writes.values() if q[0].future is not None]
            futures.wait(running, timeout=1, return_when=futures.FIRST_COMPLETED)

    def _finish(self, job: _Write) -> None:
        """A write that came back: done, or failed (a store away: tried again here, with the
        partitions paused, as long as it takes)."""
        assert job.future is not None  # noqa: S101 - started
        error = job.future.exception()
        if error is None:
            self._complete(job, job.future.result())
            return
        if not (isinstance(error, KafkubeError) and error.retriable):
            raise error
        self._count_retry()
        self._retry_write(job)

    def _retry_write(self, job: _Write) -> None:
        written = self._retried(
            job.part,
            lambda: self._put(job),
            self._store,
            on_retry=self._count_retry,
            doing=f"; partition {job.part} from offset {job.batch.first} not written: nothing "
            "committed, retrying",
        )
        if written is _GONE:
            self._writes.pop(job.part, None)  # the next owner reads it again
            return
        self._complete(job, cast("int", written))

    def _count_retry(self) -> None:
        self.stats.write_retries += 1
        metrics.WRITE_RETRIES.labels(self.settings.sink.sink_type).inc()

    def _complete(self, job: _Write, written: int) -> None:
        """A batch durable: counted, committed (with what waited behind it), and the
        partition's next write started."""
        part, batch = job.part, job.batch
        queue = self._writes.get(part)
        if queue is None or queue[0] is not job:
            return  # the partition went away meanwhile
        queue.popleft()
        if batch.datums:
            sink = self.settings.sink.sink_type
            metrics.WRITE_SECONDS.labels(sink).observe(time.monotonic() - job.began)
            metrics.RECORDS.labels(sink).inc(len(batch.datums))
            metrics.BATCHES.labels(sink).inc()
            metrics.BYTES.labels(sink).inc(written)
            if self.settings.sink.keeps_offsets:
                conflicts = cast("KeepsOffsets", self.destination).conflicts
                metrics.COMMIT_CONFLICTS.labels(sink).inc(conflicts - self.stats.commit_conflicts)
                self.stats.commit_conflicts = conflicts
            self.stats.records += len(batch.datums)
            self.stats.batches += 1
            self.stats.bytes += written
        state = self._partitions.get(part)
        offset = batch.processed + 1
        if not queue:
            del self._writes[part]
            if state is not None and state.deferred is not None:
                offset, state.deferred = max(offset, state.deferred), None
        if state is not None:
            self._commit(part, state, offset, durable=True)
        if queue:
            self._start_ready(queue)

    def _folders(self, part: Part, batch: _Batch) -> list[str]:
        """The folders of a batch's objects (one per cluster it holds, in that layout)."""
        clusters = sorted(set(batch.clusters)) if self._by_cluster else [None]
        return [object_folder(part.topic, batch.shape.hour, cluster) for cluster in clusters]

    def _parts(self, batch: _Batch) -> Iterator[tuple[str | None, _Batch]]:
        """The objects a batch becomes: itself; in the cluster layout one per cluster it holds,
        in name order, each with that cluster's records in offset order. The same batch always
        splits the same way, so a rewrite reproduces every object."""
        if not self._by_cluster:
            yield None, batch
            return
        parts: dict[str, _Batch] = {}
        for index, owner in enumerate(batch.clusters):
            part = parts.get(owner)
            if part is None:
                part = parts[owner] = _Batch(batch.shape, batch.writer)
            part.datums.append(batch.datums[index])
            if batch.records:
                part.records.append(batch.records[index])
            if batch.lines:
                part.lines.append(batch.lines[index])
            part.offsets.append(batch.offsets[index])
        for cluster in sorted(parts):
            yield cluster, parts[cluster]

    def _retried(
        self,
        part: Part,
        call: Callable[[], T],
        outage: Outage,
        *,
        on_retry: Callable[[], None] = lambda: None,
        doing: str = "",
    ) -> T | object:
        """``call()``, a failure that may pass (a store or the registry away) retried with a
        backoff up to 30 s while every partition is paused (polling on, so this member keeps
        its group), said through ``outage`` once per change of state; ``_GONE`` if the
        partition went away (or the sink stops) meanwhile."""
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - set in run()

        def gone(_: object = None) -> bool:
            return part not in self._partitions or self._stop.is_set()

        def failed(retry: RetryCallState) -> None:
            on_retry()
            outage.failed(retry.outcome and retry.outcome.exception(), doing=doing)
            paused.hold()

        with _Paused(consumer, until=gone) as paused:
            try:
                for attempt in retrying(
                    retry=lambda err: getattr(err, "retriable", False),
                    stop=gone,
                    sleep=paused.wait,
                    before_sleep=failed,
                ):
                    with attempt:
                        if attempt.retry_state.attempt_number > 1 and gone():
                            return _GONE
                        answer = call()
            except KafkubeError as err:
                if err.retriable and gone():
                    return _GONE
                raise
        outage.recovered()
        return answer

    def _commit(
        self, part: Part, state: _Partition, next_offset: int, *, durable: bool = False
    ) -> None:
        """Commit a partition's offset: its records are durable (``durable``: a write just
        said so; else, with writes still queued, it waits for them). Sent without waiting (a
        commit costs the group coordinator's round trip, 5 ms, more than writing a batch):
        the answer comes through ``_on_commit`` at a later poll. While the sink stops, each
        commit is waited for."""
        if not durable and part in self._writes:
            state.deferred = max(next_offset, state.deferred or 0)
            return
        consumer, dlq = self._consumer, self._dlq
        assert consumer is not None and dlq is not None  # noqa: PT018, S101 - set in run()
        if state.dead_letters_pending:
            if dlq.flush(30):
                raise SinkError("the dead-letter topic did not take its records within 30 s")
            if self._dlq_refused:
                raise SinkRefusedError(
                    f"the dead-letter topic {dlq_topic(part.topic)} refused a record "
                    f"({self._dlq_refused[0]}); nothing after it is committed"
                )
            state.dead_letters_pending = False
        state.uncommitted = None
        if state.skipped is not None and state.skipped <= next_offset:
            state.skipped = None
        offsets, wait = [TopicPartition(part.topic, part.number, next_offset)], self._stop.is_set()
        try:
            if wait:
                consumer.commit(offsets=offsets, asynchronous=False)
            else:
                consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as err:
            self._commit_refusal(part, next_offset, err.args[0])
            return
        if wait:
            self._committed(part, next_offset)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Kafka's answer to commits sent without waiting (called from within a poll)."""
        for tp in partitions:
            part, problem = Part(tp.topic, tp.partition), tp.error or error
            try:
                if problem is None:
                    self._committed(part, tp.offset)
                else:
                    self._commit_refusal(part, tp.offset, problem)
            except SinkError as err:  # raised from the loop, not from within librdkafka
                self._commit_failed = self._commit_failed or err

    def _committed(self, part: Part, offset: int) -> None:
        self.stats.last_commit_at = time.time()
        self.stats.busy_cpu_seconds = time.process_time() - self._cpu_at_first
        self._commits.recovered()
        state = self._partitions.get(part)
        if state is None or offset <= state.committed:
            return  # revoked meanwhile, or a later commit answered first
        state.committed = offset
        if state.uncommitted is not None and state.uncommitted <= offset:
            state.uncommitted = None
        self._export_position(part, offset)

    def _commit_refusal(self, part: Part, offset: int, error: KafkaError) -> None:
        """A commit refused: for a rebalance under way or a coordinator away, committed again
        at the next tick; otherwise (a fenced instance, no rights on the group) the end."""
        self._raise_if_fenced(error)
        if error.code() not in _COMMIT_RETRIABLE:
            raise SinkError(
                f"Kafka refused the commit of partition {part} at {offset}: {error.str()}"
            )
        self._commits.failed(f"partition {part} at {offset}: {error.str()}")
        state = self._partitions.get(part)
        if state is not None and offset > state.committed:
            state.uncommitted = max(offset, state.uncommitted or 0)

    def _export_position(self, part: Part, committed: int) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - set in run()
        labels = (self.settings.sink.sink_type, part.topic, str(part.number))
        metrics.COMMITTED.labels(*labels).set(committed)
        # The end as of the last fetch response: no request to the broker.
        _, end = consumer.get_watermark_offsets(TopicPartition(*part), cached=True)
        if end < 0:
            return
        # Read to the end (the consumer said so) and nothing open or skipped behind it: what
        # is left up to the log end are commit markers, no records.
        state = self._partitions.get(part)
        if state is not None and state.batch is None and state.skipped is None:
            committed = max(committed, state.read_to)
        metrics.LAG.labels(*labels).set(max(0, end - committed))

    def _commit_refused(self) -> None:
        """Commit again what a rebalance refused: the records are durable, the offset must
        follow, or a partition that receives nothing more would show lag forever."""
        for part, state in list(self._partitions.items()):
            if state.uncommitted is not None:
                self._commit(part, state, state.uncommitted, durable=True)


def serve_sink(
    settings: SinkSettings,
    destination: Destination,
    *,
    listen: tuple[str, int] | None,
    stop: threading.Event,
) -> SinkStats:
    """A sink as a service: its format's library checked (a bad setting is refused before
    anything is waited for), the login, then /metrics and the probes (the store answers,
    Kafka has the topic) on ``listen`` while it runs."""
    FORMATS[settings.sink.format].check(f"sinks.{settings.sink.sink_type}.format")
    # With a topic pattern no one topic must exist: Kafka answering is the check.
    topic = None if settings.sink.topics else settings.topic
    checks = {"store": destination.ready, "kafka": kafka_probe(settings.kafka, topic)}
    with serving(listen, metrics.REGISTRY, checks):
        if not wait_for_kafka_login(settings.kafka, stop):
            return SinkStats()
        settings = dataclasses.replace(settings, kafka=refusing_later_logins(settings.kafka))
        return SinkRunner(settings, destination).run(stop)
