"""Object names that a rewrite reproduces. Pure: no I/O.

    <topic>/dt=YYYY-MM-DD/hour=HH/<topic>+<partition:05>+<first:020>+<last:020>.<ext>
    <topic>/cluster=<name>/dt=YYYY-MM-DD/hour=HH/<same>      (the cluster layout)

The time path is the hour of the batch (record time or event time, UTC); one
object never spans two hours. Nothing from event data goes into a name: the
topic is a Kafka topic name (letters, digits, ``.``, ``_``, ``-``; Kafka refuses
``.`` and ``..``), the rest are numbers, so no record can steer a write out of
the sink's directory or prefix. A cluster's name comes from a record, so it is checked
to be a safe label (``is_cluster_name``) before it becomes a folder.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafkube.consumers.formats import FORMATS
from kafkube.core.errors import ConfigError
from kafkube.core.settings import is_topic_name
from kafkube.schemas.topics import is_cluster_name

_OBJECT = re.compile(
    r"(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d{5})\+(?P<first>\d{20})\+(?P<last>\d{20})"
    r"\.(?P<ext>[A-Za-z0-9.]+)"
)


@dataclass(frozen=True, order=True)
class ObjectRange:
    """Which offsets of one partition an object holds (both ends included), and the hour of
    its folder where known: a rewrite lands in that folder whatever the time field says now."""

    first: int
    last: int
    hour: datetime | None = field(default=None, compare=False)


def check_topic(topic: str) -> str:
    if not is_topic_name(topic):
        raise ConfigError("topic", f"not a Kafka topic name: {topic!r}")
    return topic


def object_prefix(value: str, *, field: str) -> str:
    """A bucket prefix as given, normalised to "" or "a/b/"; one with ".." is refused."""
    cleaned = value.strip("/")
    if ".." in cleaned.split("/"):
        raise ConfigError(field, f"must not contain '..': {value!r}")
    return f"{cleaned}/" if cleaned else ""


_MS_AN_HOUR = 3_600_000


def hour_of(timestamp_ms: int) -> datetime:
    """The hour (UTC) a record's time falls in; each hour made once (a sink asks per record)."""
    return hour_numbered(timestamp_ms // _MS_AN_HOUR)


@functools.lru_cache(maxsize=1024)  # a few days of hours; more is a replay's past
def hour_numbered(hour: int) -> datetime:
    """The hour that is the ``hour``-th since the epoch."""
    return datetime.fromtimestamp(hour * 3600, UTC)


def object_name(  # noqa: PLR0913 - every part of the name
    topic: str,
    partition: int,
    *,
    first: int,
    last: int,
    hour: datetime,
    extension: str,
    cluster: str | None = None,
) -> str:
    folder = object_folder(topic, hour, cluster)
    return f"{folder}/{objects_from(topic, partition, first)}+{last:020d}.{extension}"


def object_folder(topic: str, hour: datetime, cluster: str | None = None) -> str:
    """The folder of a batch's object (of one cluster's, in the cluster layout)."""
    check_topic(topic)
    folder = topic
    if cluster is not None:
        if not is_cluster_name(cluster):
            raise ConfigError("cluster", f"not a safe cluster name: {cluster!r}")
        folder = f"{topic}/cluster={cluster}"
    return f"{folder}/dt={hour:%Y-%m-%d}/hour={hour:%H}"


def objects_from(topic: str, partition: int, first: int = -1) -> str:
    """How the names of a partition's objects begin (from ``first`` on, in a folder's
    order): their first offset follows, zero-padded, so names sort by it."""
    return f"{topic}+{partition:05d}+" + (f"{first:020d}" if first >= 0 else "")


INDEX_FOLDER = "_kafkube/index/"


def index_name(topic: str, partition: int, extension: str) -> str:
    """Where a sink keeps its index of a partition's objects (``kafkube.consumers.indexing``):
    beside the topic's folder, under a name query engines skip (a leading ``_``)."""
    check_topic(topic)
    return f"{INDEX_FOLDER}{topic}/{topic}+{partition:05d}.{extension}.json"


_FOLDER_HOUR = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[^/]*$")


def parse_object_name(name: str, topic: str) -> tuple[int, ObjectRange] | None:
    """The partition and offsets an object of this topic holds (and its folder's hour), from
    its name; None if not ours."""
    matched = _OBJECT.fullmatch(name.rsplit("/", 1)[-1])
    if not matched or matched["topic"] != topic:
        return None
    if not any(matched["ext"] == output.extension for output in FORMATS.values()):
        return None
    folder = _FOLDER_HOUR.search(name)
    hour = None
    if folder is not None:
        hour = datetime.strptime(f"{folder[1]} {folder[2]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    span = ObjectRange(int(matched["first"]), int(matched["last"]), hour)
    return int(matched["partition"]), span


def start_offset(
    committed: int, written: list[ObjectRange], log_start: int = 0
) -> tuple[int, list[ObjectRange]]:
    """Where to start reading a partition, and the written objects from there on.

    A committed offset inside an object (an offset reset to the middle of one) starts
    at that object's first offset, so the object is rewritten whole, not cut in two;
    when that first offset is gone from the log (retention moved the log start into the
    object), the object stays as it is and reading starts after it. Each object from
    the start on keeps its boundaries in a rewrite (``kafkube.consumers.boundaries``).
    """
    start = max(committed, log_start)
    for span in written:
        if span.first < start <= span.last:
            start = span.first if span.first >= log_start else span.last + 1
    return start, [span for span in written if span.last >= start]
