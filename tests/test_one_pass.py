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

import orjson
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
    for line in _lines({"type": watch_type, "object": event}):
        _same_line(converter, line)
    return fast


def _lines(item: dict[str, Any]) -> list[bytes]:
    """A watch event's line as a client might write it: compact, with blanks, ASCII only,
    its keys in another order; those that cannot be written (a lone surrogate) left out."""
    shuffled = {key: item[key] for key in reversed(item)}
    renderings = [
        lambda: orjson.dumps(item),
        lambda: json.dumps(item, ensure_ascii=True).encode(),
        lambda: json.dumps(shuffled, ensure_ascii=False, separators=(" ,", " : ")).encode(),
    ]
    lines = []
    for render in renderings:
        try:
            lines.append(render() + b"\n")
        except (TypeError, UnicodeEncodeError, orjson.JSONEncodeError):
            continue
    return lines


def _same_line(converter: converting.OnePass, line: bytes) -> converting.Converted | None:
    """The line pass's answer, asserted to be what orjson and the one pass make of the line
    wherever it gives one, and none where orjson refuses the line."""
    fast = converter.convert_line(line, NOW)
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        assert fast is None, line
        return None
    if fast is None:
        return None
    assert isinstance(item, dict), line
    assert "kind" not in item, line
    assert isinstance(item.get("object"), dict), line
    assert fast == (item["type"], converter.convert(item["object"], item["type"], NOW)), line
    return fast[1]


def _recorded(count: int, seed: int) -> list[dict[str, Any]]:
    stream = io.StringIO()
    record_watch_stream(SyntheticCluster(seed).operations(), stream, limit=count, seed=seed)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_recorded_stream_is_written_by_the_one_pass_byte_for_byte() -> None:
    items = _recorded(3000, seed=11)

    answered = [_same(item["object"], item["type"]) for item in items]
    converter = one_pass(
        Codec(), cluster="prod-eu-1", producer_id="kafkube-0", api_version=API_CORE_V1
    )
    assert converter is not None
    lines = [_same_line(converter, orjson.dumps(item) + b"\n") for item in items]

    assert all(fast is not None for fast in answered)  # a real stream: none left to Python
    assert all(fast is not None for fast in lines)  # nor to the dict path


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


def test_the_line_pass_reads_both_api_views_and_an_escaped_text() -> None:
    converter = one_pass(Codec(), cluster="c", producer_id="p", api_version=API_CORE_V1)
    assert converter is not None
    noted = {
        **CORE_PULLING,
        "message": 'pulling "a/b" <\u00e9>\\ \t\n\u0000 done',
    }
    managed = {  # as the API server writes it: a key with escapes, in what is not read
        **CORE_PULLING,
        "metadata": {
            **CORE_PULLING["metadata"],
            "managedFields": [{"fieldsV1": {'k:{"type":"Ready"}': {}, "f:count": {}}}],
        },
    }
    for event in (CORE_PULLING, EVENTS_V1_FAILED_SCHEDULING, noted, managed):
        ascii_line = json.dumps({"type": "MODIFIED", "object": event}).encode() + b"\n"
        assert _same_line(converter, ascii_line) is not None
    hidden = json.dumps({"type": "ADDED", "object": CORE_PULLING}).replace(
        '"reason"', '"re\\u0061son"'
    )
    assert converter.convert_line(hidden.encode(), NOW) is None  # a key read: an escape in it


@pytest.mark.parametrize(
    "line",
    [
        b"", b"{", b"[]", b'{"type": "ADDED"}', b'{"type": "ADDED", "object": []}',
        b'{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "5"}}}',
        b'{"type": "ADDED", "object": {}, "kind": "EventList"}',
        b'{"type": "ADDED", "object": {}} x', b'{"type": "ADD\\u0045D", "object": {}}',
        b'{"type": "ADDED", "object": {"count": 1e3}}',
        b'{"type": "ADDED", "object": {"x": "\\ud83d\\ude00"}}',
        b'{"type": "ADDED", "object": {"x": "\xc3\xa9"}}',
        b'{"type": "ADDED", "object": {"x": "\x01"}}',
        b'{"type": "ADDED", "object": {"x": ' + b"[" * 100 + b"]" * 100 + b"}}",
    ],
)  # fmt: skip
def test_the_line_pass_leaves_what_it_does_not_read_for_certain(line: bytes) -> None:
    converter = one_pass(Codec(), cluster="c", producer_id="p", api_version=API_CORE_V1)
    assert converter is not None

    assert converter.convert_line(line, NOW) is None


def test_mangled_lines_are_read_as_orjson_reads_them_or_left() -> None:
    """Lines of a recorded stream with bytes cut, doubled and changed into what JSON is
    made of: the line pass answers as orjson and the one pass would, or not at all."""
    converter = one_pass(Codec(), cluster="c", producer_id="p", api_version=API_EVENTS_V1)
    assert converter is not None
    chooser = random.Random(17)
    lines = [orjson.dumps(item) for item in _recorded(300, seed=3)]
    duplicated = {**CORE_PULLING, "metadata": {**CORE_PULLING["metadata"], "labels": {"a": "b"}}}
    lines.append(orjson.dumps({"type": "ADDED", "object": duplicated}))
    alphabet = b'{}[]",:\\ 0123456789.-eEtrufalsn\x7f'
    answered = 0
    for _ in range(6000):
        line = bytearray(chooser.choice(lines))
        for _ in range(chooser.randint(1, 3)):
            at = chooser.randrange(len(line))
            change = chooser.randrange(4)
            if change == 0:
                del line[at]
            elif change == 1:
                line.insert(at, chooser.choice(alphabet))
            elif change == 2:
                line[at] = chooser.choice(alphabet)
            else:
                line[at:at] = line[at : at + chooser.randint(1, 40)]
        answered += _same_line(converter, bytes(line)) is not None
    assert answered > 300  # some mangled lines were still events it read
