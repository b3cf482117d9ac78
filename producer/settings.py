"""The producer's settings: one validated object, built in the entry point and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafkube.core.errors import ConfigError
from kafkube.schemas.filters import EventFilter
from kafkube.schemas.topics import producer_state_topic


@dataclass(frozen=True)
class EnrichSettings:
    """Enrichment's bounds (``kafkube.producer.enriching``)."""

    cache_size: int
    ttl_seconds: float
    timeout_seconds: float
    budget: float  # the share of the producer's time reads may take
    reads_per_second: float


@dataclass(frozen=True)
class ProducerSettings:
    """What the producer runs with, made from the configuration's ``producer`` section (whose
    fields, defaults and bounds are the only place they are written) and Kafka's."""

    cluster: str
    producer_id: str
    kafka: dict[str, Any]  # librdkafka properties, passed through (and the CLI's error callback)
    topic: str
    partitions: int
    api_version: str
    namespaces: tuple[str, ...]  # all when empty
    transactional_id: str
    batch_max_events: int
    linger_seconds: float
    watch_timeout_seconds: int
    forget_after_seconds: float
    since: datetime | None
    # The schema registry client's configuration; None: the registry-less framing.
    registry: dict[str, str] | None
    subject_strategy: str  # topic or record (kafkube.core.registry.SUBJECT_STRATEGIES)
    event_filter: EventFilter  # what is published
    enrich: EnrichSettings | None  # the involved objects' labels and owners; None: off

    def __post_init__(self) -> None:
        if not self.cluster:
            raise ConfigError("producer.cluster", "must name the cluster (it is in every record)")
        if not self.kafka.get("bootstrap.servers"):
            raise ConfigError("kafka.bootstrap_servers", "is required")
        if self.since is not None and self.since.tzinfo is None:
            raise ConfigError("producer.since", "must carry a timezone, e.g. 2026-11-25T00:00:00Z")
        for owned in ("enable.idempotence", "acks", "transactional.id", "isolation.level"):
            if owned in self.kafka:
                raise ConfigError(f"kafka.{owned}", "is set by kafkube for exactly-once delivery")

    @property
    def state_topic(self) -> str:
        return producer_state_topic(self.topic)

    @property
    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"kafkube-producer-{self.cluster}"
