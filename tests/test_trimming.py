"""An event too large for the topic is cut to fit, in a fixed order, and says so (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kafkube.producer.converting import to_record
from kafkube.producer.trimming import RecordTooLarge, fit
from kafkube.schemas.codec import Codec
from kafkube.schemas.records import EventRecord

LIMIT = 10_000


def _event(note: str = "small", **metadata: object) -> EventRecord:
    raw = {
        "metadata": {"uid": "u-1", "resourceVersion": "7", "name": "pod.1", **metadata},
        "message": note,
        "reason": "Failed",
        "involvedObject": {"kind": "Pod", "name": "web", "uid": "p-1"},
    }
    return to_record(
        raw,
        watch_type="ADDED",
        cluster="c",
        producer_id="p",
        observed_at=datetime(2026, 11, 28, tzinfo=UTC),
    )


def test_a_record_that_fits_is_left_as_it_is() -> None:
    codec = Codec()
    record = _event()

    fitted, value = fit(record, codec.encode, LIMIT)

    assert fitted is record
    assert value == codec.encode(record)
    assert fitted["truncated"] is None


def test_a_large_note_is_shortened_to_fit_and_marked() -> None:
    codec = Codec()
    record = _event("é" * 20_000)  # two bytes a character: cuts land inside characters too
    original = len(codec.encode(record))

    fitted, value = fit(record, codec.encode, LIMIT)

    assert len(value) <= LIMIT
    assert codec.decode(value) == fitted
    marker = {"cut": ["note"], "original_bytes": original, "limit_bytes": LIMIT}
    assert fitted["truncated"] == marker
    assert fitted["note"]
    assert "é" * len(fitted["note"]) == fitted["note"]  # no broken character at the cut
    assert len(value) > LIMIT - 200  # as much of the note kept as fits
    assert record["note"] == "é" * 20_000  # the caller's record is not changed


def test_annotations_go_largest_first_once_the_note_is_gone() -> None:
    codec = Codec()
    annotations = {"big": "a" * 8_000, "small": "s"}
    record = _event("", annotations=annotations, labels={"app": "web"})

    fitted, value = fit(record, codec.encode, LIMIT - 4_000)

    assert len(value) <= LIMIT - 4_000
    truncated = fitted["truncated"]
    assert truncated is not None
    assert truncated["cut"] == ["annotations.big"]
    assert fitted["annotations"] == {"small": "s"}
    assert fitted["labels"] == {"app": "web"}


def test_labels_go_only_after_every_annotation() -> None:
    codec = Codec()
    annotations = {"big": "a" * 8_000, "small": "s"}
    labels = {"app": "web", "huge": "l" * 6_000}
    record = _event("", annotations=annotations, labels=labels)

    fitted, value = fit(record, codec.encode, 5_000)

    assert len(value) <= 5_000
    truncated = fitted["truncated"]
    assert truncated is not None
    assert truncated["cut"] == ["annotations", "labels.huge"]
    assert fitted["annotations"] is None
    assert fitted["labels"] == {"app": "web"}


def test_a_map_dropped_whole_is_named_once() -> None:
    codec = Codec()
    record = _event("", annotations={f"k{i}": "v" * 200 for i in range(100)})

    fitted, value = fit(record, codec.encode, 2_000)

    assert len(value) <= 2_000
    assert fitted["annotations"] is None
    assert fitted["truncated"] is not None
    assert fitted["truncated"]["cut"] == ["annotations"]


def test_an_event_that_cannot_fit_raises_the_typed_refusal() -> None:
    codec = Codec()
    record = _event("x" * 5_000)

    with pytest.raises(RecordTooLarge, match="over the limit of 50") as raised:
        fit(record, codec.encode, 50)
    assert raised.value.retriable is False
