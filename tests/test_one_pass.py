"""The producer's compiled one pass writes the bytes of the Python path (``to_record``, then
the codec), or leaves the event to it: over a recorded stream of both API views, and with
every odd value at every field the conversion reads."""

from __future__ import annotations

import copy
import io
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from kafkube.producer import converting
from kafkube.producer.converting import ConversionError, one_pass, to_record
from kafkube.producer.simulating import record_watch_stream
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.schemas.codec import Codec, EncodeError, registry_header
from kafkube.schemas.records import API_CORE_V1, API_EVENTS_V1
from tests.test_event_schema import CORE_PULLING, EVENTS_V1_FAILED_SCHEDULING

NOW = 1_796_000_000.123457  # seconds since the epoch, a fraction that rounds
ODD_VALUES: list[Any] = [
    None, "", "x", "ünï\u20accode", "2026-11-25T18:58:01Z", "2026-11-25T20:00:00.5+01:00",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "12", "-7", " 3", 0, 1, -1, 2**31,
    -(2**31), 2**70, True, False,
    3.5, {}, {"a": "b"}, {"a": 1, "b": None, "c": True}, {"count": 4}, [], ["x"],
    "\ud800",
]  # fmt: skip
FIELDS: list[tuple[str, ...]] = [
    ("apiVersion",), ("metadata",), ("metadata", "uid"), ("metadata", "resourceVersion"),
    ("metadata", "name"), ("metadata", "namespace"), ("metadata", "creationTimestamp"),
    ("metadata", "labels"), ("metadata", "annotations"), ("type",), ("reason",), ("action",),
    ("message",), ("note",), ("involvedObject",), ("regarding",), ("related",),
    ("regarding", "uid"), ("involvedObject", "uid"), ("involvedObject", "fieldPath"),
    ("source",), ("deprecatedSource",), ("source", "host"), ("reportingComponent",),
    ("reportingController",), ("reportingInstance",), ("eventTime",), ("firstTimestamp",),
    ("deprecatedFirstTimestamp",), ("lastTimestamp",), ("deprecatedLastTimestamp",),
    ("count",), ("deprecatedCount",), ("series",), ("series", "count"),
    ("series", "lastObservedTime"),
]  # fmt: skip


def _python_path(
    event: dict[str, Any], watch_type: str, codec: Codec, api_version: str
) -> converting.Converted | None:
    """What the producer's Python path makes of the event: None where it refuses it."""
    try:
        record = to_record(
            event, watch_type=watch_type, cluster="prod-eu-1", producer_id="kafkube-0",  # type: ignore[arg-type]
            observed_at=datetime.fromtimestamp(NOW, UTC), api_version=api_version,
        )  # fmt: skip
        value = codec.encode(record)
    except (ConversionError, EncodeError):
        return None
    regarding = record["regarding"]
    return (
        value,
        record["uid"],
        record["resource_version"],
        record["count"],
        (record["type"] or "", record["reason"] or ""),
        ((regarding and regarding["uid"]) or record["uid"]).encode(),
    )


def _same(
    event: dict[str, Any],
    watch_type: str = "ADDED",
    codec: Codec | None = None,
    api_version: str = API_CORE_V1,
) -> converting.Converted | None:
    """The one pass's answer, asserted to be the Python path's wherever it gives one."""
    codec = codec or Codec()
    converter = one_pass(
        codec, cluster="prod-eu-1", producer_id="kafkube-0", api_version=api_version
    )
    assert converter is not None
    fast = converter.convert(copy.deepcopy(event), watch_type, NOW)
    expected = _python_path(copy.deepcopy(event), watch_type, codec, api_version)
    if fast is not None:
        assert fast == expected, event
    return fast


def _recorded(count: int, seed: int) -> list[dict[str, Any]]:
    stream = io.StringIO()
    record_watch_stream(SyntheticCluster(seed).operations(), stream, limit=count, seed=seed)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_recorded_stream_is_written_by_the_one_pass_byte_for_byte() -> None:
    items = _recorded(3000, seed=11)

    answered = [_same(item["object"], item["type"]) for item in items]

    assert all(fast is not None for fast in answered)  # a real stream: none left to Python


@pytest.mark.parametrize("view", [API_CORE_V1, API_EVENTS_V1])
def test_both_api_views_and_a_list_item_without_apiversion(view: str) -> None:
    for event in (CORE_PULLING, EVENTS_V1_FAILED_SCHEDULING):
        assert _same(event, "MODIFIED", api_version=view) is not None
        bare = {k: v for k, v in event.items() if k != "apiVersion"}  # a list's item
        assert _same(bare, "ADDED", api_version=view) is not None
        beta = {**event, "apiVersion": "events.k8s.io/v1beta1"}
        assert _same(beta, "DELETED", api_version=view) is not None


@pytest.mark.parametrize("field", FIELDS, ids=".".join)
def test_every_odd_value_at_every_field_gives_the_python_paths_bytes_or_none(
    field: tuple[str, ...],
) -> None:
    for base in (CORE_PULLING, EVENTS_V1_FAILED_SCHEDULING):
        for value in ODD_VALUES:
            event = copy.deepcopy(base)
            parent = event
            for step in field[:-1]:
                if not isinstance(parent.get(step), dict):
                    parent[step] = {}
                parent = parent[step]
            parent[field[-1]] = value
            _same(event)
            del parent[field[-1]]
            _same(event)


def test_random_mixtures_of_odd_values_agree() -> None:
    chooser = random.Random(5)
    for _ in range(2000):
        event = copy.deepcopy(chooser.choice([CORE_PULLING, EVENTS_V1_FAILED_SCHEDULING]))
        for field in chooser.sample(FIELDS, 4):
            parent = event
            for step in field[:-1]:
                if not isinstance(parent.get(step), dict):
                    parent[step] = {}
                parent = parent[step]
            parent[field[-1]] = chooser.choice(ODD_VALUES)
        _same(event, chooser.choice(["ADDED", "MODIFIED", "DELETED"]))


def test_the_registry_framing_and_long_maps_and_texts() -> None:
    event = copy.deepcopy(CORE_PULLING)
    event["metadata"]["annotations"] = {f"k{i}": "v" * i for i in range(300)}
    event["message"] = "m" * 70_000

    assert _same(event, codec=Codec(writer_id=42)) is not None
    assert Codec(writer_id=42).header == registry_header(42)


def test_what_it_cannot_write_the_same_way_is_left_to_the_python_path() -> None:
    not_a_dict = {**CORE_PULLING, "source": "kubelet"}
    unknown_watch_type = copy.deepcopy(CORE_PULLING)

    assert _same(not_a_dict) is None
    assert _same({**CORE_PULLING, "count": "12"}) is None  # a number as text: Python reads it
    assert (
        one_pass(Codec(), cluster="c", producer_id="p", api_version=API_CORE_V1).convert(
            unknown_watch_type, "BOOKMARK", NOW
        )
        is None
    )  # type: ignore[union-attr]
