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


def test_an_index_with_open_folders_round_trips_and_one_of_version_1_still_reads() -> None:
    index = PartitionIndex.rebuilt(_spans(3), committed=0)
    index.leave_open(["t/dt=2026-12-07/hour=01"], 30)

    assert PartitionIndex.parse(index.to_bytes()) == index
    old = b'{"version": 1, "complete_from": 0, "ranges": [[0, 9]]}'
    assert PartitionIndex.parse(old) == PartitionIndex(0, [ObjectRange(0, 9)])


@pytest.mark.parametrize("folder", ["t/../x", "u/dt=2026-12-07/hour=01"])
def test_an_index_whose_open_folders_leave_the_topics_is_unreadable(folder: str) -> None:
    data = b'{"version": 2, "complete_from": 0, "ranges": [], "open": ["%s"], "open_from": 0}'
    with pytest.raises(UnreadableIndex):
        PartitionIndex.parse(data % folder.encode(), within="t/")


def test_open_folders_cover_later_objects_there_and_of_the_same_hour_only() -> None:
    index = PartitionIndex()
    one, two = "t/cluster=a/dt=2026-12-07/hour=01", "t/cluster=b/dt=2026-12-07/hour=01"
    later = "t/cluster=a/dt=2026-12-07/hour=02"
    assert not index.holds(0, [one])  # nothing open: the first object writes the index

    index.leave_open([one], 10)
    assert index.holds(10, [one])
    assert not index.holds(9, [one])  # an object before: a rewrite after a reset
    assert not index.holds(10, [one, two])

    index.leave_open([two], 20)  # the same hour's other cluster stays open
    assert index.open == [one, two]
    index.leave_open([later], 30)  # a new hour: the last one's are done with
    assert index.open == [later]
    index.close()
    assert (index.open, index.open_from) == ([], 0)


def test_no_more_than_sixteen_folders_stay_open() -> None:
    index = PartitionIndex()
    for number in range(40):
        index.leave_open([f"t/cluster=c{number}/dt=2026-12-07/hour=01"], number)

    assert 1 <= len(index.open) <= 16
    assert "t/cluster=c39/dt=2026-12-07/hour=01" in index.open


def test_after_a_crash_the_stored_index_and_its_open_folders_give_what_a_full_listing_does() -> (
    None
):
    """The runner's order, objects in three hours and two clusters: at every point a crash
    may stop it (after an object, before its commit), the last index stored plus a listing
    of its open folders from ``open_from`` knows every object a full listing does."""
    folders = ["t/cluster=a/dt=2026-12-07/hour=01", "t/cluster=b/dt=2026-12-07/hour=01"]
    folders += ["t/cluster=a/dt=2026-12-07/hour=02"]
    memory, stored, writes = PartitionIndex(), PartitionIndex().to_bytes(), 0
    objects: list[tuple[str, ObjectRange]] = []
    committed = 0
    for number in range(300):
        span = ObjectRange(number * 10, number * 10 + 9)
        where = [folders[min(number // 100, 2) if number % 7 else number % 2]]
        memory.add(span, committed)
        if not memory.holds(span.first, where):
            memory.leave_open(where, span.last + 1)
            stored, writes = memory.to_bytes(), writes + 1
        objects.append((where[0], span))
        # a crash here: the object is stored, its offset not committed
        found = PartitionIndex.parse(stored)
        assert found.covers(committed)
        for folder in found.open:
            for place, listed in objects:
                if place == folder and listed.first >= found.open_from:
                    found.add(listed, committed)
        written = sorted(listed for _, listed in objects)
        assert start_offset(committed, found.ranges) == start_offset(committed, written)
        committed = span.last + 1
    assert writes < 100  # not one a batch
