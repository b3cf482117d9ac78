"""The configuration, written out for people: the reference table the README carries
(``kafkube config reference``) and a file to start from (``kafkube config example``), both
made from the models in ``kafkube.cli.configuration.loading``."""

from __future__ import annotations

import socket
import types
import typing
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from kafkube.cli.configuration.loading import config_model
from kafkube.core.settings import DEFAULT_TOPIC, ENV_NESTING, ENV_PREFIX, one_of
from kafkube.schemas.records import API_CORE_V1, API_EVENTS_V1


def _fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _fields(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", info


def _type_name(annotation: Any) -> str:  # noqa: ANN401 - any annotation
    """A field's type as a reader wants it: ``avro`` / ``jsonl``, int, path, secret, ..."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " / ".join(f"`{value}`" for value in arguments)
    if origin in {types.UnionType, typing.Union}:
        return " or ".join(_type_name(a) for a in arguments if a is not type(None))
    if origin is Annotated:
        return _type_name(arguments[0])
    if origin is dict:
        return "mapping"
    if origin is list:
        return f"list of {_type_name(arguments[0])}"
    names = {str: "text", int: "integer", float: "number", bool: "true / false", Path: "path",
             SecretStr: "secret", datetime: "ISO 8601 time"}  # fmt: skip
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        if info.default_factory is socket.gethostname:
            return "the host name"
        value = info.default_factory()  # type: ignore[call-arg]
        return f"`{value}`" if value not in ({}, []) else "empty"
    if info.default is None:
        return "unset"
    if info.default == "":
        return "empty"
    return f"`{info.default}`"


def reference_markdown() -> str:
    """The configuration reference, as the README carries it."""
    rows = [
        "| Field | Environment | Type | Default | What it does |",
        "|---|---|---|---|---|",
    ]
    for path, info in _fields(config_model(), ""):
        env = ENV_PREFIX + path.upper().replace(".", ENV_NESTING)
        table = one_of(info)
        kind = (
            " / ".join(f"`{choice}`" for choice in table.names() if choice)
            if table is not None
            else _type_name(info.annotation)
        )
        description = (info.description or "").replace("|", "or")
        rows.append(f"| `{path}` | `{env}` | {kind} | {_default(info)} | {description} |")
    return "\n".join(rows) + "\n"


def example_yaml() -> str:
    """A starting file: every section, the usual fields."""
    return _EXAMPLE


_EXAMPLE = f"""\
# kafkube configuration. Every field: README, "Configuration reference".
kafka:
  bootstrap_servers: kafka-0.kafka:9093
  topic: {DEFAULT_TOPIC}
  security:
    protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    username: kafkube
    password_file: /etc/kafkube/secrets/kafka-password
    ca_file: /etc/kafkube/tls/ca.crt
  properties:
    client.id: kafkube
producer:
  cluster: prod-eu-1
  api_version: {API_CORE_V1}  # or {API_EVENTS_V1}
  leader_election:
    enabled: true
    namespace: kafkube
sinks:
  file:
    enabled: false
  s3:
    bucket: k8s-events
    prefix: prod-eu-1
    rotation:
      max_age_seconds: 60
  gcs:
    bucket: k8s-events
    prefix: prod-eu-1
observability:
  listen: 0.0.0.0:9464
  log_format: json
"""
