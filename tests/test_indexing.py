"""The per-partition index: what a restart needs, in one small object (pure)."""

from __future__ import annotations

import pytest

from kafkube.consumers.indexing import KEEP, PartitionIndex, UnreadableIndex
from kafkube.consumers.naming import ObjectRange, index_name, parse_object_name, start_offset


def _spans(count: int, size: int = 10) -> list[ObjectRange]:
    return [ObjectRange(i * size, i * size + size - 1) for i in range(count)]


def test_an_index_round_trips_through_its_bytes() -> None:
    index = PartitionIndex.rebuilt(_spans(3), committed=0)

    assert PartitionIndex.parse(index.to_bytes()) == index
    assert index.covers(0)


@pytest.mark.parametrize("data", [b"", b"{}", b'{"version": 9, "ranges": []}', b"[1, 2]"])
def test_bytes_that_are_not_an_index_raise_the_typed_error(data: bytes) -> None:
    with pytest.raises(UnreadableIndex):
        PartitionIndex.parse(data)


def test_ranges_before_the_commit_go_all_but_the_latest_and_complete_from_follows() -> None:
    index = PartitionIndex.rebuilt(_spans(1000), committed=9_000)

    assert len(index.ranges) == KEEP + 100  # the 100 at or after 9000, and KEEP before them
    assert index.complete_from == index.ranges[0].first
    assert index.covers(9_000)
    assert index.covers(index.complete_from)
    assert not index.covers(index.complete_from - 1)  # a replay further back lists the store


def test_what_a_restart_needs_is_the_same_from_the_index_as_from_a_full_listing() -> None:
    written = _spans(2000)
    index = PartitionIndex()
    committed = 0
    for span in written:  # as the runner goes: index first, then the object, then the commit
        index.add(span, committed)
        committed = span.last + 1
    for position in (19_995, 15_000, 19_000, committed):
        assert index.covers(position) == (position >= index.complete_from)
        if index.covers(position):
            assert start_offset(position, index.ranges) == start_offset(position, written)
    assert len(index.ranges) <= KEEP + 1


def test_a_range_noted_twice_is_kept_once() -> None:
    index = PartitionIndex()
    index.add(ObjectRange(0, 9), 0)
    index.add(ObjectRange(0, 9), 0)

    assert index.ranges == [ObjectRange(0, 9)]


def test_the_index_name_is_hidden_from_query_engines_and_never_taken_for_an_object() -> None:
    name = index_name("kafkube.events", 3, "avro")

    assert name == "_kafkube/index/kafkube.events/kafkube.events+00003.avro.json"
    assert parse_object_name(name, "kafkube.events") is None
