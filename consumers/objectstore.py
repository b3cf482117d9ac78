"""What every object store's destination shares: its bucket, the prefix every object goes
below, and the names it shows (the prefix off). A store's module adds its client's calls."""

from __future__ import annotations

from collections.abc import Iterator

from kafkube.consumers.destinations import chosen
from kafkube.consumers.naming import object_prefix
from kafkube.consumers.settings import ObjectStoreSinkConfig


class ObjectStore:
    def __init__(self, config: ObjectStoreSinkConfig) -> None:
        self.bucket = config.required_place()
        self.prefix = object_prefix(config.prefix, field=f"sinks.{config.sink_type}.prefix")
        self.description = f"{config.scheme}://{self.bucket}/{self.prefix}"
        self.list_requests = 0  # listing requests made so far (pages)

    def key(self, name: str) -> str:
        """The store's key of a name: below the prefix."""
        return self.prefix + name

    def url(self, name: str) -> str:
        """A name as people see it in logs and errors: <scheme>://bucket/prefix/name."""
        return self.description + name

    def folder(self, under: str) -> str:
        """The key prefix that lists a folder's objects (every one, for "")."""
        return f"{self.prefix}{under}/" if under else self.prefix

    def name_of(self, key: str) -> str:
        return key[len(self.prefix) :]

    def names(self, under: str) -> Iterator[str]:
        return (name for name, _ in self.stored(under))

    def names_from(self, prefix: str, start: str) -> Iterator[str]:
        return chosen(self.names, prefix, start)

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        raise NotImplementedError  # each store lists with its own client
