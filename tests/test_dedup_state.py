"""The producer's de-duplication state: pure decisions, bounded memory, a readable topic form."""

from __future__ import annotations

import pytest

from kafkube.producer.dedup import CHECKPOINT_KEY, PublishedState, StateError, cluster_of, newer


def test_an_occurrence_is_new_once_and_a_repeat_with_a_higher_version_is_new_again() -> None:
    state = PublishedState(cluster="a", forget_after=3600)

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
    state = PublishedState(cluster="a", forget_after=3600)
    state.published("u1", "100", 3, now=0)

    assert state.missed_count("u1", 4) == 0
    assert state.missed_count("u1", 7) == 3
    assert state.missed_count("unknown", 9) == 0


def test_the_state_topic_form_rebuilds_the_same_state() -> None:
    state = PublishedState(cluster="a", forget_after=3600)
    records = [
        state.published("u1", "100", 1, now=10),
        state.published("u2", "101", None, now=11),
        state.published("u1", "102", 2, now=12),
        state.forget("u2"),
        state.set_checkpoint("102"),
    ]
    rebuilt = PublishedState(cluster="a", forget_after=3600)

    for record in records:
        assert record is not None
        rebuilt.load(record.key, record.value)

    assert rebuilt.checkpoint == "102"
    assert len(rebuilt) == 1
    assert rebuilt.get("u1") == state.get("u1")
    assert rebuilt.get("u2") is None


def test_an_unreadable_state_record_is_a_typed_error() -> None:
    with pytest.raises(StateError, match="unknown key"):
        PublishedState(cluster="a", forget_after=1).load(b"cluster:a/what", b"{}")
    state = PublishedState(cluster="a", forget_after=1)
    with pytest.raises(StateError, match="unreadable"):
        state.load(b"cluster:a/" + CHECKPOINT_KEY, b"not json")


def test_memory_stays_bounded_over_100_000_events_with_expiry() -> None:
    """Events expire (DELETED, or unseen for forget_after): the state holds the living ones only."""
    state = PublishedState(cluster="a", forget_after=600)
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
    state = PublishedState(cluster="a", forget_after=3600)
    for uid in ("a", "b", "c"):
        state.published(uid, "1", 1, now=0)

    tombstones = state.forget_all_but(["b"])

    assert sorted(t.key for t in tombstones) == [b"cluster:a/uid:a", b"cluster:a/uid:c"]
    assert all(t.value is None for t in tombstones)
    assert len(state) == 1


def test_each_namespace_watch_keeps_its_own_checkpoint_beside_the_cluster_wide_one() -> None:
    state = PublishedState(cluster="a", forget_after=3600)
    records = [
        state.set_checkpoint("90"),  # what a cluster-wide producer (or an older version) left
        state.set_checkpoint("120", "payments"),
        state.set_checkpoint("130", "checkout"),
        state.set_checkpoint("140", "payments"),
    ]
    rebuilt = PublishedState(cluster="a", forget_after=3600)

    for record in records:
        rebuilt.load(record.key, record.value)

    assert [r.key for r in records[:3]] == [
        b"cluster:a/checkpoint",
        b"cluster:a/checkpoint:ns:payments",
        b"cluster:a/checkpoint:ns:checkout",
    ]
    assert rebuilt.checkpoints == {"": "90", "payments": "140", "checkout": "130"}
    assert rebuilt.checkpoint == "90"
    # A namespace never watched on its own has no checkpoint: it is listed, never resumed
    # from the cluster-wide one (which may have covered other namespaces only).
    assert "staging" not in rebuilt.checkpoints
    rebuilt.load(b"cluster:a/checkpoint:ns:checkout", None)
    assert "checkout" not in rebuilt.checkpoints


def test_clusters_sharing_a_state_topic_read_and_write_only_their_own_entries() -> None:
    """Two producers of two clusters on one topic: each one's records, interleaved in the
    state topic with the other's and with entries older than cluster keys, rebuild its own
    state alone."""
    east = PublishedState(cluster="east", forget_after=3600)
    west = PublishedState(cluster="west", forget_after=3600)
    log = [
        (b"checkpoint", b'{"rv": "5"}'),  # written before keys named a cluster
        (b"uid:old", b'{"rv": "4", "count": 1, "seen": 0}'),
        east.set_checkpoint("100"),
        west.set_checkpoint("7"),
        east.published("u1", "101", 1, now=0),
        west.published("u1", "8", 1, now=0),  # the same uid in both clusters: two entries
        west.published("u2", "9", None, now=0),
        *east.forget_all_but([]),  # east relisted and found nothing: west keeps its uids
    ]
    rebuilt_east = PublishedState(cluster="east", forget_after=3600)
    rebuilt_west = PublishedState(cluster="west", forget_after=3600)

    for key, value in log:
        rebuilt_east.load(key, value)
        rebuilt_west.load(key, value)

    assert rebuilt_east.checkpoint == "100"
    assert rebuilt_west.checkpoint == "7"
    assert len(rebuilt_east) == 0
    assert rebuilt_west.get("u1") == ("8", 1, 0.0)
    assert rebuilt_west.get("u2") is not None
    assert (rebuilt_east.own_records, rebuilt_east.other_records) == (3, 3)
    assert rebuilt_east.legacy_records == rebuilt_west.legacy_records == 2
    assert cluster_of(b"cluster:west/uid:u1") == "west"
    assert cluster_of(b"uid:u1") is None
