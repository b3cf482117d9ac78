"""What the producer has published, so that nothing is published twice. Pure: no I/O.

An occurrence of an event is (uid, resourceVersion): a repeated event is the same
object patched with a higher count and a new resourceVersion. For each uid the
state keeps the last published resourceVersion and count; it forgets the uid
when the event is DELETED (events expire after about an hour) or has not been
seen for ``forget_after``, so the state is bounded by the events alive in the
cluster, not by history. The state and the watch checkpoint are written to a
compacted topic in the same Kafka transaction as the events they describe, so
after a crash both are exactly as of the last committed batch.

Every key names its cluster (``cluster:<name>/...``): producers of many clusters share
one topic and its state topic, and each reads and writes only its own entries. Entries
written before keys named a cluster belong to no one: they are counted and left alone,
and a producer that finds none of its own lists its cluster again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import orjson

from kafkube.core.errors import KafkubeError

CHECKPOINT_KEY = b"checkpoint"  # the cluster-wide watch's
_NAMESPACE_CHECKPOINT_PREFIX = b"checkpoint:ns:"  # one watch per listed namespace, each its own
_UID_PREFIX = b"uid:"
_CLUSTER_PREFIX = b"cluster:"  # every key: cluster:<name>/<one of the above>
CLUSTER_WIDE = ""  # the scope of the one watch of every namespace


def cluster_of(key: bytes) -> str | None:
    """The cluster a state key belongs to; None for a key written before keys named one."""
    if not key.startswith(_CLUSTER_PREFIX):
        return None
    name, sep, _entry = key[len(_CLUSTER_PREFIX) :].partition(b"/")
    return name.decode() if sep and name else None


class StateError(KafkubeError):
    """The state topic holds something this version cannot read."""


def newer(candidate: str, than: str) -> bool:
    """Whether resourceVersion ``candidate`` is later than ``than``.

    resourceVersions are opaque by contract but etcd revisions in practice; compare
    them as numbers when both are, else only tell "different" (which counts as newer).
    """
    if candidate.isdigit() and than.isdigit():
        return int(candidate) > int(than)
    return candidate != than


class Seen(NamedTuple):
    """A tuple, not a dataclass: four times quicker to make, and one is made for every
    event. (The garbage collector still scans it, as it scans every tuple of a subclass:
    the processes' rare full collections, ``service_process``, make that cheap.)"""

    resource_version: str
    event_count: int | None  # the core/v1 count it had (a tuple has a count() of its own)
    seen_at: float  # seconds since the epoch, when the producer last saw the uid


class StateUpdate(NamedTuple):
    """One record of the state topic: a key and a value, or a tombstone (value None).
    A tuple: two are made for every event, and a frozen dataclass costs 4x as much to build."""

    key: bytes
    value: bytes | None


class PublishedState:
    """One cluster's state: its checkpoints and the uids it published."""

    def __init__(self, *, cluster: str, forget_after: float) -> None:
        self.cluster = cluster
        self._prefix = _CLUSTER_PREFIX + cluster.encode() + b"/"
        self.forget_after = forget_after
        # Read back at start: this cluster's records, other clusters', unkeyed older ones.
        self.own_records = self.other_records = self.legacy_records = 0
        # Where each watch resumes, by scope: a namespace, or CLUSTER_WIDE.
        self.checkpoints: dict[str, str] = {}
        self._seen: dict[str, Seen] = {}

    @property
    def checkpoint(self) -> str | None:
        """The cluster-wide watch's checkpoint."""
        return self.checkpoints.get(CLUSTER_WIDE)

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, uid: str) -> Seen | None:
        return self._seen.get(uid)

    def is_new(self, uid: str, resource_version: str) -> bool:
        """Whether this occurrence has not been published yet."""
        seen = self._seen.get(uid)
        return seen is None or newer(resource_version, seen.resource_version)

    def missed_count(self, uid: str, count: int | None) -> int:
        """How many repeats of a core/v1 event the producer provably never saw (count jumped)."""
        seen = self._seen.get(uid)
        if seen is None or seen.event_count is None or count is None:
            return 0
        return max(0, count - seen.event_count - 1)

    def published(
        self, uid: str, resource_version: str, count: int | None, *, now: float
    ) -> StateUpdate:
        self._seen[uid] = Seen(resource_version, count, now)
        value = {"rv": resource_version, "count": count, "seen": now}
        return StateUpdate(self._prefix + _UID_PREFIX + uid.encode(), orjson.dumps(value))

    def forget(self, uid: str) -> StateUpdate | None:
        if self._seen.pop(uid, None) is None:
            return None
        return StateUpdate(self._prefix + _UID_PREFIX + uid.encode(), None)

    def expire(self, *, now: float) -> list[StateUpdate]:
        """Forget every uid not seen for ``forget_after`` seconds."""
        stale = [uid for uid, seen in self._seen.items() if now - seen.seen_at > self.forget_after]
        return [update for uid in stale if (update := self.forget(uid)) is not None]

    def forget_all_but(self, alive: Iterable[str]) -> list[StateUpdate]:
        """After a relist: forget the uids the server no longer has (they expired meanwhile)."""
        keep = set(alive)
        gone = [uid for uid in self._seen if uid not in keep]
        return [update for uid in gone if (update := self.forget(uid)) is not None]

    def set_checkpoint(self, resource_version: str, scope: str = CLUSTER_WIDE) -> StateUpdate:
        self.checkpoints[scope] = resource_version
        return self.checkpoint_update(scope)

    def checkpoint_update(self, scope: str) -> StateUpdate:
        """The record of where the scope's watch resumes now (set before)."""
        key = self._prefix + _checkpoint_key(scope)
        return StateUpdate(key, orjson.dumps({"rv": self.checkpoints[scope]}))

    def clear_checkpoint(self, scope: str = CLUSTER_WIDE) -> None:
        """Forget where a watch resumes (its resourceVersion expired): it lists again."""
        self.checkpoints.pop(scope, None)

    def load(self, key: bytes, value: bytes | None) -> None:
        """Apply one record of the state topic, read back at start; another cluster's (or an
        older, unkeyed one) is only counted."""
        if not key.startswith(self._prefix):
            if cluster_of(key) is None:
                self.legacy_records += 1
            else:
                self.other_records += 1
            return
        self.own_records += 1
        key = key[len(self._prefix) :]
        try:
            scope = _checkpoint_scope(key)
            if scope is not None:
                if value is None:
                    self.checkpoints.pop(scope, None)
                else:
                    self.checkpoints[scope] = str(orjson.loads(value)["rv"])
            elif key.startswith(_UID_PREFIX):
                uid = key[len(_UID_PREFIX) :].decode()
                if value is None:
                    self._seen.pop(uid, None)
                else:
                    data = orjson.loads(value)
                    self._seen[uid] = Seen(str(data["rv"]), data["count"], float(data["seen"]))
            else:
                raise StateError(f"unknown key {key!r} in the producer state topic")
        except (ValueError, KeyError, TypeError) as err:
            raise StateError(f"unreadable producer state record {key!r}: {err}") from err


def _checkpoint_key(scope: str) -> bytes:
    return _NAMESPACE_CHECKPOINT_PREFIX + scope.encode() if scope else CHECKPOINT_KEY


def _checkpoint_scope(key: bytes) -> str | None:
    """The scope whose checkpoint this key holds; None if it holds none."""
    if key == CHECKPOINT_KEY:
        return CLUSTER_WIDE
    if key.startswith(_NAMESPACE_CHECKPOINT_PREFIX):
        return key[len(_NAMESPACE_CHECKPOINT_PREFIX) :].decode()
    return None
