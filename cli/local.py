"""Every sink type of ``SINK_TYPES`` pointed at the local stack: a folder for a sink that
writes files, a bucket in the stack's emulator for an object store. The demo and the
benchmark run and read back whatever the table holds, so a new sink type joins both."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stores import ensure_bucket
from kafkube.consumers.settings import SINK_TYPES, SinkConfig
from kafkube.core.settings import ENV_NESTING, ENV_PREFIX


def local_sinks(
    endpoints: Endpoints,
    *,
    bucket: str,
    folder: Path,
    prefix: str = "",
    formats: Mapping[str, str] | None = None,
) -> dict[str, SinkConfig]:
    """Each sink type's section for the stack: files below ``folder`` (and ``prefix``), an
    object store's objects in ``bucket`` below ``prefix`` (the bucket made if missing), each
    in its format of ``formats`` (else the default)."""
    sinks: dict[str, SinkConfig] = {}
    for sink_type, model in SINK_TYPES.items():
        values: dict[str, object]
        if model.scheme is None:
            values = {model.place_field: folder / prefix if prefix else folder}
        else:
            ensure_bucket(endpoints, model.scheme, bucket)
            values = {model.place_field: bucket, "prefix": prefix}
            if model.endpoint_field is not None:
                values[model.endpoint_field] = endpoints.store(model.scheme)
        if formats and sink_type in formats:
            values["format"] = formats[sink_type]
        sinks[sink_type] = model.model_validate(values)
    return sinks


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
