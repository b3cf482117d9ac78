"""Reading a sink's output back, through the same destinations that wrote it: a location as
people give it (a folder, a file, ``<scheme>://bucket/prefix``) opened as its destination."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from kafkube.consumers.destinations import Destination, open_destination
from kafkube.consumers.filesink import FileDestination
from kafkube.consumers.formats import format_of
from kafkube.consumers.settings import (
    EMBEDDED_CATALOG,
    FileSinkConfig,
    IcebergSinkConfig,
    store_config,
)
from kafkube.core.errors import ConfigError, SinkError


def is_output(name: str) -> bool:
    return format_of(name) is not None and not name.rsplit("/", 1)[-1].startswith(".")


def output_names(destination: Destination, path: str) -> list[str]:
    """The output objects at ``path``: that object, or every one below that folder, in order."""
    path = path.strip("/")
    if is_output(path):
        return [path]
    return sorted(name for name in destination.names(path) if is_output(name))


def records(name: str, data: bytes) -> Iterator[dict[str, Any]]:
    """The records of one output object, in the format its name says."""
    output = format_of(name)
    if output is None:
        raise SinkError(f"{name} is not a kafkube output")
    try:
        yield from output.read(data)
    except (ValueError, EOFError, OSError) as err:
        raise SinkError(f"{name} is not a readable kafkube output: {err}") from err


def read_location(destination: Destination, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, record) for every record of every output object at ``path``, in order."""
    for name in output_names(destination, path):
        for record in records(name, destination.get(name)):
            yield name, record


def open_location(location: str, endpoints: Mapping[str, str | None]) -> tuple[Destination, str]:
    """The destination that holds ``location`` and the path inside it; ``endpoints`` by
    scheme (``s3``, ``gs``) point a store's client at an emulator."""
    scheme, sep, rest = location.partition("://")
    bucket, _, path = rest.partition("/")
    store = store_config(scheme, bucket, endpoints.get(scheme)) if sep else None
    if store is not None:
        if not bucket:
            raise ConfigError("location", f"no bucket in {location!r}")
        return open_destination(store), path
    if sep:
        raise ConfigError("location", f"{scheme}:// is not a store kafkube writes to")
    local = Path(location).expanduser().absolute()
    if not local.exists():
        raise ConfigError("location", f"{local} does not exist")
    if local.is_file():
        return FileDestination(FileSinkConfig(dir=local.parent)), local.name
    if (local / EMBEDDED_CATALOG).is_file():  # an Iceberg sink's warehouse: its tables now
        return open_destination(IcebergSinkConfig(warehouse=str(local))), ""
    return FileDestination(FileSinkConfig(dir=local)), ""
