"""Names both sides agree on: topics, consumer groups and record headers."""

from __future__ import annotations

DEFAULT_TOPIC = "kafkube.events"
DLQ_SUFFIX = ".dlq"

# Headers on every event record. Values are UTF-8 strings.
HEADER_UID = "kafkube.uid"
HEADER_RESOURCE_VERSION = "kafkube.resource_version"
HEADER_SCHEMA = (
    "kafkube.schema"  # the writer schema's fingerprint, hex (also in the value's header)
)


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def producer_state_topic(topic: str) -> str:
    """The producer's compacted state: what it published, and where its watch resumes."""
    return f"{topic}.producer-state"


def sink_group(sink_type: str) -> str:
    return f"kafkube-sink-{sink_type}"
