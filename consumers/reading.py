"""Reading a sink's output back, through the same destinations that wrote it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kafkube.consumers.destinations import Destination
from kafkube.consumers.formats import format_of
from kafkube.core.errors import SinkError


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
