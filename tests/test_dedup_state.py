"""The producer's de-duplication state: pure decisions, bounded memory, a readable topic form."""

from __future__ import annotations

import pytest

from kafkube.producer.dedup import CHECKPOINT_KEY, PublishedState, StateError, newer


def test_an_occurrence_is_new_once_and_a_repeat_with_a_higher_version_is_new_again() -> None:
    state = PublishedState(forget_after=3600)

    first = state.is_new("u1", "100")
    state.published("u1", "100", 1, now=0)

    assert first
    assert not state.is_new("u1", "100")  # the same version seen again (relist, reconnect)
    assert not state.is_new("u1", "99")  # an older one
    assert state.is_new("u1", "101")  # the repeat: count 2, new resourceVersion


def test_non_numeric_resource_versions_compare_only_as_different() -> None:
    assert newer("b", "a")
    assert not newer("a", "a")
    assert newer("10", "9")  # numbers, not strings


def test_a_count_jump_seen_on_relist_is_the_number_of_occurrences_missed() -> None:
    state = PublishedState(forget_after=3600)
    state.published("u1", "100", 3, now=0)

    assert state.missed_count("u1", 4) == 0
    assert state.missed_count("u1", 7) == 3
    assert state.missed_count("unknown", 9) == 0


def test_the_state_topic_form_rebuilds_the_same_state() -> None:
    state = PublishedState(forget_after=3600)
    records = [
        state.published("u1", "100", 1, now=10),
        state.published("u2", "101", None, now=11),
        state.published("u1", "102", 2, now=12),
        state.forget("u2"),
        state.set_checkpoint("102"),
    ]
    rebuilt = PublishedState(forget_after=3600)

    for record in records:
        assert record is not None
        rebuilt.load(record.key, record.value)

    assert rebuilt.checkpoint == "102"
    assert len(rebuilt) == 1
    assert rebuilt.get("u1") == state.get("u1")
    assert rebuilt.get("u2") is None


def test_an_unreadable_state_record_is_a_typed_error() -> None:
    with pytest.raises(StateError, match="unknown key"):
        PublishedState(forget_after=1).load(b"what", b"{}")
    with pytest.raises(StateError, match="unreadable"):
        PublishedState(forget_after=1).load(CHECKPOINT_KEY, b"not json")


def test_memory_stays_bounded_over_100_000_events_with_expiry() -> None:
    """Events expire (DELETED, or unseen for forget_after): the state holds the living ones only."""
    state = PublishedState(forget_after=600)
    largest = 0
    for i in range(100_000):
        now = float(i)  # one event a second
        state.published(f"uid-{i}", str(i), 1, now=now)
        if i % 3 == 0:
            state.forget(f"uid-{i - 30}")  # a third are seen DELETED half a minute later
        if i % 60 == 0:
            state.expire(now=now)
        largest = max(largest, len(state))

    assert largest <= 700  # about forget_after seconds of events, never 100,000
    assert len(state) <= 700


def test_a_relist_forgets_the_uids_the_server_no_longer_has() -> None:
    state = PublishedState(forget_after=3600)
    for uid in ("a", "b", "c"):
        state.published(uid, "1", 1, now=0)

    tombstones = state.forget_all_but(["b"])

    assert sorted(t.key for t in tombstones) == [b"uid:a", b"uid:c"]
    assert all(t.value is None for t in tombstones)
    assert len(state) == 1


def test_each_namespace_watch_keeps_its_own_checkpoint_beside_the_cluster_wide_one() -> None:
    state = PublishedState(forget_after=3600)
    records = [
        state.set_checkpoint("90"),  # what a cluster-wide producer (or an older version) left
        state.set_checkpoint("120", "payments"),
        state.set_checkpoint("130", "checkout"),
        state.set_checkpoint("140", "payments"),
    ]
    rebuilt = PublishedState(forget_after=3600)

    for record in records:
        rebuilt.load(record.key, record.value)

    assert [r.key for r in records[:3]] == [
        b"checkpoint",
        b"checkpoint:ns:payments",
        b"checkpoint:ns:checkout",
    ]
    assert rebuilt.checkpoints == {"": "90", "payments": "140", "checkout": "130"}
    assert rebuilt.checkpoint == "90"
    # A namespace never watched on its own has no checkpoint: it is listed, never resumed
    # from the cluster-wide one (which may have covered other namespaces only).
    assert "staging" not in rebuilt.checkpoints
    rebuilt.load(b"checkpoint:ns:checkout", None)
    assert "checkout" not in rebuilt.checkpoints
