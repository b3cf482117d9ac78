"""``kafkube iceberg``: the Iceberg sink's tables kept in shape."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import click

from kafkube.cli.options import configuration, model_options
from kafkube.consumers.destinations import open_destination
from kafkube.consumers.settings import IcebergSinkConfig
from kafkube.core.errors import KafkubeError

if TYPE_CHECKING:
    from kafkube.consumers.icebergsink import IcebergDestination

# The fields that find the tables: the rest of sinks.iceberg is the sink's alone.
_WHERE = frozenset({"warehouse", "catalog", "catalog_uri", "catalog_name", "namespace"})
_OPTIONS, _FIELDS = model_options(
    IcebergSinkConfig,
    "sinks.iceberg",
    skip=frozenset(IcebergSinkConfig.model_fields) - _WHERE,
)


@click.group()
def iceberg() -> None:
    """The Iceberg sink's tables: compaction, snapshot expiry, orphan files."""


@iceberg.command()
@click.option(
    "--small-mb",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="A data file smaller than this is small.",
)
@click.option(
    "--min-files",
    type=click.IntRange(min=2),
    default=4,
    show_default=True,
    help="Compact a partition's small files once it has this many.",
)
@click.option(
    "--expire-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="Expire snapshots older than this (never the ones the sink starts from).",
)
@click.option(
    "--orphans-hours",
    type=click.FloatRange(min=1),
    default=24.0,
    show_default=True,
    help="Remove data files no snapshot holds once they are this old.",
)
@click.option(
    "--dry-run/--execute", default=True, show_default=True,
    help="Show what would be done only (the default), or do it.",
)  # fmt: skip
def maintain(
    small_mb: int,
    min_files: int,
    expire_days: float,
    orphans_hours: float,
    dry_run: bool,  # noqa: FBT001
    **_where: Any,  # noqa: ANN401 - read through configuration()
) -> None:
    """Compact each partition's small data files into one, expire old snapshots and remove
    data files no snapshot holds, in every table of the sink's namespace.

    It may run beside the sink: its commits carry the sink's offsets, and the snapshots
    the sink starts from are kept.
    """
    from kafkube.consumers.icebergmaintenance import Policy  # noqa: PLC0415 - its extra
    from kafkube.consumers.icebergmaintenance import maintain as maintaining  # noqa: PLC0415

    config = configuration(_FIELDS).sink("iceberg")
    policy = Policy(
        small_bytes=small_mb << 20,
        min_files=min_files,
        expire_after=timedelta(days=expire_days),
        orphans_after=timedelta(hours=orphans_hours),
    )
    destination = cast("IcebergDestination", open_destination(config))
    try:
        reports = maintaining(destination, policy, execute=not dry_run)
    except (KafkubeError, OSError) as err:
        raise click.ClickException(f"maintaining {destination.description}: {err}") from err
    for report in reports:
        for line in report.lines():
            click.echo(line)
    if not reports:
        click.echo(f"no table in {destination.description}")
    if dry_run:
        click.echo("dry run: nothing changed (add --execute to do it)")


maintain.params[:0] = _OPTIONS
