"""A sink's settings: one validated object, built in the entry point and passed down."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kafkube.consumers.formats import CODECS, EXTENSIONS
from kafkube.consumers.naming import check_topic
from kafkube.schemas.errors import ConfigError
from kafkube.schemas.topics import DEFAULT_TOPIC, sink_group

_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class SinkSettings:
    sink_type: str
    # librdkafka properties, passed through (and the CLI's error callback)
    kafka: dict[str, Any] = field(default_factory=dict)
    topic: str = DEFAULT_TOPIC
    group: str = ""  # default kafkube-sink-<type>
    instance_id: str = ""  # static membership (group.instance.id); empty: dynamic
    format: str = "avro"
    codec: str = "deflate"
    max_records: int = 50_000
    max_bytes: int = 64 << 20
    max_age_seconds: float = 60.0
    time_field: str = "record"  # record: the Kafka record's time; event: the event's own time

    def __post_init__(self) -> None:
        if not self.kafka.get("bootstrap.servers"):
            raise ConfigError("kafka.bootstrap.servers", "is required")
        check_topic(self.topic)
        if self.format not in EXTENSIONS:
            raise ConfigError(
                "format", f"must be one of {', '.join(EXTENSIONS)}, got {self.format!r}"
            )
        if self.codec not in CODECS:
            raise ConfigError("codec", f"must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if self.max_records < 1:
            raise ConfigError("rotation.max_records", "must be at least 1")
        if self.max_bytes < 1024:
            raise ConfigError("rotation.max_bytes", "must be at least 1024")
        if not 0 < self.max_age_seconds <= 86_400:
            raise ConfigError("rotation.max_age_seconds", "must be in (0, 86400]")
        if self.time_field not in {"record", "event"}:
            raise ConfigError("time_field", f"must be record or event, got {self.time_field!r}")
        self._check_membership()

    def _check_membership(self) -> None:
        if self.instance_id and not _INSTANCE_ID.fullmatch(self.instance_id):
            raise ConfigError(
                f"sinks.{self.sink_type}.instance_id",
                f"letters, digits, '.', '_', '-' (at most 249), got {self.instance_id!r}",
            )
        for owned in ("group.id", "group.instance.id", "enable.auto.commit", "isolation.level"):
            if owned in self.kafka:
                raise ConfigError(
                    f"kafka.{owned}", "is set by kafkube (use --group and --instance-id)"
                )

    @property
    def group_id(self) -> str:
        return self.group or sink_group(self.sink_type)
