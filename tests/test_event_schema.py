"""The Avro contract: conversion from both API views, the codec, and schema evolution (P9)."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from kafkube.producer.converting import ConversionError, parse_time, to_record
from kafkube.schemas.codec import (
    HEADER_SIZE,
    MAGIC,
    Codec,
    DecodeError,
    EncodeError,
    UnknownSchemaIdError,
    latest_version,
    parse_schema,
    released_versions,
)
from kafkube.schemas.records import API_CORE_V1, API_EVENTS_V1

OBSERVED = datetime(2026, 11, 25, 19, 0, 0, 123456, tzinfo=UTC)
ENVELOPE: dict[str, Any] = {
    "cluster": "prod-eu-1",
    "producer_id": "kafkube-producer-0",
    "observed_at": OBSERVED,
}

# A kubelet event as `kubectl get events -o json` shows it in core/v1, repeated three times.
CORE_PULLING: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {
        "name": "web-7d9c5b8f6-x2x9z.18082c1a2b3c4d5e",
        "namespace": "shop",
        "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "resourceVersion": "148213",
        "creationTimestamp": "2026-11-25T18:58:01Z",
    },
    "involvedObject": {
        "kind": "Pod",
        "namespace": "shop",
        "name": "web-7d9c5b8f6-x2x9z",
        "uid": "9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0",
        "apiVersion": "v1",
        "resourceVersion": "148190",
        "fieldPath": "spec.containers{web}",
    },
    "reason": "Pulling",
    "message": 'Pulling image "registry.example.com/shop/web:2.14.1"',
    "source": {"component": "kubelet", "host": "node-a3"},
    "firstTimestamp": "2026-11-25T18:58:01Z",
    "lastTimestamp": "2026-11-25T18:59:44Z",
    "count": 3,
    "type": "Normal",
    "eventTime": None,
    "reportingComponent": "kubelet",
    "reportingInstance": "node-a3",
}

# A scheduler event in events.k8s.io/v1, with a series and a MicroTime eventTime.
EVENTS_V1_FAILED_SCHEDULING: dict[str, Any] = {
    "apiVersion": "events.k8s.io/v1",
    "kind": "Event",
    "metadata": {
        "name": "batch-job-4hx8p.1808301f2e3d4c5b",
        "namespace": "analytics",
        "uid": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
        "resourceVersion": "99120",
        "creationTimestamp": "2026-11-25T18:40:00Z",
        "labels": {"team": "data"},
    },
    "eventTime": "2026-11-25T18:40:00.512345Z",
    "series": {"count": 7, "lastObservedTime": "2026-11-25T18:52:10.000001Z"},
    "reportingController": "default-scheduler",
    "reportingInstance": "default-scheduler-control-plane-1",
    "action": "Scheduling",
    "reason": "FailedScheduling",
    "regarding": {
        "kind": "Pod",
        "namespace": "analytics",
        "name": "batch-job-4hx8p",
        "uid": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        "apiVersion": "v1",
        "resourceVersion": "99001",
    },
    "note": "0/3 nodes are available: 3 Insufficient memory.",
    "type": "Warning",
    "deprecatedCount": 7,
    "deprecatedSource": {"component": "default-scheduler"},
}


def test_a_core_v1_event_converts_field_for_field() -> None:
    record = to_record(CORE_PULLING, watch_type="MODIFIED", **ENVELOPE)

    assert record["api_version"] == API_CORE_V1
    assert (record["uid"], record["resource_version"]) == (
        "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "148213",
    )
    assert record["note"] == 'Pulling image "registry.example.com/shop/web:2.14.1"'
    assert record["regarding"] == {
        "kind": "Pod",
        "api_version": "v1",
        "namespace": "shop",
        "name": "web-7d9c5b8f6-x2x9z",
        "uid": "9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0",
        "resource_version": "148190",
        "field_path": "spec.containers{web}",
    }
    assert record["source_component"] == "kubelet"
    assert record["source_host"] == "node-a3"
    assert record["reporting_controller"] == "kubelet"
    assert record["count"] == 3
    assert record["first_timestamp"] == datetime(2026, 11, 25, 18, 58, 1, tzinfo=UTC)
    assert record["last_timestamp"] == datetime(2026, 11, 25, 18, 59, 44, tzinfo=UTC)
    assert record["event_time"] is None
    assert record["series"] is None
    assert record["watch_type"] == "MODIFIED"
    assert record["cluster"] == "prod-eu-1"


def test_an_events_k8s_io_v1_event_converts_field_for_field() -> None:
    record = to_record(EVENTS_V1_FAILED_SCHEDULING, watch_type="ADDED", **ENVELOPE)

    assert record["api_version"] == API_EVENTS_V1
    assert record["note"] == "0/3 nodes are available: 3 Insufficient memory."
    assert record["action"] == "Scheduling"
    assert record["reporting_controller"] == "default-scheduler"
    assert record["regarding"] is not None
    assert record["regarding"]["name"] == "batch-job-4hx8p"
    assert record["event_time"] == datetime(2026, 11, 25, 18, 40, 0, 512345, tzinfo=UTC)
    assert record["series"] == {
        "count": 7,
        "last_observed_time": datetime(2026, 11, 25, 18, 52, 10, 1, tzinfo=UTC),
    }
    assert record["count"] == 7
    assert record["source_component"] == "default-scheduler"
    assert record["labels"] == {"team": "data"}
    assert record["annotations"] is None


def test_a_list_item_without_apiversion_takes_the_view_the_caller_listed() -> None:
    item = copy.deepcopy(EVENTS_V1_FAILED_SCHEDULING)
    del item["apiVersion"], item["kind"]

    record = to_record(item, watch_type="ADDED", api_version=API_EVENTS_V1, **ENVELOPE)

    assert record["note"] == "0/3 nodes are available: 3 Insufficient memory."


@pytest.mark.parametrize("missing", ["uid", "resourceVersion", "name"])
def test_an_event_without_identity_is_refused_naming_the_field(missing: str) -> None:
    event = copy.deepcopy(CORE_PULLING)
    del event["metadata"][missing]

    with pytest.raises(ConversionError, match=f"metadata.{missing}"):
        to_record(event, watch_type="ADDED", **ENVELOPE)


def test_odd_and_missing_fields_become_nulls_not_errors() -> None:
    odd: dict[str, Any] = {
        "metadata": {
            "uid": "u",
            "resourceVersion": "1",
            "name": "n",
            "labels": {"replicas": 3, "empty": None},
            "annotations": {},
        },
        "involvedObject": "not-an-object",
        "source": None,
        "count": "12",
        "firstTimestamp": "0001-01-01T00:00:00Z",
        "lastTimestamp": "yesterday",
        "series": {"count": None},
        "message": "",
        "related": {},
    }

    record = to_record(odd, watch_type="DELETED", **ENVELOPE)
    encoded = Codec().decode(Codec().encode(record))

    assert record["labels"] == {"replicas": "3", "empty": ""}
    assert record["annotations"] is None
    assert record["regarding"] is None
    assert record["related"] is None
    assert record["count"] == 12
    assert record["first_timestamp"] is None
    assert record["last_timestamp"] is None
    assert record["series"] is None
    assert record["note"] is None
    assert record["namespace"] is None
    assert encoded["uid"] == "u"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T19:00:00Z", datetime(2026, 11, 25, 19, tzinfo=UTC)),
        ("2026-11-25T19:00:00.000123Z", datetime(2026, 11, 25, 19, 0, 0, 123, tzinfo=UTC)),
        ("2026-11-25T20:00:00+01:00", datetime(2026, 11, 25, 19, tzinfo=UTC)),
        (None, None),
        ("", None),
        ("0001-01-01T00:00:00Z", None),
        ("not a time", None),
        ("9999-12-31T23:59:59-01:00", None),  # past year 9999 in UTC: not a crash
    ],
)
def test_kubernetes_times_parse_to_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


def test_a_record_round_trips_through_the_codec() -> None:
    codec = Codec()
    record = to_record(EVENTS_V1_FAILED_SCHEDULING, watch_type="ADDED", **ENVELOPE)

    value = codec.encode(record)

    assert value[:2] == MAGIC
    assert value[2:10] == latest_version().fingerprint
    assert codec.decode(value) == record


def test_split_gives_the_plain_avro_datum_without_decoding_it() -> None:
    codec = Codec()
    record = to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE)
    plain = io.BytesIO()
    fastavro.schemaless_writer(plain, latest_version().schema, record)

    writer, datum = codec.split(codec.encode(record))

    assert writer == latest_version()
    assert bytes(datum) == plain.getvalue()


def test_fingerprints_follow_the_avro_specification() -> None:
    # The specification's CRC-64-AVRO of the schema "int" is 8247732601305521295
    # (0x7275d51a3f395c8f); single-object encoding writes it little-endian.
    expected = (8247732601305521295).to_bytes(8, "little")
    assert parse_schema("int", 0).fingerprint == expected


def test_released_schema_versions_are_never_edited() -> None:
    """A released .avsc changed in place would make old data unreadable by fingerprint."""
    assert {v: s.fingerprint_hex for v, s in released_versions().items()} == {
        1: "1db8de80bea7f34b",
        2: "f7a8e1d5d81876e9",
        3: "ce0286c9b80e8273",
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "neither registry-framed"),
        (b'{"uid": "json, not avro"}', "neither registry-framed"),
        (MAGIC + b"\x00" * 8 + b"\x02", "unknown writer schema fingerprint 0000000000000000"),
        (b"\x00\x00\x01", "a registry-framed value of 3 bytes: no schema id"),
        (b"\x00\x00\x00\x00\x07\x02", "schema id 7: .* no schema registry is configured"),
    ],
)
def test_foreign_bytes_raise_one_typed_error(value: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        Codec().decode(value)


def test_the_registry_framing_is_a_zero_byte_the_id_and_the_same_datum() -> None:
    record = to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE)
    plain = Codec().encode(record)
    framed = Codec(writer_id=258).encode(record)

    assert framed[:5] == b"\x00\x00\x00\x01\x02"  # big-endian id, as Confluent's serializer
    assert framed[5:] == plain[HEADER_SIZE:]
    assert Codec(writer_id=258).decode(framed) == Codec().decode(plain)


def test_a_registry_id_is_looked_up_once_and_read_by_its_schema() -> None:
    record = to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE)
    v1 = released_versions()[1]
    asked: list[int] = []

    def lookup(schema_id: int) -> str | None:
        asked.append(schema_id)
        return v1.schema_json if schema_id == 11 else None

    reader = Codec(lookup=lookup)
    old = Codec(writer=v1, writer_id=11).encode(record)
    for _ in range(3):
        writer, _datum = reader.split(old)
        assert writer.fingerprint == v1.fingerprint  # found as the released v1
    assert reader.decode(old)["truncated"] is None  # v1 read into the latest reader
    assert asked == [11]
    with pytest.raises(
        UnknownSchemaIdError, match="schema id 12 is unknown to the schema registry"
    ):
        reader.decode(Codec(writer_id=12).encode(record))


def test_a_registry_schema_we_never_released_is_read_by_resolution() -> None:
    newer = json.loads(latest_version().schema_json)
    newer["fields"].append({"name": "added_later", "type": ["null", "string"], "default": None})
    writer = parse_schema(newer, 99)
    record = {**to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE), "added_later": "x"}
    value = Codec(writer=writer, writer_id=5).encode(record)

    reader = Codec(lookup=lambda _id: json.dumps(newer))
    found, _datum = reader.split(value)
    assert found.version == 0  # not one of ours: its own, numbered 0
    assert "added_later" not in reader.decode(value)


def test_a_truncated_or_padded_datum_raises_the_typed_error() -> None:
    value = Codec().encode(to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE))

    with pytest.raises(DecodeError, match="corrupt Avro datum"):
        Codec().decode(value[: len(value) // 2])
    with pytest.raises(DecodeError, match="left over"):
        Codec().decode(value + b"\x00\x00")
    assert DecodeError("x").retriable is False


def _v2_with_an_added_optional_field() -> dict[str, Any]:
    definition = json.loads(
        __import__("importlib.resources", fromlist=["files"])
        .files("kafkube.schemas")
        .joinpath("avro", "kubernetes_event.v1.avsc")
        .read_text()
    )
    definition["namespace"] = "io.kafkube.v2"
    definition["fields"].append({"name": "severity", "type": ["null", "int"], "default": None})
    return definition


def test_p9_old_and_new_readers_both_read_a_schema_with_an_added_optional_field() -> None:
    v1 = released_versions()[1]
    v2 = parse_schema(_v2_with_an_added_optional_field(), 2)
    known = {1: v1, 2: v2}
    record: dict[str, Any] = dict(to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE))
    for later in ("truncated", "regarding_labels", "regarding_owner"):
        del record[later]  # fields of the released v2 and v3, not of this one
    old_codec = Codec(writer=v1, reader=v1, known=known)
    new_codec = Codec(writer=v2, reader=v2, known=known)

    written_by_new = new_codec.encode({**record, "severity": 4})
    written_by_old = old_codec.encode(record)

    assert old_codec.decode(written_by_new) == record
    assert new_codec.decode(written_by_old) == {**record, "severity": None}
    assert new_codec.decode(written_by_new)["severity"] == 4


def test_p9_released_v1_and_v2_read_each_other_truncated_field_and_all() -> None:
    v1, v2 = released_versions()[1], released_versions()[2]
    record: dict[str, Any] = dict(to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE))
    for later in ("regarding_labels", "regarding_owner"):
        del record[later]  # fields of the released v3
    marked = {**record, "truncated": {"cut": ["note"], "original_bytes": 9, "limit_bytes": 5}}
    old_reader = Codec(writer=v1, reader=v1)
    new_reader = Codec(writer=v2, reader=v2)
    without_truncated = {k: v for k, v in record.items() if k != "truncated"}

    assert old_reader.decode(new_reader.encode(marked)) == without_truncated
    assert new_reader.decode(old_reader.encode(record)) == {**record, "truncated": None}
    assert new_reader.decode(new_reader.encode(marked)) == marked
    assert v2.schema["name"] == v1.schema["name"] == "io.kafkube.v1.KubernetesEvent"


def test_p9_released_v3_adds_the_enrichment_and_v1_and_v2_readers_read_it() -> None:
    v1, v2, v3 = (released_versions()[n] for n in (1, 2, 3))
    record = to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE)
    enriched = {
        **record,
        "regarding_labels": {"app": "checkout", "pod-template-hash": "7d9f"},
        "regarding_owner": {"kind": "Deployment", "name": "checkout"},
    }
    written = Codec(writer=v3).encode(enriched)

    for old in (v1, v2):
        read = Codec(writer=old, reader=old).decode(written)
        assert "regarding_owner" not in read
        assert read["uid"] == record["uid"]
    assert Codec().decode(written) == enriched  # v3 is the latest
    assert (
        Codec(writer=v3).decode(
            Codec(writer=v2).encode(
                {k: v for k, v in record.items() if not k.startswith("regarding_")}
                | {"regarding": record["regarding"]}
            )
        )["regarding_owner"]
        is None
    )


def test_a_record_the_schema_refuses_raises_the_typed_encode_error() -> None:
    record = to_record(CORE_PULLING, watch_type="ADDED", **ENVELOPE)

    with pytest.raises(EncodeError, match="refuses the record") as raised:
        Codec().encode({**record, "watch_type": "BOOKMARKED"})
    with pytest.raises(EncodeError):
        Codec().encode({**record, "count": "twelve"})
    assert raised.value.retriable is False
