"""Reading a sink's output back, through the same destinations that wrote it."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from typing import Any

import fastavro

from kafkube.consumers.destinations import Destination
from kafkube.schemas.errors import SinkError

OUTPUT_SUFFIXES = (".avro", ".jsonl.gz")


def is_output(name: str) -> bool:
    return name.endswith(OUTPUT_SUFFIXES) and not name.rsplit("/", 1)[-1].startswith(".")


def output_names(destination: Destination, path: str) -> list[str]:
    """The output objects at ``path``: that object, or every one below that folder, in order."""
    path = path.strip("/")
    if is_output(path):
        return [path]
    return sorted(name for name in destination.names(path) if is_output(name))


def records(name: str, data: bytes) -> Iterator[dict[str, Any]]:
    """The records of one output object, Avro container or gzip JSON Lines."""
    try:
        if name.endswith(".avro"):
            yield from fastavro.reader(io.BytesIO(data))  # type: ignore[misc]
        else:
            for line in gzip.decompress(data).decode().splitlines():
                yield json.loads(line)
    except (ValueError, EOFError, OSError) as err:
        raise SinkError(f"{name} is not a readable kafkube output: {err}") from err
