"""Operating kafkube: ``status``, ``replay`` and ``inspect``."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import click
import yaml

from kafkube.cli.options import TableChoice, configuration, kafka_connection, kafka_options
from kafkube.consumers.destinations import KeepsOffsets, open_destination
from kafkube.consumers.formats import json_line
from kafkube.consumers.positions import GroupPosition, Offsets
from kafkube.consumers.reading import open_location, read_location
from kafkube.consumers.replaying import Move, ResetTarget, plan
from kafkube.consumers.settings import SINK_TYPES
from kafkube.producer.service import ProducerStatus, producer_status

# --- status -------------------------------------------------------------------------------------


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    return f"{moment:%Y-%m-%dT%H:%M:%SZ} ({seconds} s ago)"


def print_groups(positions: list[GroupPosition]) -> None:
    click.echo(
        f"{'GROUP':30} {'STATE':12} {'MEMBERS':>7} {'PART':>4} "
        f"{'COMMITTED':>10} {'END':>10} {'LAG':>8}"
    )
    for group in positions:
        for p in group.partitions:
            committed = "-" if p.committed is None else str(p.committed)
            click.echo(
                f"{group.group:30} {group.state:12} {len(group.members):>7} {p.partition:>4} "
                f"{committed:>10} {p.end:>10} {p.lag:>8}"
            )
        for member in group.members:
            click.echo(f"{'':30} member {member}")


def _print_producer(topic: str, status: ProducerStatus | None) -> None:
    if status is None:
        click.echo(f"producer: no producer has published to {topic} yet")
        return
    click.echo(f"producer: last publish {_ago(status.last_publish)}")
    for cluster, state in status.clusters.items():
        where = [f"resourceVersion {state.checkpoint}"] if state.checkpoint else []
        where += [f"{ns} at {rv}" for ns, rv in sorted(state.namespaces.items())]
        click.echo(
            f"  cluster {cluster}: checkpoint {', '.join(where) or '-'}, "
            f"{state.uids_remembered} events remembered"
        )
    if status.legacy_records:
        click.echo(f"  {status.legacy_records} state records from before clusters were named")


@click.command()
@kafka_options
@click.option(
    "--group", "groups", multiple=True, help="Only these groups; default every group on the topic."
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
    help="As kubectl's -o: a table, or the whole document as JSON or YAML.",
)
@click.option("--json", "as_json", is_flag=True, help="The same as -o json.")
def status(
    groups: tuple[str, ...],
    output: str,
    as_json: bool,  # noqa: FBT001 - click passes flags positionally
) -> None:
    """Where the producer and each sink group stand: checkpoint, offsets, lag, members."""
    kafka, topic = kafka_connection()
    producer = producer_status(kafka, topic)
    with Offsets(kafka, topic) as offsets:
        bounds = offsets.log_bounds()
        names = list(groups) or offsets.groups()
        positions = [offsets.position(name, bounds=bounds) for name in names]
    output = "json" if as_json else output
    if output != "text":
        document = {
            "topic": topic,
            "producer": producer.to_dict() if producer else None,
            "log_end": sum(bounds[1].values()),
            "groups": [p.to_dict() for p in positions],
        }
        if output == "json":
            click.echo(json.dumps(document, indent=2))
        else:
            click.echo(yaml.safe_dump(document, sort_keys=False), nl=False)
        return
    click.echo(f"topic {topic}: {len(bounds[1])} partitions, log end {sum(bounds[1].values())}")
    _print_producer(topic, producer)
    click.echo()
    if positions:
        print_groups(positions)
    else:
        click.echo("no consumer group has committed offsets on this topic yet")


# --- replay -------------------------------------------------------------------------------------


def _target(  # noqa: PLR0913 - one parameter per kind of reset
    *,
    to_earliest: bool,
    to_latest: bool,
    to_datetime: str | None,
    to_offset: int | None,
    shift_by: int | None,
    partition: int | None,
) -> ResetTarget:
    chosen = [
        name
        for name, given in (
            ("--to-earliest", to_earliest),
            ("--to-latest", to_latest),
            ("--to-datetime", to_datetime is not None),
            ("--to-offset", to_offset is not None),
            ("--shift-by", shift_by is not None),
        )
        if given
    ]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset, "
            f"--shift-by (got {', '.join(chosen) or 'none'})"
        )
    if partition is not None and to_offset is None:
        raise click.UsageError("--partition goes with --to-offset")
    if to_datetime is not None:
        try:
            moment = datetime.fromisoformat(to_datetime)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--to-datetime") from err
        return ResetTarget(
            "datetime", moment=moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        )
    if to_offset is not None:
        return ResetTarget("offset", offset=to_offset, partition=partition)
    if shift_by is not None:
        return ResetTarget("shift", offset=shift_by)
    return ResetTarget("earliest" if to_earliest else "latest")


def _print_moves(group: str, moves: list[Move], lags: dict[int, int]) -> None:
    click.echo(f"group {group}")
    click.echo(f"{'PARTITION':>9} {'BEFORE':>10} {'AFTER':>10} {'END':>10} {'LAG AFTER':>10}")
    for move in moves:
        before = "-" if move.before is None else str(move.before)
        click.echo(
            f"{move.partition:>9} {before:>10} {move.after:>10} {move.end:>10} "
            f"{lags[move.partition]:>10}"
        )


@click.command()
@click.option(
    "--sink", "sink_type", type=TableChoice(lambda: SINK_TYPES), help="Whose group to move."
)
@click.option("--group", default="", help="The group, if not the sink type's default.")
@kafka_options
@click.option("--to-earliest", is_flag=True, help="Rewrite everything the topic still holds.")
@click.option("--to-latest", is_flag=True, help="Skip to the end: write only what comes next.")
@click.option(
    "--to-datetime",
    metavar="ISO8601",
    help="From the first record at or after this time (UTC unless the time has a zone).",
)
@click.option("--to-offset", type=int, help="From this offset (every partition, or --partition).")
@click.option("--partition", type=int, help="With --to-offset: only this partition.")
@click.option("--shift-by", type=int, help="Move each partition by N (negative: back).")
@click.option(
    "--dry-run/--execute", default=True, show_default=True,
    help="Show the plan only (the default), or apply it.",
)  # fmt: skip
def replay(  # noqa: PLR0913, PLR0917 - click passes one parameter per option
    sink_type: str | None,
    group: str,
    to_earliest: bool,  # noqa: FBT001
    to_latest: bool,  # noqa: FBT001
    to_datetime: str | None,
    to_offset: int | None,
    partition: int | None,
    shift_by: int | None,
    dry_run: bool,  # noqa: FBT001
) -> None:
    """Move a sink group's offsets; the sink then rewrites the same objects, never a copy.

    The group must have no live member (stop the sink first), as with Kafka's own
    kafka-consumer-groups --reset-offsets, which works the same way on these groups.
    A table's sink (iceberg) starts where its table's commits say: those are moved too,
    in one commit that changes no row, and the sink rewrites the range in place, each
    batch's commit taking out the rows it stands for (never a row twice, nor none).
    """
    if not group and sink_type is None:
        raise click.UsageError(f"name the sink (--sink {'|'.join(SINK_TYPES)}) or the --group")
    target = _target(
        to_earliest=to_earliest,
        to_latest=to_latest,
        to_datetime=to_datetime,
        to_offset=to_offset,
        shift_by=shift_by,
        partition=partition,
    )
    sink_config = None if sink_type is None else configuration().sink(sink_type)
    if sink_config is not None and group:
        sink_config = sink_config.model_copy(update={"group": group})
    group = group or (sink_config.group_id if sink_config is not None else "")
    table = sink_config if sink_config is not None and sink_config.keeps_offsets else None
    kafka, topic = kafka_connection()
    with Offsets(kafka, topic) as offsets:
        offsets.check_idle(group)
        partitions = offsets.position(group).partitions
        destination = None
        if table is not None:  # the table's offsets are where the sink starts
            destination = cast("KeepsOffsets", open_destination(table))
            said = destination.offsets(topic)
            partitions = [replace(p, committed=said.get(p.partition)) for p in partitions]
        at_time = offsets.at_time(target.moment) if target.moment is not None else None
        moves = plan(partitions, target, at_time=at_time)
        records_end = {p.partition: p.records_end for p in partitions}
        lags = {m.partition: max(0, records_end[m.partition] - m.after) for m in moves}
        _print_moves(group, moves, lags)
        if dry_run:
            click.echo("dry run: nothing changed (add --execute to apply)")
            return
        if destination is not None:
            destination.rewind(topic, {m.partition: m.after for m in moves if m.changes})
        offsets.move(group, moves)
    into = "in place in the table" if table is not None else "into the same objects"
    click.echo(
        f"moved {sum(m.changes for m in moves)} partition(s); start the sink to rewrite "
        f"{sum(lags.values())} record(s) {into}"
    )


# --- inspect ------------------------------------------------------------------------------------


class _Inspect(click.Command):
    """``inspect``'s flags, and one more for the endpoint of each store of ``SINK_TYPES`` (an
    emulator's), with the variable other tools read it from: made when the command runs."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        endpoints: list[click.Parameter] = [
            click.Option(
                [model.endpoint_flag, f"{model.scheme}_endpoint"],
                envvar=next(
                    (v for v, f in model.standard_variables.items() if f == model.endpoint_field),
                    None,
                ),
                help=f"The endpoint of {model.scheme}:// locations (an emulator's).",
            )
            for model in SINK_TYPES.values()
            if model.scheme and model.endpoint_flag
        ]
        return [*self.params, *endpoints, *super().get_params(ctx)[len(self.params) :]]


@click.command(cls=_Inspect)
@click.argument("location")
@click.option("--count", is_flag=True, help="Only count: records per object and in all.")
@click.option("--limit", type=int, help="Stop after this many records.")
def inspect(
    location: str,
    count: bool,  # noqa: FBT001
    limit: int | None,
    **endpoints: str | None,
) -> None:
    """Print the records of a sink's output as JSON lines: a file or folder, or a store's
    <scheme>://bucket/prefix (s3://..., gs://...), or a table's iceberg://<topic> (through
    the catalog sinks.iceberg names; iceberg:// alone: every table of its namespace).

    A folder or prefix reads every output object below it, in name order (topic,
    hour, partition, offset).
    """
    by_scheme = {name.removesuffix("_endpoint"): url for name, url in endpoints.items()}
    scheme, sep, rest = location.partition("://")
    if sep and scheme in SINK_TYPES and SINK_TYPES[scheme].keeps_offsets:
        # A table through the sink's own catalog, as the configuration says: <type>://<topic>
        destination, path = open_destination(configuration().sink(scheme)), rest
    else:
        destination, path = open_location(location, by_scheme)
    per_object: dict[str, int] = {}
    try:
        for seen, (name, record) in enumerate(read_location(destination, path)):
            if limit is not None and seen >= limit:
                break
            per_object[name] = per_object.get(name, 0) + 1
            if not count:
                click.echo(json_line(record))
    except BrokenPipeError:  # `| head` closed the pipe: not an error
        sys.stderr.close()
        return
    if count:
        for name, records_in in per_object.items():
            click.echo(f"{records_in:>10}  {name}")
        click.echo(f"{sum(per_object.values()):>10}  records in {len(per_object)} object(s)")
