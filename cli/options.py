"""What several commands share: the configuration and the Kafka connection options, the
stack's folders, stopping on a signal. Settings are read from the configuration file, the
environment and the flags here, in the entry point only."""

from __future__ import annotations

import functools
import gc
import threading
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import click
from click.core import ParameterSource
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kafkube import launch
from kafkube.cli.configuration.loading import Config
from kafkube.cli.configuration.loading import load as load_config
from kafkube.core.login import check_kafka_login
from kafkube.core.logs import setup_logging
from kafkube.core.redaction import is_secret_name
from kafkube.core.settings import DEFAULT_TOPIC, Observability, one_of


class TableChoice(click.Choice[str]):
    """A choice among the names a table (``SINK_TYPES``, ``FORMATS``) holds when the command
    runs: an entry registered after import is a choice too."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(name for name in self._names() if name)

    @choices.setter
    def choices(self, _value: object) -> None:
        """Set by click's own __init__: the table is the list."""


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM or Ctrl-C sets: long-running commands drain and exit 0 on it
    (one that came while the command started is in it already: ``kafkube.launch``)."""
    return launch.claim()


def service_process(observability: Observability) -> threading.Event:
    """Set up a process that streams events until told to stop (producer, sinks).

    The cyclic garbage collector is made to run a hundredth as often: every event makes
    a dozen short-lived dicts, freed by reference counting, and the default thresholds
    collected after every 700 of them: 15 % of the producer's time went to scans that
    found nothing. Nothing on the per-event path makes reference cycles.
    """
    gc.set_threshold(70_000, 20, 100)
    verbose = click.get_current_context().find_root().params.get("verbose")
    setup_logging("DEBUG" if verbose else observability.log_level, observability.log_format)
    return stop_on_signals()


def _properties(values: tuple[str, ...]) -> dict[str, str]:
    properties = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", param_hint="--kafka")
        if is_secret_name(name):
            raise click.BadParameter(
                f"{name} looks like a secret, and a command line is visible to every user of "
                f"the machine: set kafka.properties.{name} in the configuration file (or "
                "KAFKUBE_KAFKA__PROPERTIES__... in the environment) instead",
                param_hint="--kafka",
            )
        properties[name] = setting
    return properties


# Which flag sets which field of the configuration (kafka_options' flags, on every command).
KAFKA_FLAGS = {
    "bootstrap_servers": "kafka.bootstrap_servers",
    "topic": "kafka.topic",
    "kafka_props": "kafka.properties",
    "schema_registry_url": "kafka.schema_registry.url",
}
_GIVEN = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT}


def configuration(flags: Mapping[str, str] = KAFKA_FLAGS) -> Config:
    """The running command's configuration: the file, the environment, then the flags given.

    ``flags`` maps a parameter of the command to the dotted field it sets; a flag left at
    its default sets nothing, so the file's value (or the model's default) stands.
    """
    ctx = click.get_current_context()
    overrides: dict[str, Any] = {}
    for name, path in flags.items():
        if name not in ctx.params or ctx.get_parameter_source(name) not in _GIVEN:
            continue
        value = ctx.params[name]
        if name == "kafka_props":
            value = _properties(value)
        elif isinstance(value, tuple):
            value = list(value)
        *parents, leaf = path.split(".")
        node = overrides
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return load_config(ctx.find_root().params.get("config_file"), overrides)


def kafka_connection() -> tuple[dict[str, str], str]:
    """librdkafka properties (brokers, security, pass-through) and the topic, for a command
    with ``kafka_options``; the login is checked first."""
    config = configuration()
    properties = config.kafka.client_properties()
    check_kafka_login(properties)
    return properties, config.kafka.topic


def model_options(
    model: type[BaseModel],
    path: str,
    *,
    names: Mapping[str, list[str]] | None = None,
    skip: frozenset[str] = frozenset(),
) -> tuple[list[click.Option], dict[str, str]]:
    """A flag for each field of ``model`` (a nested model's fields flattened), made from the
    field itself: its name (``names`` may give others), type, choices and help; a list is a
    repeatable flag. None has a default of its own: a flag not given leaves the file's value,
    or the model's default, standing. Also: which dotted field each flag's parameter sets,
    for ``configuration``. Fields in ``skip`` are the file's alone."""
    options: list[click.Option] = []
    fields: dict[str, str] = {}
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        annotation = _plain_annotation(info.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested, nested_fields = model_options(annotation, f"{path}.{name}")
            options += nested
            fields |= nested_fields
            continue
        repeated = typing.get_origin(annotation) is list
        element = _plain_annotation(typing.get_args(annotation)[0]) if repeated else annotation
        kind = _click_type(element, info)
        if kind is None:
            continue  # a switch of the file (enabled), not of a command line
        default = "" if info.is_required() else f" [default: {_shown(info)}]"
        flags = (names or {}).get(name) or [f"--{name.replace('_', '-')}"]
        options.append(
            click.Option(
                [*flags, name],
                type=kind,
                multiple=repeated,
                help=f"{info.description or ''} ({path}.{name}){default}",
            )
        )
        fields[name] = f"{path}.{name}"
    return options, fields


def _plain_annotation(annotation: Any) -> Any:  # noqa: ANN401 - any annotation
    """``X`` of ``X | None`` and of ``Annotated[X, ...]``."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _plain_annotation(arguments[0])
    if origin in {types.UnionType, typing.Union}:
        kept = [a for a in arguments if a is not type(None)]
        return _plain_annotation(kept[0]) if len(kept) == 1 else annotation
    return annotation


def _click_type(annotation: Any, info: FieldInfo) -> click.ParamType[Any] | None:  # noqa: ANN401
    table = one_of(info)
    if table is not None:
        return TableChoice(table.names)
    if typing.get_origin(annotation) is Literal:
        return click.Choice([str(value) for value in typing.get_args(annotation)])
    simple: dict[Any, click.ParamType[Any]] = {
        str: click.STRING, int: click.INT, float: click.FLOAT, Path: click.Path(path_type=Path),
        datetime: click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ"]),
    }  # fmt: skip
    return simple.get(annotation)


def _shown(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    return "none" if value in (None, "") else str(value)


def kafka_options(command: Callable[..., None]) -> Callable[..., None]:
    """--bootstrap-server (as Kafka's own tools spell it; --bootstrap-servers too), --topic,
    --schema-registry-url and --kafka KEY=VALUE (any librdkafka property)."""
    options = [
        click.option(
            "--bootstrap-server",
            "--bootstrap-servers",
            "bootstrap_servers",
            help="Kafka brokers; else kafka.bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS.",
        ),
        click.option("--topic", default=DEFAULT_TOPIC, show_default=True, help="Else kafka.topic."),
        click.option(
            "--schema-registry-url",
            help="A schema registry (Confluent's API); else kafka.schema_registry.url or "
            "SCHEMA_REGISTRY_URL.",
        ),
        click.option(
            "--kafka", "kafka_props", multiple=True, metavar="KEY=VALUE",
            help="librdkafka property, passed through (repeatable).",
        ),
    ]  # fmt: skip

    @functools.wraps(command)
    def read_through_configuration(*args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - click's
        for name in KAFKA_FLAGS:  # the command reads them with kafka_connection()
            kwargs.pop(name, None)
        command(*args, **kwargs)

    for option in reversed(options):
        read_through_configuration = option(read_through_configuration)
    return read_through_configuration
