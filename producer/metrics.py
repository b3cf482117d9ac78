"""The producer's Prometheus metrics, exported from its counts after each transaction.

The hot path only counts in ``ProducerStats`` (plain integers); ``export`` moves what changed
into the Prometheus counters once per batch, so metrics cost nothing per event.
"""

from __future__ import annotations

from dataclasses import fields

from prometheus_client import (
    Counter,
    Gauge,
)

from kafkube.core.serving import component_registry
from kafkube.producer.running import ProducerStats

REGISTRY = component_registry("producer")

_COUNTERS = {
    "watched": Counter(
        "kafkube_producer_events_watched",
        "Watch events received (ADDED, MODIFIED, DELETED).",
        registry=REGISTRY,
    ),
    "published": Counter(
        "kafkube_producer_events_published",
        "Event occurrences committed to Kafka.",
        registry=REGISTRY,
    ),
    "skipped_duplicates": Counter(
        "kafkube_producer_duplicates_skipped",
        "Occurrences seen again and not republished.",
        registry=REGISTRY,
    ),
    "relists": Counter(
        "kafkube_producer_relists", "Full lists of the events (start, 410 Gone).", registry=REGISTRY
    ),
    "watch_restarts": Counter(
        "kafkube_producer_watch_restarts", "Watch requests started.", registry=REGISTRY
    ),
    "transactions": Counter(
        "kafkube_producer_transactions", "Kafka transactions committed.", registry=REGISTRY
    ),
    "aborts": Counter(
        "kafkube_producer_transaction_aborts", "Kafka transactions aborted.", registry=REGISTRY
    ),
    "provably_missed": Counter(
        "kafkube_producer_events_missed",
        "Repeats of core/v1 events that happened while nothing watched (their count jumped).",
        registry=REGISTRY,
    ),
    "unconvertible": Counter(
        "kafkube_producer_events_unconvertible",
        "Objects without uid, resourceVersion or name.",
        registry=REGISTRY,
    ),
    "truncated": Counter(
        "kafkube_producer_events_truncated",
        "Events too large for the topic, published cut to fit and marked.",
        registry=REGISTRY,
    ),
    "dead_lettered": Counter(
        "kafkube_producer_events_dead_lettered",
        "Events the schema or Kafka refused, sent to the producer dead-letter topic.",
        registry=REGISTRY,
    ),
    "excluded": Counter(
        "kafkube_producer_events_excluded",
        "Occurrences the producer's filter left out: noted in its state, not published.",
        registry=REGISTRY,
    ),
    "enriched": Counter(
        "kafkube_producer_events_enriched",
        "Events published with the involved object's labels and owner.",
        registry=REGISTRY,
    ),
    "enrichment_skipped": Counter(
        "kafkube_producer_enrichment_skipped",
        "Reads of an involved object not made within enrichment's bounds: fields left empty.",
        registry=REGISTRY,
    ),
    "given_up": Counter(
        "kafkube_producer_events_given_up",
        "Events refused by the topic and by its dead-letter topic: logged, not published.",
        registry=REGISTRY,
    ),
}
EVENTS = Counter(
    "kafkube_events",
    "Event occurrences taken, new after de-duplication (published or excluded), by cluster, "
    "type and reason. A label past its cap of distinct values counts as 'other'.",
    ["cluster", "type", "reason"],
    registry=REGISTRY,
)
# Distinct values a label may take before the rest count as "other": a reason is free text
# any controller invents, and every value is a series Prometheus keeps.
LABEL_CAPS = {"type": 10, "reason": 100}


class BoundedLabel:
    """The values of one label, the first ``cap`` distinct ones kept, the rest "other"."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._kept: set[str] = set()

    def __call__(self, value: str) -> str:
        value = value or "none"
        if value in self._kept:
            return value
        if len(self._kept) < self.cap:
            self._kept.add(value)
            return value
        return "other"


LAST_COMMIT = Gauge(
    "kafkube_producer_last_commit_timestamp_seconds",
    "When the last transaction committed.",
    registry=REGISTRY,
)
LEADING = Gauge(
    "kafkube_producer_leader",
    "1 while this replica holds the lease and publishes, else 0.",
    registry=REGISTRY,
)
_COUNTED = {f.name for f in fields(ProducerStats)} & set(_COUNTERS)


class Exporter:
    """Moves the growth of a ``ProducerStats`` into the counters; call it as often as wished."""

    def __init__(self, cluster: str = "") -> None:
        self._exported = dict.fromkeys(_COUNTED, 0)
        self._cluster = cluster
        self._kinds: dict[tuple[str, str], int] = {}
        self._type, self._reason = (
            BoundedLabel(LABEL_CAPS["type"]),
            BoundedLabel(LABEL_CAPS["reason"]),
        )

    def __call__(self, stats: ProducerStats) -> None:
        for name in _COUNTED:
            value = getattr(stats, name)
            grown = value - self._exported[name]
            if grown > 0:
                _COUNTERS[name].inc(grown)
            self._exported[name] = value
        for event_type, reasons in stats.by_kind.items():
            for reason, count in reasons.items():
                grown = count - self._kinds.get((event_type, reason), 0)
                if grown > 0:
                    labels = (self._cluster, self._type(event_type), self._reason(reason))
                    EVENTS.labels(*labels).inc(grown)
                    self._kinds[event_type, reason] = count
        if stats.last_commit_at:
            LAST_COMMIT.set(stats.last_commit_at)
