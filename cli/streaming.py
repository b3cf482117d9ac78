"""``kafkube produce``, ``kafkube simulate`` and ``kafkube sink <type>``: the commands that
stream events. Settings are read here, once, and passed down."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from kafkube.cli.configuration.loading import Config
from kafkube.cli.options import (
    KAFKA_FLAGS,
    configuration,
    kafka_options,
    model_options,
    service_process,
    stop_on_signals,
)
from kafkube.consumers.settings import SINK_TYPES, SinkConfig
from kafkube.producer.settings import ProducerConfig
from kafkube.producer.simulating import (
    SIMULATED_RATE,
    record_watch_stream,
    simulate_into_cluster,
)
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.producer.watching import open_api_client


@click.command()
@click.option(
    "--source",
    type=click.Choice(["kube", "file"]),
    default="kube",
    show_default=True,
    help="The API server, or a recorded watch stream (--file).",
)
@click.option(
    "--file",
    "recording",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="With --source file: a `kubectl get events --watch -o json` recording.",
)
@click.option(
    "-A",
    "--all-namespaces",
    is_flag=True,
    help="Watch every namespace, whatever the configuration's list (as kubectl's -A).",
)
@kafka_options
def produce(source: str, recording: Path | None, all_namespaces: bool, **_flags: Any) -> None:  # noqa: ANN401, FBT001 - read through configuration()
    """Watch Kubernetes events and publish each occurrence to Kafka exactly once."""
    if (source == "file") != (recording is not None):
        raise click.UsageError("--source file goes with --file PATH, and --file with --source file")
    ctx = click.get_current_context()
    params = ctx.params
    if all_namespaces:
        if params.get("namespaces"):
            raise click.UsageError("-A (every namespace) and -n/--namespace go apart")
        params["namespaces"] = ()  # an empty list: every namespace, over the file's
        ctx.set_parameter_source("namespaces", click.core.ParameterSource.COMMANDLINE)
    since = params.get("since")
    if isinstance(since, datetime) and since.tzinfo is None:  # the ...Z form parses naive
        params["since"] = since.replace(tzinfo=UTC)
    # The service's modules when it runs (a sink's are not the producer's): a quicker start.
    from kafkube.producer.service import serve_producer  # noqa: PLC0415

    config = configuration({**KAFKA_FLAGS, **_PRODUCER_FIELDS})
    election = config.producer.leader_election
    lease = election if election.enabled else None
    kubeconfig = config.producer.kubeconfig
    stats = serve_producer(
        config.producer_settings(),
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        recording=recording,
        lease=lease,
        listen=config.observability.address(),
        stop=service_process(config.observability),
    )
    click.echo(json.dumps({"stopped": asdict(stats)}), err=True)


# produce's flags, made from the configuration's producer section; leader election is the
# file's (and the chart's) alone.
_PRODUCER_OPTIONS, _PRODUCER_FIELDS = model_options(
    ProducerConfig,
    "producer",
    names={"api_version": ["--api"], "namespaces": ["-n", "--namespace"]},
    skip=frozenset({"leader_election", "enrich"}),
)
produce.params[:0] = _PRODUCER_OPTIONS


@click.command()
@click.option("--kubeconfig", envvar="KUBECONFIG", help="The API server to write events into.")
@click.option(
    "--record",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a watch stream to this file instead of into an API server.",
)
@click.option(
    "--seed",
    type=int,
    default=lambda: time.time_ns() % 1_000_000,
    show_default="a new one each run",
    help="The same seed gives the same events (names included: a rerun's creates conflict).",
)
@click.option("--namespace", "namespaces", multiple=True, help="Write only into these namespaces.")
@click.option(
    "--rate", type=float, default=SIMULATED_RATE, show_default=True, help="Events per second."
)
@click.option("--count", type=int, help="Stop after this many creates and repeats.")
def simulate(  # noqa: PLR0913, PLR0917 - click passes one parameter per option
    kubeconfig: str | None,
    record: Path | None,
    seed: int,
    namespaces: tuple[str, ...],
    rate: float,
    count: int | None,
) -> None:
    """A synthetic cluster's events: rollouts, probes failing, back-offs, OOM kills, evictions."""
    cluster = (
        SyntheticCluster(seed, namespaces=namespaces) if namespaces else SyntheticCluster(seed)
    )
    operations = cluster.operations()
    if record is not None:
        if count is None:
            raise click.UsageError("--record needs --count")
        with record.open("w", encoding="utf-8") as out:
            written = record_watch_stream(operations, out, limit=count, seed=seed)
        click.echo(f"recorded {written} watch events to {record}")
        return
    stop = stop_on_signals()
    with open_api_client(kubeconfig) as api_client:
        stats = simulate_into_cluster(api_client, operations, rate=rate, limit=count, stop=stop)
    click.echo(json.dumps(asdict(stats)))


def _run_sink(config: Config, sink_type: str) -> None:
    from kafkube.consumers.destinations import open_destination  # noqa: PLC0415 - as produce's
    from kafkube.consumers.runner import serve_sink  # noqa: PLC0415

    stats = serve_sink(
        config.sink_settings(sink_type),
        open_destination(config.sink(sink_type)),
        listen=config.observability.address(),
        stop=service_process(config.observability),
    )
    click.echo(json.dumps({"stopped": asdict(stats)}), err=True)


class _SinkCommands(click.Group):
    """``kafkube sink <type>``: one command per type ``SINK_TYPES`` holds when it runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 - click's interface
        return list(SINK_TYPES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        model = SINK_TYPES.get(cmd_name)
        return None if model is None else _sink_command(cmd_name, model)


@click.group(cls=_SinkCommands)
def sink() -> None:
    """Consume the topic into durable storage, exactly once (one consumer group per sink type)."""


def _sink_command(sink_type: str, model: type[SinkConfig]) -> click.Command:
    """``kafkube sink <type>``: its flags made from the type's model (``SINK_TYPES``)."""
    options, fields = model_options(model, f"sinks.{sink_type}")

    @click.command(sink_type, help=(model.__doc__ or "").replace("``", ""))
    @kafka_options
    def run(**_flags: Any) -> None:  # noqa: ANN401 - read through configuration()
        _run_sink(configuration({**KAFKA_FLAGS, **fields}), sink_type)

    run.params[:0] = options
    return run
