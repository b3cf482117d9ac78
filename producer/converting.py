"""Kubernetes Event JSON (core/v1 or events.k8s.io/v1) to the Avro record. Pure: no I/O.

The two API views of one Event differ in names (``message`` / ``note``,
``involvedObject`` / ``regarding``, ``count`` / ``deprecatedCount``, ...);
both become the same record. The input is the JSON the API server sent,
typed here the moment it enters; nothing in it is trusted to be present or
well-formed beyond the three fields that identify an occurrence (uid,
resourceVersion, name), whose absence raises ``ConversionError``.

Where only the Avro value is wanted (no filter or enrichment reads the record), the
producer takes ``one_pass``: compiled code (``kafkube.producer._convert``, Cython built by
``make``) that writes the value straight from the JSON, the bytes ``to_record`` and the
codec would give. It leaves to this module whatever it cannot write the same way for certain.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypedDict

from kafkube.core.compiled import pure_python_asked
from kafkube.core.errors import KafkubeError
from kafkube.schemas.codec import Codec
from kafkube.schemas.records import (
    API_CORE_V1,
    API_EVENTS_V1,
    EventRecord,
    EventSeries,
    ObjectReference,
    WatchType,
)

try:
    from kafkube.producer import _convert
except ImportError:  # not built here: the Python path
    _convert = None  # type: ignore[assignment]

_EVENTS_BETA = "events.k8s.io/v1beta1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class ConversionError(KafkubeError):
    """The object is not an Event we can identify. Retrying cannot help."""

    retriable = False


class RawObjectMeta(TypedDict, total=False):
    uid: str
    resourceVersion: str
    name: str
    namespace: str
    creationTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]


class RawObjectReference(TypedDict, total=False):
    kind: str
    apiVersion: str
    namespace: str
    name: str
    uid: str
    resourceVersion: str
    fieldPath: str


class RawEventSource(TypedDict, total=False):
    component: str
    host: str


class RawEventSeries(TypedDict, total=False):
    count: int
    lastObservedTime: str


class RawEvent(TypedDict, total=False):
    """The union of core/v1 Event and events.k8s.io/v1 Event, as JSON."""

    apiVersion: str
    kind: str
    metadata: RawObjectMeta
    type: str
    reason: str
    action: str
    # core/v1
    message: str
    involvedObject: RawObjectReference
    source: RawEventSource
    firstTimestamp: str
    lastTimestamp: str
    count: int
    reportingComponent: str
    # events.k8s.io/v1
    note: str
    regarding: RawObjectReference
    deprecatedSource: RawEventSource
    deprecatedFirstTimestamp: str
    deprecatedLastTimestamp: str
    deprecatedCount: int
    reportingController: str
    # both
    related: RawObjectReference
    reportingInstance: str
    eventTime: str
    series: RawEventSeries


def parse_time(value: object) -> datetime | None:
    """RFC 3339 Time or MicroTime as the API server writes it; None for absent or unusable."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_text_time(value)


@functools.lru_cache(maxsize=8192)
def _parse_text_time(value: str) -> datetime | None:
    # Cached: an event carries three or four times, mostly the same second as its neighbours'.
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # Go's zero time (0001-01-01) means "unset" wherever a client wrote it out.
        return None if parsed.year <= 1 else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one past year 9999 in UTC
        return None


def _micros_of(text: str) -> int | None:
    """``parse_time`` of a text, as the Avro timestamp-micros it is written as."""
    parsed = _parse_text_time(text)
    return None if parsed is None else (parsed - _EPOCH) // _MICROSECOND


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value or None
    return None if value is None else str(value)


def _integer(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if -(2**31) <= value < 2**31 else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _integer(int(value))
    return None


def _string_map(value: object) -> dict[str, str] | None:
    if not isinstance(value, Mapping) or not value:
        return None
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _mapping(value: object) -> Mapping[str, Any]:
    if isinstance(value, dict):  # what JSON gives; the ABC check below is 5x slower
        return value
    return value if isinstance(value, Mapping) else {}


def _reference(value: object) -> ObjectReference | None:
    raw = _mapping(value)
    if not raw:
        return None
    reference: ObjectReference = {
        "kind": _text(raw.get("kind")),
        "api_version": _text(raw.get("apiVersion")),
        "namespace": _text(raw.get("namespace")),
        "name": _text(raw.get("name")),
        "uid": _text(raw.get("uid")),
        "resource_version": _text(raw.get("resourceVersion")),
        "field_path": _text(raw.get("fieldPath")),
    }
    return reference


def _series(value: object) -> EventSeries | None:
    raw = _mapping(value)
    count = _integer(raw.get("count"))
    if count is None:
        return None
    return EventSeries(count=count, last_observed_time=parse_time(raw.get("lastObservedTime")))


def api_version_of(event: Mapping[str, Any], default: str) -> str:
    """Which API view an object is in: its own apiVersion, else what the caller listed."""
    declared = event.get("apiVersion")
    if isinstance(declared, str) and declared in {API_CORE_V1, API_EVENTS_V1, _EVENTS_BETA}:
        return API_EVENTS_V1 if declared.startswith("events.k8s.io/") else API_CORE_V1
    return default


def to_record(  # noqa: PLR0913 - the envelope's fields, all keyword-only
    event: Mapping[str, Any],
    *,
    watch_type: WatchType,
    cluster: str,
    producer_id: str,
    observed_at: datetime,
    api_version: str = API_CORE_V1,
) -> EventRecord:
    """The Avro record of one Event object as the API server sent it (in either API view).

    ``api_version`` names the view the caller read from; an object that states
    its own ``apiVersion`` (watch events do, list items do not) wins.
    """
    view = api_version_of(event, api_version)
    metadata = _mapping(event.get("metadata"))
    uid, resource_version, name = (
        _text(metadata.get("uid")),
        _text(metadata.get("resourceVersion")),
        _text(metadata.get("name")),
    )
    if uid is None or resource_version is None or name is None:
        missing = [
            field
            for field, value in (
                ("metadata.uid", uid),
                ("metadata.resourceVersion", resource_version),
                ("metadata.name", name),
            )
            if value is None
        ]
        raise ConversionError(f"event without {', '.join(missing)}")
    core = view == API_CORE_V1
    source = _mapping(event.get("source" if core else "deprecatedSource"))
    record: EventRecord = {
        "cluster": cluster,
        "watch_type": watch_type,
        "observed_at": observed_at,
        "producer_id": producer_id,
        "api_version": view,
        "uid": uid,
        "resource_version": resource_version,
        "namespace": _text(metadata.get("namespace")),
        "name": name,
        "creation_timestamp": parse_time(metadata.get("creationTimestamp")),
        "labels": _string_map(metadata.get("labels")),
        "annotations": _string_map(metadata.get("annotations")),
        "type": _text(event.get("type")),
        "reason": _text(event.get("reason")),
        "action": _text(event.get("action")),
        "note": _text(event.get("message" if core else "note")),
        "regarding": _reference(event.get("involvedObject" if core else "regarding")),
        "related": _reference(event.get("related")),
        "reporting_controller": _text(
            event.get("reportingComponent" if core else "reportingController")
        ),
        "reporting_instance": _text(event.get("reportingInstance")),
        "source_component": _text(source.get("component")),
        "source_host": _text(source.get("host")),
        "event_time": parse_time(event.get("eventTime")),
        "first_timestamp": parse_time(
            event.get("firstTimestamp" if core else "deprecatedFirstTimestamp")
        ),
        "last_timestamp": parse_time(
            event.get("lastTimestamp" if core else "deprecatedLastTimestamp")
        ),
        "count": _integer(event.get("count" if core else "deprecatedCount")),
        "series": _series(event.get("series")),
        "truncated": None,
        "regarding_labels": None,
        "regarding_owner": None,
    }
    return record


# One pass's answer: the value, uid, resourceVersion, count, (type, reason) and the key.
Converted = tuple[bytes, str, str, int | None, tuple[str, str], bytes]


class OnePass(Protocol):
    def convert(self, event: dict[str, Any], watch_type: str, now: float) -> Converted | None:
        """The framed value of the record ``to_record`` makes of ``event``, observed at
        ``now`` (seconds since the epoch), with what the producer decides on; None: take
        ``to_record``."""

    def convert_line(self, line: bytes, now: float) -> tuple[str, Converted] | None:
        """The watch type and ``convert`` of the event of a watch stream's line, as
        ``orjson.loads`` reads it, with no dict made; None: parse the line and decide."""


def one_pass(codec: Codec, *, cluster: str, producer_id: str, api_version: str) -> OnePass | None:
    """The compiled one pass for this codec's values, or None: not built here, asked not to
    (``KAFKUBE_PURE_PYTHON``), or the codec writes a schema version it does not know."""
    if _convert is None or pure_python_asked() or codec.writer.version != _convert.VERSION:
        return None
    converter: OnePass = _convert.Converter(
        codec.header, cluster, producer_id, api_version == API_CORE_V1, _micros_of
    )
    return converter
