"""Cutting an event that is too large for the topic until it fits. Pure: no I/O.

Kafka refuses a record above the producer's ``message.max.bytes`` or the topic's
``max.message.bytes``; an event with a megabyte of message (the API server takes
up to about 1.5 MB) would otherwise stop the stream at that event for ever. The
event is published anyway, cut in this order until it fits: the note (core/v1
message) is shortened, then annotations and then labels are dropped, largest
first. The record says what was cut in its ``truncated`` field (schema v2),
so a reader never mistakes a cut event for a whole one. An event that still does
not fit with all of that gone raises ``RecordTooLarge``, a refusal like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from kafkube.schemas.codec import EncodeError
from kafkube.schemas.records import EventRecord, Truncation

# What the marker and the re-encoded lengths may add; a few rounds at most close the rest.
_SLACK = 64
_ROUNDS = 8
_NAMED_AT_MOST = 10  # dropped map entries named one by one; more: the whole map goes


class RecordTooLarge(EncodeError):  # noqa: N818 - reads as what it is
    """Even with its note, annotations and labels cut, the event does not fit the topic."""


def fit(
    record: EventRecord, encode: Callable[[EventRecord], bytes], limit: int
) -> tuple[EventRecord, bytes]:
    """The record and its encoding, cut as described above if the encoding exceeds ``limit``."""
    value = encode(record)
    if len(value) <= limit:
        return record, value
    cut: list[str] = []
    marker: Truncation = {"cut": cut, "original_bytes": len(value), "limit_bytes": limit}
    trimmed = cast("EventRecord", {**record, "truncated": marker})
    value = encode(trimmed)
    for step in (_shorten_note, _drop_entries("annotations"), _drop_entries("labels")):
        for _ in range(_ROUNDS):
            if len(value) <= limit or not step(trimmed, cut, len(value) - limit + _SLACK):
                break
            value = encode(trimmed)
        if len(value) <= limit:
            return trimmed, value
    raise RecordTooLarge(
        f"event {record['uid']} is {marker['original_bytes']} bytes, and "
        f"{len(value)} with its note, annotations and labels cut: over the limit of {limit}"
    )


def _shorten_note(record: EventRecord, cut: list[str], excess: int) -> bool:
    note = record["note"]
    if not note:
        return False
    data = note.encode()
    # Cut on a character boundary: a partial UTF-8 sequence at the end is dropped.
    record["note"] = data[: max(0, len(data) - excess)].decode("utf-8", "ignore")
    if "note" not in cut:
        cut.append("note")
    return True


def _drop_entries(field: str) -> Callable[[EventRecord, list[str], int], bool]:
    def drop(record: EventRecord, cut: list[str], excess: int) -> bool:
        entries: dict[str, str] | None = cast("Any", record)[field]
        if not entries:
            return False
        kept = dict(entries)
        dropped: list[str] = []
        freed = 0
        for key in sorted(kept, key=lambda k: len(k) + len(kept[k]), reverse=True):
            if freed >= excess:
                break
            freed += len(key.encode()) + len(kept.pop(key).encode()) + 4
            dropped.append(key)
        if not kept or len(dropped) > _NAMED_AT_MOST:
            # Many names would cost more than they tell: the map goes whole, named once.
            cut[:] = [name for name in cut if not name.startswith(f"{field}.")]
            cut.append(field)
            kept = {}
        else:
            cut.extend(f"{field}.{key}" for key in dropped)
        cast("Any", record)[field] = kept or None
        return True

    return drop
