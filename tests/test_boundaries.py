"""Which objects a record read again belongs to: never two, whatever is left out now."""

from __future__ import annotations

from kafkube.consumers.boundaries import Boundaries, Place
from kafkube.consumers.naming import ObjectRange

A, B = ObjectRange(200, 299), ObjectRange(300, 399)


def test_an_object_whose_first_offset_is_read_is_rewritten_even_with_that_record_left_out() -> None:
    bounds = Boundaries([B, A])

    assert bounds.read(200) == (Place.REWRITE, A)  # left out by a new filter, say
    assert bounds.read(201) == (Place.REWRITE, A)  # the rewrite of A, named 200..299
    assert bounds.read(299) == (Place.REWRITE, A)
    assert bounds.read(300) == (Place.REWRITE, B)
    assert bounds.read(400) == (Place.FREE, None)


def test_an_object_whose_start_was_not_read_here_is_kept_as_written() -> None:
    bounds = Boundaries([A, B])

    assert bounds.read(250) == (Place.KEEP, A)  # the log starts at 250 now
    assert bounds.read(299) == (Place.KEEP, A)
    assert bounds.read(300) == (Place.REWRITE, B)


def test_a_jump_past_an_objects_start_keeps_that_object() -> None:
    bounds = Boundaries([A, B])

    assert bounds.read(200) == (Place.REWRITE, A)
    assert bounds.read(310) == (Place.KEEP, B)  # 300 never read: a reset past it


def test_offsets_between_objects_are_free() -> None:
    bounds = Boundaries([ObjectRange(0, 9), ObjectRange(20, 29)])

    assert [bounds.read(o)[0] for o in (10, 15, 19)] == [Place.FREE] * 3
    assert bounds.span_of(30) is None
    assert bounds.span_of(29) == ObjectRange(20, 29)
