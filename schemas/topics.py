"""Names both sides agree on: topics, consumer groups and record headers."""

from __future__ import annotations

import re

DLQ_SUFFIX = ".dlq"
PRODUCER_DLQ_SUFFIX = ".producer-dlq"
PRODUCER_STATE_SUFFIX = ".producer-state"
# The topics kafkube makes beside an events topic: never events themselves.
OWN_TOPIC_SUFFIXES = (DLQ_SUFFIX, PRODUCER_DLQ_SUFFIX, PRODUCER_STATE_SUFFIX)

# Headers on every event record. Values are UTF-8 strings.
HEADER_UID = "kafkube.uid"
HEADER_RESOURCE_VERSION = "kafkube.resource_version"
HEADER_SCHEMA = (
    "kafkube.schema"  # the writer schema's fingerprint, hex (also in the value's header)
)
HEADER_CLUSTER = "kafkube.cluster"  # on the producer's dead letters: which cluster sent it


# A cluster's name: in every record, in the producer's state keys and, with the cluster
# layout, a folder of the sinks' output; so a safe label, never a path of its own making.
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def is_cluster_name(name: str) -> bool:
    return bool(_CLUSTER_NAME.fullmatch(name))


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def producer_dlq_topic(topic: str) -> str:
    """Events the producer could not publish (the schema or Kafka refused them), as the API
    server's JSON, with the reason in the headers."""
    return topic + PRODUCER_DLQ_SUFFIX


def producer_state_topic(topic: str) -> str:
    """The producer's compacted state: what it published, and where its watch resumes."""
    return topic + PRODUCER_STATE_SUFFIX


def sink_group(sink_type: str) -> str:
    return f"kafkube-sink-{sink_type}"
