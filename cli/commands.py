"""The ``kafkube`` command. Settings are read here, once, and passed down; nothing below reads the
environment."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from kafkube.cli import demo, operations
from kafkube.cli.configuration.loading import Config
from kafkube.cli.configuration.loading import load as load_config
from kafkube.cli.configuration.reference import example_yaml, reference_markdown
from kafkube.cli.options import (
    KAFKA_FLAGS,
    TableChoice,
    configuration,
    kafka_options,
    model_options,
    service_process,
    setup_logging,
    stop_on_signals,
)
from kafkube.compose.settings import (
    KAFKA_HEAP_MB,
    NODE,
    NODE_SERVICES,
    PORT_NAMES,
    READY_TIMEOUT_SECONDS,
    SERVICES,
    StackSettings,
    stack_dir_options,
)
from kafkube.compose.smoke import TOPIC as SMOKE_TOPIC
from kafkube.compose.smoke import run as run_smoke
from kafkube.compose.stack import KAFKA_TOOLS, Stack
from kafkube.consumers.destinations import open_destination
from kafkube.consumers.runner import serve_sink
from kafkube.consumers.settings import SINK_TYPES, SinkConfig
from kafkube.core.errors import KafkubeError
from kafkube.producer.service import serve_producer
from kafkube.producer.settings import ProducerConfig
from kafkube.producer.simulating import (
    SIMULATED_RATE,
    record_watch_stream,
    simulate_into_cluster,
)
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.producer.watching import open_api_client


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    setup_logging("DEBUG" if verbose else "INFO", "text")


def _parse_ports(values: tuple[str, ...]) -> dict[str, int]:
    ports = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or not number.isdigit():
            raise click.BadParameter(f"expected NAME=PORT, got {value!r}", param_hint="--port")
        ports[name.replace("-", "_")] = int(number)
    return ports


@cli.group()
@stack_dir_options
@click.option(
    "--port",
    "ports",
    multiple=True,
    metavar="NAME=PORT",
    help=f"Listen on this port at first start; names: {', '.join(PORT_NAMES)}.",
)
@click.option(
    "--any-free-ports",
    is_flag=True,
    help="At first start take any free ports rather than the usual ones (9092, 9000, ...).",
)
@click.option("--kafka-heap-mb", type=int, default=KAFKA_HEAP_MB, show_default=True)
@click.pass_context
def stack(  # noqa: PLR0913, PLR0917 - click passes one parameter per option
    ctx: click.Context,
    cache_dir: Path,
    state_dir: Path,
    ports: tuple[str, ...],
    any_free_ports: bool,  # noqa: FBT001
    kafka_heap_mb: int,
) -> None:
    """The local stack: Kafka, a Kubernetes API server, MinIO and a GCS emulator on 127.0.0.1."""
    settings = StackSettings(
        cache_dir=cache_dir.expanduser().absolute(),
        state_dir=state_dir.expanduser().absolute(),
        ports=_parse_ports(ports),
        prefer_default_ports=not any_free_ports,
        kafka_heap_mb=kafka_heap_mb,
    )
    ctx.obj = Stack(settings)


_SERVICE_CHOICE = click.Choice([*SERVICES, *NODE_SERVICES, NODE])
_service_names = click.argument("services", nargs=-1, type=_SERVICE_CHOICE)


@stack.command()
@click.option("--node", is_flag=True, help="Also build the node's kubelet, scheduler, ...")
@click.option("--helm", is_flag=True, help="Also build helm (the tests render the chart).")
@click.pass_obj
def fetch(stack: Stack, node: bool, helm: bool) -> None:  # noqa: FBT001
    """Fetch or build every service into the cache (the first time takes minutes)."""
    for name, path in stack.fetch(node=node, helm=helm).items():
        click.echo(f"{name:24} {path}")


@stack.command()
@_service_names
@click.option(
    "--timeout",
    type=float,
    default=READY_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds to wait.",
)
@click.pass_obj
def up(stack: Stack, services: tuple[str, ...], timeout: float) -> None:
    """Start the services (all but the node by default) and wait until each answers.

    `kafkube stack up node` adds a Kubernetes node: containerd, kube-scheduler,
    kube-controller-manager and a kubelet, which run the pods of a Helm chart."""
    stack.up(services or SERVICES, timeout=timeout)
    _print_status(stack)


@stack.command()
@_service_names
@click.pass_obj
def down(stack: Stack, services: tuple[str, ...]) -> None:
    """Stop the services (all by default); their data stays for the next start."""
    stopped = stack.down(services) if services else stack.down()
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack.command()
@click.argument("services", nargs=-1, required=True, type=_SERVICE_CHOICE)
@click.option("--timeout", type=float, default=READY_TIMEOUT_SECONDS, show_default=True)
@click.pass_obj
def restart(stack: Stack, services: tuple[str, ...], timeout: float) -> None:
    """Stop and start the named services."""
    stack.restart(services, timeout=timeout)
    _print_status(stack)


@stack.command("load-image")
@click.argument("archive", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_obj
def load_image(stack: Stack, archive: Path) -> None:
    """Import an image archive (`podman save`, `docker save`) into the node's containerd."""
    for name in stack.load_image(archive):
        click.echo(f"imported {name}")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(stack: Stack, as_json: bool) -> None:  # noqa: FBT001
    """What runs where."""
    _print_status(stack, as_json=as_json)


def _print_status(stack: Stack, *, as_json: bool = False) -> None:
    rows = stack.status()
    if as_json:
        click.echo(json.dumps([{**asdict(r), "log": str(r.log)} for r in rows], indent=2))
        return
    click.echo(f"{'SERVICE':24} {'STATE':9} {'PID':>8}  {'ADDRESS':32} LOG")
    for row in rows:
        state = "ready" if row.ready else ("starting" if row.pid else "stopped")
        click.echo(f"{row.name:24} {state:9} {row.pid or '-':>8}  {row.address:32} {row.log}")


@stack.command()
@click.pass_obj
def env(stack: Stack) -> None:
    """Print the variables that point clients at this stack: eval "$(kafkube stack env)"."""
    for name, value in stack.endpoints().to_env().items():
        click.echo(f"export {name}={shlex.quote(value)}")


@stack.command()
@click.pass_obj
def smoke(stack: Stack) -> None:
    """Push one Kubernetes event through Kafka into S3 and GCS, with each service's real client."""
    result = run_smoke(stack.endpoints())
    click.echo(f"event {result.event_uid}: watched on the API server")
    click.echo(f"  -> Kafka topic {SMOKE_TOPIC}, offset {result.kafka_offset}")
    click.echo(f"  -> {result.s3_url}")
    click.echo(f"  -> {result.gcs_url}")


@stack.command(
    "kafka-tool",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("tool", type=click.Choice(sorted(KAFKA_TOOLS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def kafka_tool(stack: Stack, tool: str, args: tuple[str, ...]) -> None:
    """Run one of Kafka's own tools against this stack, e.g. kafka-consumer-groups --list."""
    argv = stack.kafka_tool_argv(tool, list(args))
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # noqa: S606 - replaces this process with the JVM, on purpose


@cli.command()
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


@cli.command()
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


@cli.group(cls=_SinkCommands)
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


@cli.group("config")
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


for _command in (demo.demo, operations.status, operations.replay, operations.inspect):
    cli.add_command(_command)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KafkubeError as err:
        click.echo(f"kafkube: {err}", err=True)
        sys.exit(1)
