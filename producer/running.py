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

import contextlib
import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import orjson
from tenacity import (
    RetryCallState,
    RetryError,
)

from kafkube.core.errors import SourceError
from kafkube.core.outages import Outage
from kafkube.core.waiting import BACKOFF, retrying
from kafkube.producer.converting import (
    ConversionError,
    Converted,
    one_pass,
    parse_time,
    to_record,
)
from kafkube.producer.dedup import CLUSTER_WIDE, PublishedState, StateUpdate
from kafkube.producer.enriching import Enricher
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
from kafkube.producer.watching import (
    EventSource,
    LineItem,
    LineReader,
    Listing,
    ResourceExpiredError,
    WatchItem,
)
from kafkube.schemas.codec import Codec, DecodeError, EncodeError
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
_END = object()  # a reader thread's "the server ended this watch"
_OPENED = object()  # a reader thread's "the watch is open"
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
    excluded: int = 0  # left out by the producer's filter
    enriched: int = 0  # carrying the involved object's labels and owner
    enrichment_skipped: int = 0  # whose read was not made in time (bounds, timeout)
    # New occurrences (published or excluded) by type, then reason, as committed.
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    transactions: int = 0
    aborts: int = 0
    watching: bool = False  # a watch is open now (readiness)
    kafka_problem: str | None = None  # Kafka away, and why (readiness); None while it answers
    waiting_since: float = 0.0  # wall clock: events have waited for a commit since (0: none)
    # Wall-clock seconds: the first watch event taken and the last batch committed (0: none).
    first_event_at: float = 0.0
    last_commit_at: float = 0.0


class _Batch:
    def __init__(self) -> None:
        self.events: list[Outgoing] = []
        self.retried: list[tuple[str, str]] = []  # occurrences refused once, sent again here
        # Counted into the stats when the transaction commits, not when added: an aborted
        # batch is built again, and would count twice.
        self.truncated = 0
        self.dead_letters = 0
        self.excluded = 0
        self.kinds: Counter[tuple[str, str]] = Counter()
        # By key: the state topic is compacted, so within one transaction only the last
        # update of a key counts (the checkpoint moves with every event; it is written once).
        self.state: dict[bytes, StateUpdate] = {}
        # Scopes whose checkpoint moved: their record is made once, when the batch commits.
        self.moved: set[str] = set()
        self.started: float | None = None  # when its first record or update came

    def add_state(self, update: StateUpdate) -> None:
        self.state[update.key] = update  # the key's last update replaces the one before

    def __len__(self) -> int:
        return len(self.events) + len(self.state) + len(self.moved)

    def __bool__(self) -> bool:  # asked per event: the first list that holds one answers
        return bool(self.events or self.state or self.moved)


class EventProducer:
    def __init__(  # noqa: PLR0913 - its sources, sink, clock and observers, each by name
        self,
        settings: ProducerSettings,
        sources: Mapping[str, EventSource],
        publisher: TransactionalPublisher,
        *,
        clock: Callable[[], float] = time.time,
        observe: Callable[[ProducerStats], None] = lambda _: None,
        codec: Codec | None = None,
        enricher: Enricher | None = None,
    ) -> None:
        """``observe`` is shown the counts after every transaction and every watch change;
        ``codec`` frames the values (default: the registry-less framing)."""
        self.settings = settings
        # One watch per scope: CLUSTER_WIDE, or each listed namespace (each its own rights).
        self.sources = dict(sources)
        self.publisher = publisher
        self.codec = codec or Codec()
        self._filter = settings.event_filter
        self._enricher = enricher
        self.state = PublishedState(
            cluster=settings.cluster, forget_after=settings.producer.forget_after_seconds
        )
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
        self._fresh = False  # the state topic was empty at start: --since applies
        self._listed: set[str] = set()  # scopes listed since start
        self._relisting: dict[str, _Relisting] = {}  # scopes whose list is under way
        self._said_state = False  # the first read of the state is told, with what it held
        self._limits_changed = False  # a size refusal: read the topics' limits again
        self._schema_header = (HEADER_SCHEMA, self.codec.writer.fingerprint_hex)  # every record's
        # The compiled one pass, where no filter or enricher needs the record itself.
        self._one_pass = (
            one_pass(
                self.codec,
                cluster=settings.cluster,
                producer_id=settings.producer.producer_id,
                api_version=settings.producer.api_version,
            )
            if self._filter.passes_all and enricher is None
            else None
        )
        self.outage = Outage("Kafka", log)

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Publish until ``stop``. A failure Kafka may recover from (a broker away, a timeout, a
        coordinator moving, a failed abort, a fatal error of this client's own) is waited out:
        the transaction is aborted or the producer made anew, the state read again, and the
        watch resumes from the committed checkpoint, with a backoff up to 30 s between tries.
        Fenced by another producer, it raises ``FencedError``. ``stats.waiting_since`` says
        since when events have waited for a commit (a leader that cannot publish hands over
        on it: ``kafkube.producer.leadership``)."""
        with contextlib.suppress(RetryError):  # stopped while recovering: nothing more to do
            for attempt in retrying(
                retry=lambda err: isinstance(err, PublishError),
                stop=stop,
                before_sleep=self._recover,
                reraise=False,
            ):
                with attempt:
                    self._resume(stop)
        try:
            self._flush()
        except PublishError as err:  # the next start publishes it, from the checkpoint
            log.warning("the last batch was not committed (%s): the next start publishes it", err)
        log.info("stopped: %s", self.stats)

    def _resume(self, stop: threading.Event) -> None:
        """(Re)start the Kafka producer if needed, read the committed state, then watch."""
        if not self.publisher.usable or self._limits_changed:
            self._start_publisher()
            self._limits_changed = False
        state = PublishedState(
            cluster=self.settings.cluster, forget_after=self.settings.producer.forget_after_seconds
        )
        read_state(self.settings.kafka, self.settings.state_topic, state.load)
        self.state = state
        self.outage.recovered()
        self._update_readiness()
        if self._said_state:
            self._watch_all(stop)
            return
        self._said_state = True
        self._fresh = state.own_records == 0
        log.info(
            "resuming cluster %s: %d state records, %d uids remembered, checkpoints %s "
            "(%d records of other clusters left alone)",
            state.cluster,
            state.own_records,
            len(state),
            {scope or "cluster-wide": rv for scope, rv in state.checkpoints.items()},
            state.other_records,
        )
        if state.legacy_records:
            log.warning(
                "%d state records were written before state keys named their cluster: they are "
                "left alone, and %s",
                state.legacy_records,
                "this cluster's own state is used"
                if state.own_records
                else "this cluster is listed again (events alive now may be published once more)",
            )
        self._watch_all(stop)

    def _recover(self, retry: RetryCallState) -> None:
        """A round failed: nothing of its open transaction is visible. The next round reads
        the committed state again and resumes from its checkpoint; a failure that is not
        one record refused is Kafka away, said once per change of state."""
        err = retry.outcome and retry.outcome.exception()
        assert isinstance(err, PublishError)  # noqa: S101 - the only error retried
        self.stats.aborts += 1
        self._batch = _Batch()
        if err.refused:
            log.warning("%s; reloading state and retrying", err)
            self._note_refusals(err.refused)
        else:
            self.outage.failed(err, doing="; publishing paused, nothing lost; retrying")
        self._update_readiness()
        self._observe(self.stats)

    def _update_readiness(self) -> None:
        self.stats.kafka_problem = self.outage.problem

    @property
    def _finite(self) -> bool:
        return all(source.finite for source in self.sources.values())

    def _watch_all(self, stop: threading.Event) -> None:
        """Every scope's watch, each in its own thread, from the committed checkpoints, until
        ``stop`` (or a finite source's end); a failed transaction ends them all (PublishError)."""
        halt = threading.Event()  # this round's readers: set when it ends
        items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=10_000 // _FILE_RUN + 16)
        inline = self._finite and len(self.sources) == 1
        readers = [
            threading.Thread(
                target=_Reader(
                    scope,
                    source,
                    self.state.checkpoints.get(scope),
                    functools.partial(_handed, items, halt, scope),
                    halt,
                    timeout_seconds=self.settings.producer.watch_timeout_seconds,
                ).run,
                name=f"kafkube-watch-{scope or 'all'}",
                daemon=True,
            )
            for scope, source in self.sources.items()
            if not inline
        ]
        for reader in readers:
            reader.start()
        try:
            if inline:
                self._read_inline(*next(iter(self.sources.items())), stop)
            else:
                self._drain(items, stop)
        finally:
            halt.set()
            self.stats.watching = False
            self._flush()
            for source in self.sources.values():
                source.stop()
            for reader in readers:
                reader.join(timeout=10)
            self._observe(self.stats)

    def _drain(self, items: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
        """Take what the readers hand over, committing a batch when full or lingered."""
        watching: set[str] = set()
        while not stop.is_set():
            try:
                scope, item = items.get(timeout=self._time_left())
            except queue.Empty:
                self._flush()
                self.publisher.poll()
                continue
            if self._dispatch(scope, item, watching):
                return

    def _dispatch(self, scope: str, item: object, watching: set[str]) -> bool:
        """One thing a reader handed over, taken; True: stop taking (a file's end)."""
        if isinstance(item, list):
            full = self.settings.producer.batch_max_events
            for watched in item:
                self._take(scope, watched)
                if len(self._batch.events) >= full:
                    self._flush()
        elif isinstance(item, _Page):
            self._relist_page(scope, item)
        elif isinstance(item, _Listed):
            self._relisted(scope, item.resource_version)
            item.committed.set()
        elif item is _OPENED:
            watching.add(scope)
            self.stats.watch_restarts += 1
            self.stats.watching = len(watching) == len(self.sources)
            self._observe(self.stats)
        else:
            return self._watch_ended(scope, item, watching)
        return False

    def _read_inline(self, scope: str, source: EventSource, stop: threading.Event) -> None:
        """A recording, read on this thread: a file never waits, and every event a reader
        thread parsed cost this one as much again to take (the two threads passing the GIL,
        and each event's objects, from core to core)."""
        watching: set[str] = set()
        halt = threading.Event()

        def take(item: object) -> None:
            if self._dispatch(scope, item, watching) or stop.is_set():
                halt.set()

        _Reader(
            scope,
            source,
            self.state.checkpoints.get(scope),
            take,
            halt,
            timeout_seconds=self.settings.producer.watch_timeout_seconds,
            read_line=self._line_reader(),
        ).run()

    def _line_reader(self) -> LineReader | None:
        """The compiled line pass over a recording's lines, where the one pass is built: read
        on this thread, which alone uses the converter (its buffers are its own)."""
        one_pass = self._one_pass
        if one_pass is None:
            return None
        clock = self._clock

        def read(line: bytes) -> LineItem | None:
            read = one_pass.convert_line(line, clock())
            return None if read is None else LineItem(read[0], read[1], line)

        return read

    def _watch_ended(self, scope: str, item: object, watching: set[str]) -> bool:
        """A scope's watch ended (``item`` says how); True: stop draining (a file's end)."""
        watching.discard(scope)
        if isinstance(item, ResourceExpiredError):
            log.warning("%s; relisting", item)
            self._flush()
            self.state.clear_checkpoint(scope)
        elif isinstance(item, SourceError):
            self._flush()
            log.warning("watch failed (%s); reconnecting", item)
        elif isinstance(item, Exception):
            raise item
        self.stats.watching = len(watching) == len(self.sources)
        self._observe(self.stats)
        return item is _END and self._finite

    def _time_left(self) -> float:
        if not self._batch:
            return 0.5
        waited = self._clock() - (self._batch.started or 0.0)
        return max(0.0, self.settings.producer.linger_seconds - waited)

    # --- deciding what to publish (pure decisions on the state) -------------------------------

    def _take(self, scope: str, item: WatchItem | LineItem) -> None:
        if not self.stats.first_event_at:
            self.stats.first_event_at = time.time()
        if item.type == "BOOKMARK":
            self._move_checkpoint(item.resource_version, scope)
            return
        if item.type not in {"ADDED", "MODIFIED", "DELETED"}:
            log.warning("ignoring watch event of type %s", item.type)
            return
        watch_type: WatchType = item.type  # type: ignore[assignment]
        self.stats.watched += 1
        # The event's resourceVersion, as the offer read it (the item's, where it could not).
        event = item if type(item) is LineItem else item.object
        rv = self._offer(event, watch_type) or item.resource_version
        if watch_type == "DELETED":
            forgotten = self.state.forget(item.uid)
            if forgotten is not None:
                self._add_state(forgotten)
        if rv:
            self._move_checkpoint(rv, scope)

    def _offer(
        self, event: dict[str, Any] | LineItem, watch_type: WatchType, *, publish: bool = True
    ) -> str | None:
        """Publish this occurrence unless it already was; note it in the state either way.
        The one pass writes its value where it can (the line pass, for a line it read);
        else the record is made, and published through the filter, the enricher and the cut
        to the topic's limit. Its resourceVersion, or None if it has none."""
        now = self._clock()
        converted = self._one_passed(event, watch_type, now)
        if converted is not None:
            value, uid, rv, count, kind, key = converted
            record = None
        else:
            obj = _dict_of(event)
            try:
                record = to_record(
                    obj,
                    watch_type=watch_type,
                    cluster=self.settings.cluster,
                    producer_id=self.settings.producer.producer_id,
                    observed_at=datetime.fromtimestamp(now, UTC),
                    api_version=self.settings.producer.api_version,
                )
            except ConversionError as err:
                self.stats.unconvertible += 1
                log.error("an event that cannot be identified: %s", err)  # noqa: TRY400
                if publish:
                    self._dead_letter(obj, err)
                return None
            uid, rv, count = record["uid"], record["resource_version"], record["count"]
            kind = (record["type"] or "", record["reason"] or "")
        if not self.state.is_new(uid, rv):
            self.stats.skipped_duplicates += 1
            return rv
        if publish:
            self._batch.kinds[kind] += 1
        if record is not None and not self._filter.passes(record):
            # Noted as seen (a relist does not count it again) and the checkpoint moves on.
            if publish:
                self._batch.excluded += 1
        elif publish and not (self._refused and self._routed_elsewhere(_dict_of(event), (uid, rv))):
            if record is None:
                self._add_record((self.settings.topic, key, value, self._headers(uid, rv)))
            else:
                self._publish(record, obj)
        self._add_state(self.state.published(uid, rv, count, now=now))
        return rv

    def _one_passed(
        self, event: dict[str, Any] | LineItem, watch_type: WatchType, now: float
    ) -> Converted | None:
        """The value the one pass made of the event (the line pass's, of a line it read),
        if it made one that fits the topic; None: the record is made."""
        if type(event) is LineItem:
            converted: Converted | None = event.converted
        elif self._one_pass is not None:
            converted = self._one_pass.convert(cast("dict[str, Any]", event), watch_type, now)
        else:
            return None
        return converted if converted is not None and len(converted[0]) <= self._limit else None

    def _publish(self, record: EventRecord, obj: dict[str, Any]) -> None:
        """The record into the batch, cut to fit the topic; the dead-letter topic if refused."""
        if self._enricher is not None:
            record = self._enricher.enrich(record)
        try:
            fitted, value = fit(record, self.codec.encode, self._limit)
        except EncodeError as err:
            self._dead_letter(obj, err)
            return
        uid = record["uid"]
        if fitted["truncated"] is not None:
            self._batch.truncated += 1
            log.warning("event %s published cut to fit: %s", uid, fitted["truncated"])
        regarding = record["regarding"]
        key = ((regarding and regarding["uid"]) or uid).encode()
        headers = self._headers(uid, record["resource_version"])
        self._add_record((self.settings.topic, key, value, headers))

    def _headers(self, uid: str, resource_version: str) -> list[Header]:
        return [
            (HEADER_UID, uid),
            (HEADER_RESOURCE_VERSION, resource_version),
            self._schema_header,
        ]

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
            self._limits_changed = True  # read again, and the producer restarted with them

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
        self._batch.dead_letters += 1
        log.warning("event %s version %s to %s: %s", uid, rv, self._dlq_topic, err)
        self._add_record((self._dlq_topic, uid.encode(), value, headers))

    def _add_record(self, record: Outgoing) -> None:
        if self._batch.started is None:  # its first: the linger starts
            self._batch.started = self._clock()
        self._batch.events.append(record)

    def _add_state(self, update: StateUpdate) -> None:
        if self._batch.started is None:  # its first: the linger starts
            self._batch.started = self._clock()
        self._batch.add_state(update)

    def _move_checkpoint(self, resource_version: str, scope: str) -> None:
        """The scope's watch resumes from here once the batch commits: its record goes in
        the batch, made when it is flushed (one a batch, not one an event)."""
        if self._batch.started is None:  # its first: the linger starts
            self._batch.started = self._clock()
        self.state.checkpoints[scope] = resource_version
        self._batch.moved.add(scope)

    def _relist_page(self, scope: str, page: _Page) -> None:
        """A page of what a list shows, published as it comes: each event newer than what
        was published for its uid (a list's first page starts it anew: one that failed
        before is taken again from its start, the state skipping what got published)."""
        if page.first:
            self.stats.relists += 1
            # --since counts at the very first start only, for each scope's first list.
            first = self._fresh and scope not in self._listed
            self._listed.add(scope)
            since = self.settings.producer.since if first else None
            self._relisting[scope] = _Relisting(since, self.stats.published)
        relisting = self._relisting[scope]
        since = relisting.since
        for obj in page.listing.items:
            uid = str(obj.get("metadata", {}).get("uid", ""))
            relisting.listed += 1
            if scope == CLUSTER_WIDE:
                relisting.alive.add(uid)
            if self.settings.producer.api_version == API_CORE_V1:
                missed = self.state.missed_count(uid, obj.get("count"))
                if missed:
                    self.stats.provably_missed += missed
                    log.warning(
                        "event %s repeated %d times while unwatched: those occurrences are lost",
                        uid,
                        missed,
                    )
            self._offer(obj, "ADDED", publish=since is None or not _older_than(obj, since))
            if len(self._batch.events) >= self.settings.producer.batch_max_events:
                self._flush()

    def _relisted(self, scope: str, resource_version: str) -> None:
        """A list's end: the scope's watch resumes from its resourceVersion, committed with
        the last of its events."""
        relisting = self._relisting.pop(scope)
        if scope == CLUSTER_WIDE:
            # Uids the server no longer has expired meanwhile. A namespace's list says nothing
            # of the others' uids: there, DELETED watch events and forget_after do the work.
            for update in self.state.forget_all_but(relisting.alive):
                self._add_state(update)
        self._add_state(self.state.set_checkpoint(resource_version, scope))
        self._flush()
        log.info(
            "listed %d events at resourceVersion %s (%s): %d published",
            relisting.listed,
            resource_version,
            f"namespace {scope}" if scope else "every namespace",
            self.stats.published - relisting.published_before,
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
        for scope in batch.moved:
            if scope in self.state.checkpoints:  # else cleared since: the scope lists again
                batch.add_state(self.state.checkpoint_update(scope))
        if not self.stats.waiting_since:  # events wait from now until a commit
            self.stats.waiting_since = time.time()
        self.publisher.publish(batch.events, list(batch.state.values()))
        self.stats.waiting_since = 0.0
        for occurrence in batch.retried:
            self._refused.pop(occurrence, None)
        self.stats.published += len(batch.events) - batch.dead_letters
        self.stats.dead_lettered += batch.dead_letters
        self.stats.truncated += batch.truncated
        self.stats.excluded += batch.excluded
        if self._enricher is not None:
            self.stats.enriched = self._enricher.stats.enriched
            self.stats.enrichment_skipped = self._enricher.stats.skipped
        for (event_type, reason), count in batch.kinds.items():
            reasons = self.stats.by_kind.setdefault(event_type, {})
            reasons[reason] = reasons.get(reason, 0) + count
        self.stats.transactions += 1
        self.stats.last_commit_at = time.time()
        self._observe(self.stats)


def _dict_of(event: dict[str, Any] | LineItem) -> dict[str, Any]:
    """The event's dict: a line the line pass read is parsed now."""
    return event.object if type(event) is LineItem else cast("dict[str, Any]", event)


def _relist_at_once(retry: RetryCallState) -> float:
    """The reader's wait before its next round: none after a 410 (it lists again at once),
    else a backoff from 0.5 s to 30 s."""
    if retry.outcome is not None and isinstance(retry.outcome.exception(), ResourceExpiredError):
        return 0.0
    return float(BACKOFF(retry))


def _older_than(obj: dict[str, Any], since: datetime) -> bool:
    series = obj.get("series") or {}
    times = [
        parse_time(obj.get(name))
        for name in ("lastTimestamp", "deprecatedLastTimestamp", "eventTime")
    ] + [parse_time(series.get("lastObservedTime"))]
    known = [t for t in times if t is not None]
    return bool(known) and max(known) < since


class _Page(NamedTuple):
    """A page of a list a reader is making (``first``: a new list begins)."""

    listing: Listing
    first: bool


class _Listed(NamedTuple):
    """A list's end; the main thread sets ``committed`` once its events are published and
    the scope's checkpoint is committed with them."""

    resource_version: str
    committed: threading.Event


@dataclass
class _Relisting:
    """A scope's list under way, page by page, on the main thread."""

    since: datetime | None  # --since: events last seen before it are not published
    published_before: int  # the published count when it began
    listed: int = 0
    alive: set[str] = field(default_factory=set)  # its uids (a cluster-wide list's)


class _Reader:
    """One scope's reader: list when there is no checkpoint, then watch, again and again; all
    it learns goes to ``hand``, in order (from its own thread to the main thread's queue, or,
    for a recording, straight to the main thread's taking)."""

    def __init__(  # noqa: PLR0913 - a reader's whole world, handed over once
        self,
        scope: str,
        source: EventSource,
        checkpoint: str | None,
        hand: Callable[[object], None],
        halt: threading.Event,
        *,
        timeout_seconds: int,
        read_line: LineReader | None = None,
    ) -> None:
        self.scope, self.source, self.checkpoint = scope, source, checkpoint
        self._hand, self.halt, self.timeout_seconds = hand, halt, timeout_seconds
        self.read_line = read_line
        self.where = f"namespace {scope}" if scope else "every namespace"

    def run(self) -> None:
        """Rounds until halted (or a file's end): a failed one is retried with a backoff that a
        round that ended well resets; an expired resourceVersion lists again at once."""
        while not self.halt.is_set():
            try:
                for attempt in retrying(
                    retry=lambda err: isinstance(err, SourceError),
                    wait=_relist_at_once,
                    stop=self.halt,
                    before_sleep=self._failed,
                ):
                    with attempt:
                        self._round()
            except SourceError:
                return  # halted while waiting to retry
            except Exception as err:  # noqa: BLE001 - handed to the main thread as it is
                self._hand(err)
                return
            if self.source.finite:
                return

    def _failed(self, retry: RetryCallState) -> None:
        err = retry.outcome and retry.outcome.exception()
        self._hand(err)
        if isinstance(err, ResourceExpiredError):
            self.checkpoint = None

    def _round(self) -> None:
        """A list if needed, then one watch request until the server ends it."""
        if self.checkpoint is None:
            log.info("listing events (%s)", self.where)
            # Page by page: the main thread publishes each while the next is read.
            resource_version = ""
            for number, page in enumerate(self.source.pages()):
                self._hand(_Page(page, first=number == 0))
                resource_version = page.resource_version
                if self.halt.is_set():
                    return
            listed = _Listed(resource_version, threading.Event())
            self._hand(listed)
            # Watch only once the list and its checkpoint are committed: an occurrence seen
            # on the watch before that would, after a crash, be found only by another list,
            # which shows each event's newest version alone.
            while not listed.committed.wait(0.5):
                if self.halt.is_set():
                    return
            self.checkpoint = listed.resource_version
        log.info("watching from resourceVersion %s (%s)", self.checkpoint, self.where)
        self._hand(_OPENED)
        self._watch()

    def _watch(self) -> None:
        """One watch request, its items handed over, until the server ends it."""
        # Items go over in lists: one at a time from the network, where the next may be long
        # in coming; in runs from a file, which never waits (a hand-over per item cost as much
        # as the rest of the work on it, the two threads passing the GIL back and forth).
        run = _FILE_RUN if self.source.finite else 1
        chunk: list[WatchItem | LineItem] = []
        finite = self.source.finite  # read to its end once: no checkpoint to come back to
        checkpoint = self.checkpoint or ""
        watched = self.source.watch(
            checkpoint, timeout_seconds=self.timeout_seconds, read_line=self.read_line
        )
        for item in watched:
            chunk.append(item)
            if not finite:
                self.checkpoint = item.resource_version or self.checkpoint
            if len(chunk) >= run:
                self._hand(chunk)
                chunk = []
            if self.halt.is_set():
                return
        if chunk:
            self._hand(chunk)
        self._hand(_END)


def _handed(
    items: queue.Queue[tuple[str, Any]], halt: threading.Event, scope: str, item: object
) -> None:
    """What a reader thread learnt, to the main thread (waiting while it is behind)."""
    while not halt.is_set():
        with contextlib.suppress(queue.Full):
            items.put((scope, item), timeout=0.5)
            return
