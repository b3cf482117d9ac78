"""One configuration for every command: a YAML file, environment overrides, then flags.

Precedence, highest first: command-line flags, ``KAFKUBE_...`` variables (nested
fields joined by ``__``: ``KAFKUBE_KAFKA__SECURITY__PASSWORD``), the YAML file
(``--config`` or ``KAFKUBE_CONFIG``), the variables other tools share
(``KAFKA_BOOTSTRAP_SERVERS``, ``KUBECONFIG``, ``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``,
``GOOGLE_CLOUD_PROJECT``, ``STORAGE_EMULATOR_HOST``: a shell's leftovers never beat
the file), the defaults. The AWS and Google clients also read their own credentials
variables (``AWS_ACCESS_KEY_ID``, ..., ``GOOGLE_APPLICATION_CREDENTIALS``).

Everything is validated before anything starts; an error names the field and
what it accepts. ``kafkube.cli.configuration.reference`` writes these models out for people (the
README's configuration reference, an example file).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from kafkube.consumers.settings import (
    SINK_TYPES,
    SinkConfig,
    SinkSettings,
)
from kafkube.core.errors import ConfigError
from kafkube.core.redaction import masked
from kafkube.core.settings import (
    ENV_NESTING,
    ENV_PREFIX,
    KafkaConfig,
    Observability,
    Section,
)
from kafkube.producer.settings import ProducerConfig, ProducerSettings


def _sinks_model() -> type[Section]:
    """The ``sinks`` section: one field per sink type of ``SINK_TYPES``."""
    fields: dict[str, Any] = {
        name: (model, Field(default_factory=model)) for name, model in SINK_TYPES.items()
    }
    return create_model(
        "Sinks",
        __base__=Section,
        __doc__="The sinks; each runs as its own process (``kafkube sink <type>``) and group.",
        **fields,
    )


# The sink types known at import; each load makes the section afresh (config_model), so a
# type registered later is read too.
if TYPE_CHECKING:
    Sinks = Section
else:
    Sinks = _sinks_model()


class Config(BaseSettings):
    """kafkube's whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTING,
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    producer: ProducerConfig = Field(default_factory=ProducerConfig)
    sinks: Sinks = Field(default_factory=Sinks)
    observability: Observability = Field(default_factory=Observability)

    def producer_settings(self) -> ProducerSettings:
        producer = self.producer
        if not producer.cluster:
            raise ConfigError("producer.cluster", "is required: the cluster's name (or --cluster)")
        return ProducerSettings(
            producer,
            kafka=self.kafka.client_properties(),
            topic=self.kafka.topic,
            registry=self.kafka.schema_registry.client_properties(),
            subject_strategy=self.kafka.schema_registry.subject_strategy,
        )

    def sink(self, sink_type: str) -> SinkConfig:
        """The section of one sink type (``SINK_TYPES``)."""
        if sink_type not in SINK_TYPES:
            raise ConfigError("sinks", f"no sink type {sink_type!r}: {', '.join(SINK_TYPES)}")
        return cast("SinkConfig", getattr(self.sinks, sink_type))

    def sink_settings(self, sink_type: str) -> SinkSettings:
        """What a sink of this type runs with."""
        return self.sink(sink_type).settings(
            self.kafka.client_properties(),
            self.kafka.topic,
            registry=self.kafka.schema_registry.client_properties(),
        )

    def redacted(self) -> dict[str, Any]:
        """The configuration as JSON-able data, every secret shown as ``**********``: the
        secret fields, and each pass-through Kafka property whose name says it is one."""
        shown = self.model_dump(mode="json", exclude_none=True)
        kafka = shown.get("kafka", {})
        if "properties" in kafka:
            kafka["properties"] = masked(kafka["properties"])
        return shown


def config_model() -> type[Config]:
    """The configuration's model with a ``sinks`` field for each type ``SINK_TYPES`` holds now
    (a type registered after import included)."""
    sinks = _sinks_model()
    return create_model("Config", __base__=Config, sinks=(sinks, Field(default_factory=sinks)))


# Variables other tools share, and the field each one fills where the file leaves it unset;
# each sink type names its own (``SinkConfig.standard_variables``).
_SHARED_VARIABLES = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka.bootstrap_servers",
    "SCHEMA_REGISTRY_URL": "kafka.schema_registry.url",
    "KUBECONFIG": "producer.kubeconfig",
}


def standard_variables() -> list[tuple[str, str]]:
    """Every variable other tools share that kafkube reads, and each field it fills (one
    variable may fill a field of several sinks: the S3 endpoint of s3 and of iceberg)."""
    return list(_SHARED_VARIABLES.items()) + [
        (variable, f"sinks.{sink_type}.{field}")
        for sink_type, model in SINK_TYPES.items()
        for variable, field in model.standard_variables.items()
    ]


class _StandardEnvironment(PydanticBaseSettingsSource):
    """The variables other tools share, below the file (``standard_variables``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002 - the interface
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for variable, path in standard_variables():
            value = os.environ.get(variable)
            if not value:
                continue
            *parents, leaf = path.split(".")
            node = found
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        return found


def load(path: Path | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """The configuration: ``overrides`` (flags) over the environment over the file."""
    if path is not None:
        _read_yaml(path)  # its own errors first: a missing file, YAML that does not parse

    model = config_model()

    class _Loaded(model):  # type: ignore[valid-type,misc]  # made from the table just now
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files
            file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - nor secrets dirs
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = [init_settings, env_settings]
            if path is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            return (*sources, _StandardEnvironment(settings_cls))

    try:
        return _Loaded(**dict(overrides or {}))
    except ValidationError as err:
        raise ConfigError(_where(path), _explain(err, model)) from None


def _where(path: Path | None) -> str:
    return str(path) if path is not None else "flags and environment"


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            str(path), f"cannot read the configuration file: {err.strerror}"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(str(path), "expected a mapping of sections (kafka:, producer:, ...)")
    return data


def _explain(err: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem: the dotted field, what is wrong, what it accepts."""
    lines = []
    for problem in err.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown field" + _did_you_mean(problem["loc"], model)
        lines.append(f"\n  {location}: {message}")
    return "invalid configuration:" + "".join(lines)


def _did_you_mean(location: tuple[int | str, ...], model: type[BaseModel]) -> str:
    for part in location[:-1]:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(location[-1]), model.model_fields, n=1)
    known = ", ".join(model.model_fields)
    return f" (did you mean {close[0]}?)" if close else f" (known here: {known})"
