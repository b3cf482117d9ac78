"""Every sink type of ``SINK_TYPES`` pointed at the local stack: a folder for a sink that
writes files, a bucket for an object store (in the stack's emulator for its scheme, when the
store has an endpoint to point at one). The demo and the benchmark run and read back
whatever the table holds, so a new sink type joins both."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from kafkube.consumers.settings import SINK_TYPES, SinkConfig
from kafkube.core.settings import ENV_NESTING, ENV_PREFIX


class Stores(Protocol):
    """The stack's emulated stores, by the scheme of their locations (``compose.stores``)."""

    def endpoint(self, scheme: str) -> str:
        """The emulator's URL; KeyError naming the schemes served if none serves this one."""

    def make_bucket(self, scheme: str, bucket: str) -> None:
        """Create the bucket unless it exists."""


def local_sink(
    stores: Stores, sink_type: str, *, bucket: str, folder: Path, prefix: str = "", **fields: object
) -> SinkConfig:
    """One sink type's section for the stack: files below ``folder`` (and ``prefix``), a
    table's warehouse beside it (``<folder>-<type>``), or an object store's objects in
    ``bucket`` below ``prefix`` (the bucket made if missing); ``fields`` (a format) over
    that."""
    model = SINK_TYPES[sink_type]
    values: dict[str, object]
    if model.scheme is None:
        # A table's warehouse (its catalog, metadata and data files) goes beside the files.
        place = folder.with_name(f"{folder.name}-{sink_type}") if model.keeps_offsets else folder
        values = {model.place_field: str(place / prefix if prefix else place)}
    else:
        values = {model.place_field: bucket, "prefix": prefix}
        if model.endpoint_field is not None:  # a store the stack emulates
            values[model.endpoint_field] = stores.endpoint(model.scheme)
            stores.make_bucket(model.scheme, bucket)
    return model.model_validate(values | fields)


def local_sinks(
    stores: Stores,
    *,
    bucket: str,
    folder: Path,
    prefix: str = "",
    formats: Mapping[str, str] | None = None,
) -> dict[str, SinkConfig]:
    """Every sink type's section for the stack (``local_sink``), each in its format of
    ``formats`` (else the default)."""
    return {
        sink_type: local_sink(
            stores,
            sink_type,
            bucket=bucket,
            folder=folder,
            prefix=prefix,
            **({"format": formats[sink_type]} if formats and sink_type in formats else {}),
        )
        for sink_type in SINK_TYPES
    }


def location(config: SinkConfig) -> str:
    """Where a sink writes, as ``kafkube inspect`` takes it."""
    place = config.required_place()
    if config.scheme is None:
        return place
    prefix = getattr(config, "prefix", "")
    return f"{config.scheme}://{place}/{prefix}"


def sink_environment(config: SinkConfig) -> dict[str, str]:
    """The section as the ``KAFKUBE_SINKS__<TYPE>__<FIELD>`` variables a ``kafkube sink``
    process reads: the fields it sets, nothing else."""
    section = f"{ENV_PREFIX}SINKS{ENV_NESTING}{config.sink_type.upper()}{ENV_NESTING}"
    return {
        f"{section}{field.upper()}": str(getattr(config, field))
        for field in sorted(config.model_fields_set)
    }
