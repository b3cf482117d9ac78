"""The ``kafkube`` command: its root and where each subcommand lives. A subcommand's module,
and the libraries it needs, load when it runs, so ``kafkube --help`` loads click alone.
Settings are read in the subcommands, once, and passed down; nothing below reads the
environment."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

# Each subcommand: its module, its name there, and its line in ``kafkube --help`` (the first
# sentence of its help; tests/test_cli_start.py keeps the two equal).
COMMANDS = {
    "stack": (
        "kafkube.cli.stack",
        "stack",
        "The local stack: Kafka, a Kubernetes API server, MinIO and a GCS emulator on 127.0.0.1.",
    ),
    "produce": (
        "kafkube.cli.streaming",
        "produce",
        "Watch Kubernetes events and publish each occurrence to Kafka exactly once.",
    ),
    "simulate": (
        "kafkube.cli.streaming",
        "simulate",
        "A synthetic cluster's events: rollouts, probes failing, back-offs, OOM kills, evictions.",
    ),
    "sink": (
        "kafkube.cli.streaming",
        "sink",
        "Consume the topic into durable storage, exactly once (one consumer group per sink type).",
    ),
    "config": (
        "kafkube.cli.configuring",
        "config_group",
        "Check the configuration, or print its reference or an example file.",
    ),
    "demo": (
        "kafkube.cli.demo",
        "demo",
        "The main job on this machine: a cluster's events into Kafka and out to every sink.",
    ),
    "status": (
        "kafkube.cli.operations",
        "status",
        "Where the producer and each sink group stand: checkpoint, offsets, lag, members.",
    ),
    "replay": (
        "kafkube.cli.operations",
        "replay",
        "Move a sink group's offsets; the sink then rewrites the same objects, never a copy.",
    ),
    "iceberg": (
        "kafkube.cli.tables",
        "iceberg",
        "The Iceberg sink's tables: compaction, snapshot expiry, orphan files.",
    ),
    "inspect": (
        "kafkube.cli.operations",
        "inspect",
        (
            "Print the records of a sink's output as JSON lines: a file or folder, or a "
            "store's <scheme>://bucket/prefix (s3://..., gs://...), or a table's "
            "iceberg://<topic> (through the catalog sinks.iceberg names; iceberg:// alone: "
            "every table of its namespace)."
        ),
    ),
}


class _Commands(click.Group):
    """The subcommands of ``COMMANDS``, each imported when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's interface
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        if cmd_name not in COMMANDS:
            return None
        module, name, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)  # noqa: S101 - the table names commands
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:  # noqa: ARG002
        """As click lists them, from the table: no subcommand is loaded for it."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=short).get_short_help_str(limit))
            for name, (_, _, short) in COMMANDS.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more detail to stderr.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="KAFKUBE_CONFIG",
    help="The YAML configuration (or KAFKUBE_CONFIG); flags and KAFKUBE_... variables win.",
)
@click.version_option(package_name="kafkube")
def cli(verbose: bool, config_file: Path | None) -> None:  # noqa: FBT001, ARG001 - read by commands
    """Stream every Kubernetes event into Kafka as Avro and fan it out to durable sinks."""
    from kafkube.core.logs import setup_logging  # noqa: PLC0415 - not for --help

    setup_logging("DEBUG" if verbose else "INFO", "text")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except Exception as err:
        from kafkube.core.errors import KafkubeError  # noqa: PLC0415 - loaded by then

        if not isinstance(err, KafkubeError):
            raise
        click.echo(f"kafkube: {err}", err=True)
        sys.exit(1)
