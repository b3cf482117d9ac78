"""The producer's settings: one validated object, built in the entry point and passed down."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafkube.schemas.errors import ConfigError
from kafkube.schemas.records import API_CORE_V1, API_EVENTS_V1
from kafkube.schemas.topics import DEFAULT_TOPIC, producer_state_topic

_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,200}")


@dataclass(frozen=True)
class ProducerSettings:
    cluster: str
    producer_id: str
    # librdkafka properties, passed through (and the CLI's error callback)
    kafka: dict[str, Any] = field(default_factory=dict)
    topic: str = DEFAULT_TOPIC
    partitions: int = 6
    api_version: str = API_CORE_V1
    namespaces: tuple[str, ...] = ()  # all when empty
    transactional_id: str = ""
    batch_max_events: int = 5000
    linger_seconds: float = 0.2
    watch_timeout_seconds: int = 300
    forget_after_seconds: float = 3 * 3600.0
    since: datetime | None = None

    def __post_init__(self) -> None:
        self._check_names()
        self._check_numbers()
        if self.since is not None and self.since.tzinfo is None:
            raise ConfigError("producer.since", "must carry a timezone, e.g. 2026-11-25T00:00:00Z")
        for owned in ("enable.idempotence", "acks", "transactional.id", "isolation.level"):
            if owned in self.kafka:
                raise ConfigError(f"kafka.{owned}", "is set by kafkube for exactly-once delivery")

    def _check_names(self) -> None:
        if not self.cluster:
            raise ConfigError("producer.cluster", "must name the cluster (it is in every record)")
        if not self.kafka.get("bootstrap.servers"):
            raise ConfigError("kafka.bootstrap.servers", "is required")
        if not _TOPIC_NAME.fullmatch(self.topic):
            raise ConfigError("producer.topic", f"not a valid Kafka topic name: {self.topic!r}")
        if self.api_version not in {API_CORE_V1, API_EVENTS_V1}:
            raise ConfigError("producer.api_version", f"must be {API_CORE_V1} or {API_EVENTS_V1}")

    def _check_numbers(self) -> None:
        if not 1 <= self.partitions <= 10_000:
            raise ConfigError("producer.partitions", f"must be 1-10000, got {self.partitions}")
        if self.batch_max_events < 1:
            raise ConfigError("producer.batch_max_events", "must be at least 1")
        if not 0 < self.linger_seconds <= 60:
            raise ConfigError("producer.linger_seconds", "must be in (0, 60]")
        if self.watch_timeout_seconds < 1:
            raise ConfigError("producer.watch_timeout_seconds", "must be at least 1")

    @property
    def state_topic(self) -> str:
        return producer_state_topic(self.topic)

    @property
    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"kafkube-producer-{self.cluster}"
