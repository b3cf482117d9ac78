"""Object naming and where a partition starts: pure decisions behind exactly-once in the sinks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kafkube.consumers.naming import (
    ObjectRange,
    hour_of,
    object_name,
    object_prefix,
    parse_object_name,
    start_offset,
)
from kafkube.core.errors import ConfigError

HOUR = datetime(2026, 11, 25, 7, tzinfo=UTC)


def test_a_name_carries_topic_partition_offsets_and_hour_and_parses_back() -> None:
    name = object_name("kafkube.events", 3, first=120, last=999, hour=HOUR, extension="avro")

    assert name == (
        "kafkube.events/dt=2026-11-25/hour=07/"
        "kafkube.events+00003+00000000000000000120+00000000000000000999.avro"
    )
    assert parse_object_name(name, "kafkube.events") == (3, ObjectRange(120, 999))
    assert parse_object_name(name, "other") is None
    assert parse_object_name("kafkube.events/notes.txt", "kafkube.events") is None


def test_the_cluster_layout_adds_a_hive_folder_and_keeps_the_name() -> None:
    name = object_name(
        "kafkube.events", 3, first=120, last=999, hour=HOUR, extension="avro", cluster="prod-eu-1"
    )

    assert name.startswith("kafkube.events/cluster=prod-eu-1/dt=2026-11-25/hour=07/")
    assert parse_object_name(name, "kafkube.events") == (3, ObjectRange(120, 999))


@pytest.mark.parametrize("cluster", ["..", "../../etc", "a/b", "", "-x", "a" * 64, "été"])
def test_a_cluster_name_that_is_not_a_safe_label_never_becomes_a_folder(cluster: str) -> None:
    with pytest.raises(ConfigError, match="not a safe cluster name"):
        object_name("t", 0, first=0, last=1, hour=HOUR, extension="avro", cluster=cluster)


@pytest.mark.parametrize("topic", ["..", ".", "a/b", "", "évènements"])
def test_a_topic_that_is_not_a_kafka_name_is_refused(topic: str) -> None:
    with pytest.raises(ConfigError, match="not a Kafka topic name"):
        object_name(topic, 0, first=0, last=0, hour=HOUR, extension="avro")


def test_a_reset_inside_an_object_starts_at_its_first_offset_and_keeps_its_boundaries() -> None:
    written = [ObjectRange(0, 99), ObjectRange(100, 180), ObjectRange(182, 300)]

    assert start_offset(150, written) == (100, written[1:])
    assert start_offset(100, written) == (100, written[1:])
    assert start_offset(181, written) == (181, written[2:])  # a control record between objects
    assert start_offset(301, written) == (301, [])
    assert start_offset(0, []) == (0, [])


def test_a_log_start_inside_an_object_leaves_that_object_as_it_is() -> None:
    written = [ObjectRange(0, 499), ObjectRange(500, 999), ObjectRange(1000, 1499)]

    # kafka-delete-records to 750, then a replay to the earliest offset (or an expired group)
    assert start_offset(750, written, log_start=750) == (1000, written[2:])
    assert start_offset(0, written, log_start=750) == (1000, written[2:])
    # a log start at an object's first offset: that object is rewritten whole
    assert start_offset(0, written, log_start=500) == (500, written[1:])
    assert start_offset(1200, written, log_start=750) == (1000, written[2:])


def test_an_objects_hour_is_read_from_its_folder() -> None:
    name = (
        "p/kafkube.events/cluster=a/dt=2026-12-06/hour=07/"
        "kafkube.events+00003+00000000000000000120+00000000000000000999.avro"
    )

    _, span = parse_object_name(name, "kafkube.events") or (0, None)

    assert span is not None
    assert span.hour == datetime(2026, 12, 6, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"), [("", ""), ("/", ""), ("events", "events/"), ("/a/b/", "a/b/")]
)
def test_bucket_prefixes_are_normalised(given: str, expected: str) -> None:
    assert object_prefix(given, field="s3.prefix") == expected


def test_a_bucket_prefix_with_dot_dot_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^gcs\.prefix: must not contain"):
        object_prefix("a/../b", field="gcs.prefix")


@pytest.mark.parametrize(
    "ms", [0, 1, 3_599_999, 3_600_000, 1_795_877_135_100, -1, -3_600_001, 253_402_300_799_999]
)
def test_a_records_hour_is_the_utc_hour_its_time_falls_in(ms: int) -> None:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    assert hour_of(ms) == moment.replace(minute=0, second=0, microsecond=0)
    assert hour_of(ms) is hour_of(ms)  # made once
