"""``kafkube config``: check a configuration, print its reference or an example file."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from kafkube.cli.configuration.loading import Config
from kafkube.cli.configuration.loading import load as load_config
from kafkube.cli.configuration.reference import example_yaml, reference_markdown
from kafkube.cli.options import (
    TableChoice,
)
from kafkube.consumers.settings import SINK_TYPES


@click.group("config")
def config_group() -> None:
    """Check the configuration, or print its reference or an example file."""


@config_group.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--component",
    "components",
    multiple=True,
    type=TableChoice(lambda: ("producer", *SINK_TYPES)),
    help="Check that this component can start with it (repeatable); default: the producer "
    "if producer.cluster is set, and every enabled sink that names its place.",
)
def check(file: Path, components: tuple[str, ...]) -> None:
    """Validate FILE with the environment over it; print the result, secrets hidden."""
    config = load_config(file)
    chosen = components or _configured(config)
    for component in chosen:
        if component == "producer":
            config.producer_settings()
            continue
        config.sink_settings(component)
        config.sink(component).required_place()
    click.echo(yaml.safe_dump(config.redacted(), sort_keys=False), nl=False)
    click.echo(f"# {file}: valid; ready to start: {', '.join(chosen) or 'nothing configured'}")


def _configured(config: Config) -> list[str]:
    sinks = [kind for kind in SINK_TYPES if config.sink(kind).enabled and config.sink(kind).place()]
    return (["producer"] if config.producer.cluster else []) + sinks


@config_group.command()
def reference() -> None:
    """Every field, its environment variable, type and default (Markdown, as in the README)."""
    click.echo(reference_markdown(), nl=False)


@config_group.command()
def example() -> None:
    """A configuration file to start from."""
    click.echo(example_yaml(), nl=False)
