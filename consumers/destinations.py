"""Where a sink's bytes go. A destination stores bytes under a name and lists what it stored;
it knows nothing of Kafka or Avro. A new sink is a new destination."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Protocol

from kafkube.schemas.errors import ConfigError, SinkError

# The object stores' client libraries are extras: pip install 'kafkube[s3]', 'kafkube[gcs]'.
_CLIENTS = {"s3": "boto3", "gcs": "google.cloud.storage"}


def require_client(kind: str) -> None:
    """Refuse a sink whose store's client library is not installed, saying which extra to
    install (the destination modules import it at their top)."""
    module = _CLIENTS.get(kind)
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(
            f"sinks.{kind}", f"needs {module}, not installed: pip install 'kafkube[{kind}]'"
        ) from err


class MissingObjectError(SinkError):
    """Nothing is stored under the name asked for."""

    retriable = False


class Destination(Protocol):
    description: str  # for logs: a directory, s3://bucket/prefix, gs://bucket/prefix
    list_requests: int  # listing requests made so far (pages; a directory walk counts one)

    def check(self) -> None:
        """Refuse a destination that cannot work, naming the setting (ConfigError)."""

    def ready(self) -> str | None:
        """None if the store answers now, else why not: a quick probe (a few seconds at
        most, no retries, nothing written) for the readiness endpoint."""

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        """Store ``data`` under ``name`` durably, replacing what is there; raise SinkError.

        ``metadata`` (topic, partition, offsets, record count, schema fingerprint) goes with
        the object where the store keeps metadata."""

    def names(self, under: str) -> Iterator[str]:
        """The names stored in this folder (a topic's), at any depth; every name for ""."""

    def get(self, name: str) -> bytes:
        """The bytes stored under ``name``; MissingObjectError if there are none."""
