"""Where a sink's bytes go. A destination stores bytes under a name and lists what it stored;
it knows nothing of Kafka or Avro. A new sink is a new destination module (with its
``open_destination(config)``), its model in ``kafkube.consumers.settings`` and its entry in
``SINK_TYPES``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from kafkube.consumers.formats import require_extra
from kafkube.consumers.settings import SinkConfig
from kafkube.core.errors import SinkError


class MissingObjectError(SinkError):
    """Nothing is stored under the name asked for."""

    retriable = False


def open_destination(config: SinkConfig) -> Destination:
    """The destination a sink's configuration describes. Its module, and the store's client
    library, are imported only now: a missing extra is refused naming it."""
    require_extra(config.client_module, config.extra, field=f"sinks.{config.sink_type}")
    opened: Destination = importlib.import_module(config.destination_module).open_destination(
        config
    )
    return opened


class Destination(Protocol):
    description: str  # for logs: a directory, s3://bucket/prefix, gs://bucket/prefix
    list_requests: int  # listing requests made so far (pages; a directory walk counts one)

    def check(self) -> None:
        """Refuse a destination that cannot work, naming the setting (ConfigError); a store
        that does not answer now raises a retriable SinkError (the runner waits it out)."""

    def ready(self) -> str | None:
        """None if the store answers now, else why not: a quick probe (a few seconds at
        most, no retries, nothing written) for the readiness endpoint."""

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        """Store ``data`` under ``name`` durably, replacing what is there; raise SinkError.

        ``metadata`` (topic, partition, offsets, record count, schema fingerprint) goes with
        the object where the store keeps metadata."""

    def names(self, under: str) -> Iterator[str]:
        """The names stored in this folder (a topic's), at any depth; every name for ""."""

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        """Each name of ``names(under)`` with when the store made it durable (its own clock,
        seconds since the epoch), from the same listing."""

    def names_from(self, prefix: str, start: str) -> Iterator[str]:
        """The names that begin with ``prefix`` (a folder, then how names begin), from
        ``start`` on, in order: a narrow listing where the store can (``chosen``)."""

    def get(self, name: str) -> bytes:
        """The bytes stored under ``name``; MissingObjectError if there are none."""


def chosen(names: Callable[[str], Iterable[str]], prefix: str, start: str) -> Iterator[str]:
    """``names_from`` of a store that lists a whole folder: the names of ``prefix``'s folder
    (``names`` of it), narrowed and sorted."""
    folder = prefix.rsplit("/", 1)[0]
    listed = names(folder)
    return iter(sorted(name for name in listed if name.startswith(prefix) and name >= start))


class KeepsOffsets(Protocol):
    """A destination that keeps the group's offsets in its own commits (a table): the runner
    starts each partition where it says (``SinkConfig.keeps_offsets``)."""

    conflicts: int  # its commits that met another instance's and were tried again

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset of each partition of ``topic`` it holds records up to."""

    def coming(self, topic: str) -> AbstractContextManager[None]:
        """A batch of ``topic`` is being made on a writer thread and put inside this: a
        commit that starts meanwhile waits for it, so that a tick's batches land together."""

    def rewind(self, topic: str, starts: dict[int, int]) -> object:
        """Move its offsets of ``topic``'s partitions to ``starts`` (a replay): the sink then
        rewrites each partition from there, in place of the rows it held."""
