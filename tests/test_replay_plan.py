"""Where a reset moves each partition: Kafka's own rules, decided without a broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kafkube.consumers.replaying import PartitionOffsets, ResetTarget, plan
from kafkube.core.errors import ConfigError

# Partition 0 holds 10..99 and is at 50; 1 holds 0..19 and was never committed; 2 is at its end.
PARTITIONS = [
    PartitionOffsets(0, committed=50, start=10, end=101, records_end=100),
    PartitionOffsets(1, committed=None, start=0, end=21, records_end=20),
    PartitionOffsets(2, committed=31, start=0, end=31, records_end=30),
]


def _after(target: ResetTarget, **kwargs: dict[int, int]) -> dict[int, int]:
    return {move.partition: move.after for move in plan(PARTITIONS, target, **kwargs)}


def test_earliest_and_latest_are_the_log_start_and_end() -> None:
    assert _after(ResetTarget("earliest")) == {0: 10, 1: 0, 2: 0}
    assert _after(ResetTarget("latest")) == {0: 101, 1: 21, 2: 31}


def test_an_offset_outside_the_log_is_clamped_to_it() -> None:
    assert _after(ResetTarget("offset", offset=5)) == {0: 10, 1: 5, 2: 5}
    assert _after(ResetTarget("offset", offset=500)) == {0: 101, 1: 21, 2: 31}


def test_to_offset_with_a_partition_moves_only_that_partition() -> None:
    moves = plan(PARTITIONS, ResetTarget("offset", offset=12, partition=1))
    assert [(m.partition, m.before, m.after) for m in moves] == [(1, None, 12)]
    with pytest.raises(ConfigError, match="partition"):
        plan(PARTITIONS, ResetTarget("offset", offset=1, partition=7))


def test_shift_counts_from_where_the_group_would_read_next() -> None:
    assert _after(ResetTarget("shift", offset=-45)) == {0: 10, 1: 0, 2: 0}
    assert _after(ResetTarget("shift", offset=3)) == {0: 53, 1: 3, 2: 31}


def test_datetime_takes_kafkas_answer_and_the_end_where_nothing_is_that_late() -> None:
    moment = datetime(2026, 11, 25, tzinfo=UTC)
    found = {0: 70, 1: -1, 2: 4}
    assert _after(ResetTarget("datetime", moment=moment), at_time=found) == {0: 70, 1: 21, 2: 4}


def test_lag_counts_records_not_the_transaction_marker_after_them() -> None:
    assert [p.lag for p in PARTITIONS] == [50, 20, 0]


@pytest.mark.parametrize(
    ("target", "field"),
    [
        (lambda: ResetTarget("datetime", moment=datetime(2026, 1, 1)), "to_datetime"),  # noqa: DTZ001 - a naive time on purpose
        (lambda: ResetTarget("offset", offset=-1), "to_offset"),
        (lambda: ResetTarget("shift", offset=1, partition=0), "partition"),
    ],
)
def test_a_target_that_means_nothing_is_refused_naming_the_option(
    target: object, field: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        target()  # type: ignore[operator]
    assert refused.value.field == field
