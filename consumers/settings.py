"""A sink's settings: one validated object, built in the entry point and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafkube.consumers.formats import CODECS, EXTENSIONS
from kafkube.consumers.naming import check_topic
from kafkube.schemas.errors import ConfigError
from kafkube.schemas.topics import DEFAULT_TOPIC, sink_group


@dataclass(frozen=True)
class SinkSettings:
    sink_type: str
    kafka: dict[str, str] = field(default_factory=dict)  # librdkafka properties, passed through
    topic: str = DEFAULT_TOPIC
    group: str = ""  # default kafkube-sink-<type>
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
        for owned in ("group.id", "enable.auto.commit", "isolation.level"):
            if owned in self.kafka:
                raise ConfigError(f"kafka.{owned}", "is set by kafkube (use --group for the group)")

    @property
    def group_id(self) -> str:
        return self.group or sink_group(self.sink_type)
