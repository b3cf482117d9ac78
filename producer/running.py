"""The producer: every Kubernetes event occurrence into Kafka, exactly once, across crashes.

Design
------
An occurrence is (uid, resourceVersion). Each batch of watch events is written
in one Kafka transaction together with (a) the de-duplication state, uid ->
last published resourceVersion and count, in a compacted state topic, and
(b) the watch checkpoint, the resourceVersion the batch ends at. Consumers read
with ``isolation.level=read_committed``, so a batch is visible whole or not at
all, and the state always matches what is visible.

At start, ``init_transactions`` fences any older producer with the same
transactional id and aborts its open transaction; the state topic is then read
back, and the watch resumes from the checkpoint. Versions written while the
producer was down are still in the server's watch window, so each is published.
If the checkpoint has expired (410 Gone), the producer relists: every event the
list shows whose resourceVersion is newer than the one published for its uid is
published (watch type ADDED), uids the server no longer has are forgotten, and
a core/v1 event whose count jumped by more than one since the last version seen
is logged and counted as provably missed. Correctness never depends on
bookmarks; they only move the checkpoint forward on a quiet stream.

A crash at any moment loses at most an uncommitted transaction, which the
restart aborts and redoes from the checkpoint: nothing is lost, nothing doubled.
The state stays bounded: a uid is forgotten when its event is DELETED (events
expire after about an hour), when a relist no longer shows it, or when it has
not been seen for ``forget_after_seconds``.

No single event stalls the stream. An event whose record exceeds what the
topic accepts (read at start) is published cut to fit and marked
(``kafkube.producer.trimming``). An event the schema refuses, or one Kafka refused
for good (the transaction is aborted once; the delivery report names it), goes to
``<topic>.producer-dlq`` with the reason in its headers, in the transaction that
moves the state past it, and the stream goes on. Errors that may pass (a broker
away, a timeout) abort the transaction and retry it, as before.

SIGTERM (``stop``) ends the watch, commits the open batch and returns; that
takes at most the linger time plus one transaction commit (60 s bound, about a
second in practice).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from kafkube.producer.converting import ConversionError, parse_time, to_record
from kafkube.producer.dedup import PublishedState, StateUpdate
from kafkube.producer.publishing import (
    Header,
    Outgoing,
    PublishError,
    Refusal,
    TransactionalPublisher,
    max_message_bytes,
    read_state,
)
from kafkube.producer.settings import ProducerSettings
from kafkube.producer.trimming import fit
from kafkube.producer.watching import EventSource, ResourceExpiredError, WatchItem
from kafkube.schemas.codec import Codec, DecodeError, EncodeError
from kafkube.schemas.errors import SourceError
from kafkube.schemas.records import API_CORE_V1, EventRecord, WatchType
from kafkube.schemas.topics import (
    HEADER_CLUSTER,
    HEADER_RESOURCE_VERSION,
    HEADER_SCHEMA,
    HEADER_UID,
    producer_dlq_topic,
)

log = logging.getLogger(__name__)

_FILE_RUN = 256  # watch items handed over at once from a finite source
_END = object()  # the reader thread's "the server ended this watch"
# An occurrence Kafka refused this many times goes to the dead-letter topic instead (the
# first refusal of a record too large is retried once, cut to a limit read again).
_REFUSALS_BEFORE_DEAD_LETTER = 2
# ... and one refused even there (the dead-letter topic's own limits) is given up, loudly.
_REFUSALS_BEFORE_GIVING_UP = 3
# Room for what a record carries besides its value: batch and record framing, key, headers.
_RECORD_OVERHEAD = 1024


@dataclass
class ProducerStats:
    watched: int = 0  # ADDED, MODIFIED and DELETED items taken from the watch
    published: int = 0
    skipped_duplicates: int = 0
    relists: int = 0
    watch_restarts: int = 0
    provably_missed: int = 0
    unconvertible: int = 0
    truncated: int = 0  # published cut to fit the topic's limit
    dead_lettered: int = 0  # sent to the producer dead-letter topic instead
    given_up: int = 0  # refused even by the dead-letter topic: logged, not published
    transactions: int = 0
    aborts: int = 0
    watching: bool = False  # a watch is open now (readiness)
    # Wall-clock seconds: the first watch event taken and the last batch committed (0: none).
    first_event_at: float = 0.0
    last_commit_at: float = 0.0


class _Batch:
    def __init__(self) -> None:
        self.events: list[Outgoing] = []
        self.retried: list[tuple[str, str]] = []  # occurrences refused once, sent again here
        # By key: the state topic is compacted, so within one transaction only the last
        # update of a key counts (the checkpoint moves with every event; it is written once).
        self.state: dict[bytes, StateUpdate] = {}
        self.started = 0.0

    def add_state(self, update: StateUpdate) -> None:
        self.state.pop(update.key, None)
        self.state[update.key] = update

    def __len__(self) -> int:
        return len(self.events) + len(self.state)


class EventProducer:
    def __init__(
        self,
        settings: ProducerSettings,
        source: EventSource,
        publisher: TransactionalPublisher,
        *,
        clock: Callable[[], float] = time.time,
        observe: Callable[[ProducerStats], None] = lambda _: None,
    ) -> None:
        """``observe`` is shown the counts after every transaction and every watch change."""
        self.settings = settings
        self.source = source
        self.publisher = publisher
        self.codec = Codec()
        self.state = PublishedState(forget_after=settings.forget_after_seconds)
        self.stats = ProducerStats()
        self._clock = clock
        self._observe = observe
        self._batch = _Batch()
        self._last_expiry = clock()
        self._dlq_topic = producer_dlq_topic(settings.topic)
        self._limit = 0  # the largest value the topic takes, read at start
        self._dlq_limit = 0  # and the dead-letter topic
        # Occurrences Kafka refused for good, and how often: the next offer routes them.
        self._refused: dict[tuple[str, str], tuple[Refusal, int]] = {}

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._start_publisher()
        loaded = read_state(self.settings.kafka, self.settings.state_topic, self.state.load)
        log.info(
            "resuming: %d state records, %d uids remembered, checkpoint %s",
            loaded.records,
            len(self.state),
            self.state.checkpoint,
        )
        backoff = 0.5
        while not stop.is_set():
            try:
                if self.state.checkpoint is None:
                    self._relist(first_start=self.stats.relists == 0 and loaded.records == 0)
                self._watch(stop)
                backoff = 0.5
                if self.source.finite:
                    break
            except ResourceExpiredError as err:
                log.warning("%s; relisting", err)
                self._flush()
                self.state.checkpoint = None
            except SourceError as err:
                self._flush()
                log.warning("watch failed (%s); reconnecting in %.1f s", err, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except PublishError as err:
                # The transaction was aborted: rebuild from Kafka's committed state and go on.
                self.stats.aborts += 1
                self._observe(self.stats)
                log.warning("%s; reloading state and retrying", err)
                self._note_refusals(err.refused)
                self._batch = _Batch()
                self.state = PublishedState(forget_after=self.settings.forget_after_seconds)
                read_state(self.settings.kafka, self.settings.state_topic, self.state.load)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self._flush()
        log.info("stopped: %s", self.stats)

    def _watch(self, stop: threading.Event) -> None:
        """One watch request, from the checkpoint until the server ends it or ``stop`` is set."""
        checkpoint = self.state.checkpoint
        assert checkpoint is not None  # noqa: S101 - _relist set it
        # Items go over in lists: one at a time from the network, where the next may be long
        # in coming; in runs from a file, which never waits (a hand-over per item cost as much
        # as the rest of the work on it, the two threads passing the GIL back and forth).
        run = _FILE_RUN if self.source.finite else 1
        items: queue.Queue[Any] = queue.Queue(maxsize=max(1, 10_000 // run))

        def read() -> None:
            try:
                chunk: list[WatchItem] = []
                for item in self.source.watch(
                    checkpoint, timeout_seconds=self.settings.watch_timeout_seconds
                ):
                    chunk.append(item)
                    if len(chunk) >= run:
                        items.put(chunk)
                        chunk = []
                    if stop.is_set():
                        break
                if chunk:
                    items.put(chunk)
                items.put(_END)
            except Exception as err:  # noqa: BLE001 - handed to the main thread as it is
                items.put(err)

        reader = threading.Thread(target=read, name="kafkube-watch", daemon=True)
        reader.start()
        log.info("watching from resourceVersion %s", checkpoint)
        self.stats.watch_restarts += 1
        self.stats.watching = True
        self._observe(self.stats)
        try:
            self._drain(items, stop)
        finally:
            self.stats.watching = False
            self._flush()
            self.source.stop()
            reader.join(timeout=10)
            self._observe(self.stats)

    def _drain(self, items: queue.Queue[Any], stop: threading.Event) -> None:
        """Take what the reader thread hands over, committing a batch when full or lingered."""
        while not stop.is_set():
            try:
                item = items.get(timeout=self._time_left())
            except queue.Empty:
                self._flush()
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            for watched in item:
                self._take(watched)
                if len(self._batch.events) >= self.settings.batch_max_events:
                    self._flush()

    def _time_left(self) -> float:
        if not self._batch:
            return 0.5
        waited = self._clock() - self._batch.started
        return max(0.0, self.settings.linger_seconds - waited)

    # --- deciding what to publish (pure decisions on the state) -------------------------------

    def _take(self, item: WatchItem) -> None:
        if not self.stats.first_event_at:
            self.stats.first_event_at = time.time()
        rv = item.resource_version
        if item.type == "BOOKMARK":
            self._add_state(self.state.set_checkpoint(rv))
            return
        if item.type not in {"ADDED", "MODIFIED", "DELETED"}:
            log.warning("ignoring watch event of type %s", item.type)
            return
        watch_type: WatchType = item.type  # type: ignore[assignment]
        self.stats.watched += 1
        self._offer(item.object, watch_type)
        if watch_type == "DELETED":
            uid = str(item.object.get("metadata", {}).get("uid", ""))
            forgotten = self.state.forget(uid)
            if forgotten is not None:
                self._add_state(forgotten)
        if rv:
            self._add_state(self.state.set_checkpoint(rv))

    def _offer(self, obj: dict[str, Any], watch_type: WatchType, *, publish: bool = True) -> None:
        """Publish this occurrence unless it already was; note it in the state either way."""
        now = self._clock()
        try:
            record = to_record(
                obj,
                watch_type=watch_type,
                cluster=self.settings.cluster,
                producer_id=self.settings.producer_id,
                observed_at=datetime.fromtimestamp(now, UTC),
                api_version=self.settings.api_version,
            )
        except ConversionError as err:
            self.stats.unconvertible += 1
            log.error("an event that cannot be identified: %s", err)  # noqa: TRY400
            if publish:
                self._dead_letter(obj, err)
            return
        uid, rv = record["uid"], record["resource_version"]
        if not self.state.is_new(uid, rv):
            self.stats.skipped_duplicates += 1
            return
        if publish and not self._routed_elsewhere(obj, (uid, rv)):
            self._publish(record, obj)
        self._add_state(self.state.published(uid, rv, record["count"], now=now))

    def _publish(self, record: EventRecord, obj: dict[str, Any]) -> None:
        """The record into the batch, cut to fit the topic; the dead-letter topic if refused."""
        try:
            fitted, value = fit(record, self.codec.encode, self._limit)
        except EncodeError as err:
            self._dead_letter(obj, err)
            return
        uid = record["uid"]
        if fitted["truncated"] is not None:
            self.stats.truncated += 1
            log.warning("event %s published cut to fit: %s", uid, fitted["truncated"])
        regarding = record["regarding"]
        headers: list[Header] = [
            (HEADER_UID, uid),
            (HEADER_RESOURCE_VERSION, record["resource_version"]),
            (HEADER_SCHEMA, self.codec.writer.fingerprint_hex),
        ]
        key = ((regarding and regarding["uid"]) or uid).encode()
        self._add_record((self.settings.topic, key, value, headers))

    def _routed_elsewhere(self, obj: dict[str, Any], occurrence: tuple[str, str]) -> bool:
        """Whether an occurrence Kafka refused before went to the dead-letter topic now, or
        was given up; False: publish it (cut to a limit read again, after a size refusal)."""
        entry = self._refused.get(occurrence)
        if entry is None:
            return False
        refusal, times = entry
        if refusal.size and times < _REFUSALS_BEFORE_DEAD_LETTER:
            self._batch.retried.append(occurrence)  # cut to the limit read again, or smaller
            return False
        del self._refused[occurrence]
        if times >= _REFUSALS_BEFORE_GIVING_UP:
            self.stats.given_up += 1
            log.error(
                "event %s version %s refused by the topic and its dead-letter topic (%s): "
                "not published",
                *occurrence,
                refusal.reason,
            )
            return True
        self._dead_letter(obj, PublishError(f"Kafka refused it: {refusal.reason}"))
        return True

    def _start_publisher(self) -> None:
        """(Re)start the Kafka producer with the topics' size limits, read now."""
        topics = [self.settings.topic, self._dlq_topic, self.settings.state_topic]
        limits = max_message_bytes(self.settings.kafka, topics)
        self._limit = limits[self.settings.topic] - _RECORD_OVERHEAD
        self._dlq_limit = limits[self._dlq_topic] - _RECORD_OVERHEAD
        self.publisher.init(batch_bytes=min(limits.values()))

    def _note_refusals(self, refused: list[Refusal]) -> None:
        """Remember what Kafka refused, by occurrence; after a size refusal, read the limits
        again (a topic's may have been lowered) and restart the producer with them."""
        if len(self._refused) > 10_000:  # refusals are rare; never let them pile up
            self._refused.clear()
        for refusal in refused:
            occurrence = self._occurrence_of(refusal)
            if occurrence is not None:
                _, times = self._refused.get(occurrence, (refusal, 0))
                self._refused[occurrence] = (refusal, times + 1)
        if any(refusal.size for refusal in refused):
            self._start_publisher()

    def _occurrence_of(self, refusal: Refusal) -> tuple[str, str] | None:
        try:
            if refusal.topic == self.settings.topic:
                record = self.codec.decode(refusal.value)
                return str(record["uid"]), str(record["resource_version"])
            if refusal.topic == self._dlq_topic:
                metadata = orjson.loads(refusal.value).get("metadata") or {}
                return str(metadata.get("uid", "")), str(metadata.get("resourceVersion", ""))
        except (DecodeError, orjson.JSONDecodeError, AttributeError):
            log.warning("Kafka refused a record of %s that cannot be read back", refusal.topic)
        return None  # a state record: small, and sent again with its batch

    def _dead_letter(self, obj: dict[str, Any], err: Exception) -> None:
        """The raw object to the producer dead-letter topic, in the batch's transaction."""
        metadata = obj.get("metadata") or {}
        uid, rv = str(metadata.get("uid", "")), str(metadata.get("resourceVersion", ""))
        value = orjson.dumps(obj)
        headers: list[Header] = [
            ("error.class", type(err).__name__),
            ("error.message", str(err)[:4096]),
            (HEADER_UID, uid),
            (HEADER_RESOURCE_VERSION, rv),
            (HEADER_CLUSTER, self.settings.cluster),
        ]
        if len(value) > self._dlq_limit:
            value = value[: self._dlq_limit]
            headers.append(("kafkube.value_cut_at", str(self._dlq_limit)))
        self.stats.dead_lettered += 1
        log.warning("event %s version %s to %s: %s", uid, rv, self._dlq_topic, err)
        self._add_record((self._dlq_topic, uid.encode(), value, headers))

    def _add_record(self, record: Outgoing) -> None:
        if not self._batch:
            self._batch.started = self._clock()
        self._batch.events.append(record)

    def _add_state(self, update: StateUpdate) -> None:
        if not self._batch:
            self._batch.started = self._clock()
        self._batch.add_state(update)

    def _relist(self, *, first_start: bool) -> None:
        listing = self.source.list()
        self.stats.relists += 1
        since = self.settings.since if first_start else None
        published_before = self.stats.published
        for obj in listing.items:
            uid = str(obj.get("metadata", {}).get("uid", ""))
            if self.settings.api_version == API_CORE_V1:
                missed = self.state.missed_count(uid, obj.get("count"))
                if missed:
                    self.stats.provably_missed += missed
                    log.warning(
                        "event %s repeated %d times while unwatched: those occurrences are lost",
                        uid,
                        missed,
                    )
            self._offer(obj, "ADDED", publish=since is None or not _older_than(obj, since))
            if len(self._batch.events) >= self.settings.batch_max_events:
                self._flush()
        for update in self.state.forget_all_but(
            str(obj.get("metadata", {}).get("uid", "")) for obj in listing.items
        ):
            self._add_state(update)
        self._add_state(self.state.set_checkpoint(listing.resource_version))
        self._flush()
        log.info(
            "listed %d events at resourceVersion %s: %d published",
            len(listing.items),
            listing.resource_version,
            self.stats.published - published_before,
        )

    def _flush(self) -> None:
        if not self._batch:
            return
        now = self._clock()
        if now - self._last_expiry > 60:
            for update in self.state.expire(now=now):
                self._batch.add_state(update)
            self._last_expiry = now
        batch, self._batch = self._batch, _Batch()
        self.publisher.publish(batch.events, list(batch.state.values()))
        for occurrence in batch.retried:
            self._refused.pop(occurrence, None)
        self.stats.published += sum(record[0] != self._dlq_topic for record in batch.events)
        self.stats.transactions += 1
        self.stats.last_commit_at = time.time()
        self._observe(self.stats)


def _older_than(obj: dict[str, Any], since: datetime) -> bool:
    series = obj.get("series") or {}
    times = [
        parse_time(obj.get(name))
        for name in ("lastTimestamp", "deprecatedLastTimestamp", "eventTime")
    ] + [parse_time(series.get("lastObservedTime"))]
    known = [t for t in times if t is not None]
    return bool(known) and max(known) < since
