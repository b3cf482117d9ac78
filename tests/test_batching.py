"""When a sink's batch closes: the rules alone, driven with a clock in the test's hand."""

from __future__ import annotations

from datetime import UTC, datetime

from kafkube.consumers.batching import BatchShape, Rotation
from kafkube.consumers.naming import ObjectRange

HOUR = datetime(2026, 11, 28, 9, tzinfo=UTC)
NEXT_HOUR = datetime(2026, 11, 28, 10, tzinfo=UTC)
# Below the configuration's floor of max_bytes (1024), to test the rule with small batches.
RULES = Rotation.model_construct(max_records=3, max_bytes=1_000, max_age_seconds=60.0)


def _fill(batch: BatchShape, count: int, size: int = 10) -> int:
    for _ in range(count):
        batch.add(size)
    return batch.first + batch.records - 1


def test_a_batch_closes_at_max_records() -> None:
    batch = RULES.open(100, HOUR, "v2", now=0.0)

    assert not RULES.full(batch, _fill(batch, 2))
    assert RULES.full(batch, _fill(batch, 1))


def test_a_batch_closes_at_max_bytes_before_max_records() -> None:
    batch = RULES.open(0, HOUR, "v2", now=0.0)

    batch.add(999)
    assert not RULES.full(batch, 0)
    batch.add(1)
    assert RULES.full(batch, 1)


def test_a_batch_closes_on_the_clock_to_the_millisecond() -> None:
    batch = RULES.open(0, HOUR, "v2", now=1_000.0)

    assert not RULES.aged(batch, 1_059.999)
    assert RULES.aged(batch, 1_060.0)


def test_another_hour_or_another_writer_schema_opens_a_new_batch() -> None:
    batch = RULES.open(0, HOUR, "v1", now=0.0)

    assert not RULES.closes_before(batch, HOUR, "v1")
    assert RULES.closes_before(batch, NEXT_HOUR, "v1")
    assert RULES.closes_before(batch, HOUR, "v2")


def test_an_objects_rewrite_keeps_its_name_and_ends_exactly_where_it_ended_whatever_else() -> None:
    written = ObjectRange(50, 59, HOUR)
    batch = RULES.open(52, NEXT_HOUR, "v1", now=0.0, rewrite=written)  # 50, 51 left out now

    assert (batch.first, batch.hour, batch.forced) == (50, HOUR, written)
    last = _fill(batch, 7, size=500)  # far past max_records and max_bytes: not the rule here
    assert not RULES.full(batch, last)
    assert not RULES.aged(batch, 10_000.0)
    assert not RULES.closes_before(batch, NEXT_HOUR, "v2")
    assert RULES.full(batch, 59)
    assert RULES.last(batch, 57) == 59  # its last records left out now: the name stays


def test_a_batch_between_objects_follows_the_rules() -> None:
    batch = RULES.open(55, HOUR, "v1", now=0.0)

    assert batch.forced is None
    assert RULES.full(batch, _fill(batch, 3))
    assert RULES.last(batch, 57) == 57
