"""The Avro record of a Kubernetes event, as Python sees it (the latest schema version, 3).

Field for field the same as ``avro/kubernetes_event.v3.avsc``; timestamps are
timezone-aware ``datetime`` values, which fastavro writes as timestamp-micros.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypedDict

WatchType = Literal["ADDED", "MODIFIED", "DELETED"]
API_CORE_V1 = "v1"
API_EVENTS_V1 = "events.k8s.io/v1"


class ObjectReference(TypedDict):
    kind: str | None
    api_version: str | None
    namespace: str | None
    name: str | None
    uid: str | None
    resource_version: str | None
    field_path: str | None


class EventSeries(TypedDict):
    count: int
    last_observed_time: datetime | None


class Truncation(TypedDict):
    """What was cut from an event too large for the topic (schema version 2)."""

    cut: list[str]
    original_bytes: int
    limit_bytes: int


class Owner(TypedDict):
    """The involved object's controlling owner (schema version 3)."""

    kind: str
    name: str


class EventRecord(TypedDict):
    cluster: str
    watch_type: WatchType
    observed_at: datetime
    producer_id: str
    api_version: str
    uid: str
    resource_version: str
    namespace: str | None
    name: str
    creation_timestamp: datetime | None
    labels: dict[str, str] | None
    annotations: dict[str, str] | None
    type: str | None
    reason: str | None
    action: str | None
    note: str | None
    regarding: ObjectReference | None
    related: ObjectReference | None
    reporting_controller: str | None
    reporting_instance: str | None
    source_component: str | None
    source_host: str | None
    event_time: datetime | None
    first_timestamp: datetime | None
    last_timestamp: datetime | None
    count: int | None
    series: EventSeries | None
    truncated: Truncation | None
    regarding_labels: dict[str, str] | None  # enrichment (version 3)
    regarding_owner: Owner | None
