"""The ``kafkube`` command. Settings are read here, once, and passed down; nothing below reads the
environment."""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from kafkube import demo, operations
from kafkube.compose.settings import PORT_NAMES, SERVICES, StackSettings
from kafkube.compose.smoke import TOPIC as SMOKE_TOPIC
from kafkube.compose.smoke import run as run_smoke
from kafkube.compose.stack import KAFKA_TOOLS, Stack
from kafkube.consumers.destinations import Destination
from kafkube.consumers.filesink import FileDestination
from kafkube.consumers.service import run_sink
from kafkube.consumers.settings import SinkSettings
from kafkube.options import (
    kafka_options,
    kafka_properties,
    service_process,
    stack_dir_options,
    stop_on_signals,
)
from kafkube.producer.service import run_producer
from kafkube.producer.settings import ProducerSettings
from kafkube.producer.simulating import record_watch_stream, simulate_into_cluster
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.producer.watching import open_api_client
from kafkube.schemas.errors import KafkubeError
from kafkube.schemas.records import API_CORE_V1, API_EVENTS_V1
from kafkube.schemas.topics import DEFAULT_TOPIC


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log more detail to stderr.")
@click.version_option(package_name="kafkube")
def cli(verbose: bool) -> None:  # noqa: FBT001 - click passes flags positionally
    """Stream every Kubernetes event into Kafka as Avro and fan it out to durable sinks."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for chatty in ("botocore", "urllib3", "google"):  # their INFO lines say nothing to a user
        logging.getLogger(chatty).setLevel(logging.DEBUG if verbose else logging.WARNING)


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
@click.option("--kafka-heap-mb", type=int, default=512, show_default=True)
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


_service_names = click.argument("services", nargs=-1, type=click.Choice(SERVICES))


@stack.command()
@click.pass_obj
def fetch(stack: Stack) -> None:
    """Fetch or build every service into the cache (the first time takes minutes)."""
    for name, path in stack.fetch().items():
        click.echo(f"{name:16} {path}")


@stack.command()
@_service_names
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait.")
@click.pass_obj
def up(stack: Stack, services: tuple[str, ...], timeout: float) -> None:
    """Start the services (all by default) and wait until each answers."""
    stack.up(services or SERVICES, timeout=timeout)
    _print_status(stack)


@stack.command()
@_service_names
@click.pass_obj
def down(stack: Stack, services: tuple[str, ...]) -> None:
    """Stop the services (all by default); their data stays for the next start."""
    stopped = stack.down(services or SERVICES)
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack.command()
@click.argument("services", nargs=-1, required=True, type=click.Choice(SERVICES))
@click.option("--timeout", type=float, default=300.0, show_default=True)
@click.pass_obj
def restart(stack: Stack, services: tuple[str, ...], timeout: float) -> None:
    """Stop and start the named services."""
    stack.restart(services, timeout=timeout)
    _print_status(stack)


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
    click.echo(f"{'SERVICE':16} {'STATE':9} {'PID':>8}  {'ADDRESS':32} LOG")
    for row in rows:
        state = "ready" if row.ready else ("starting" if row.pid else "stopped")
        click.echo(f"{row.name:16} {state:9} {row.pid or '-':>8}  {row.address:32} {row.log}")


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
    "--cluster", required=True, envvar="KAFKUBE_CLUSTER", help="Cluster name, in every record."
)
@click.option(
    "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", required=True, help="Kafka brokers."
)
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Else the in-cluster service account.")
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
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True)
@click.option(
    "--partitions", type=int, default=6, show_default=True, help="If the topic is created."
)
@click.option(
    "--api",
    "api_version",
    type=click.Choice([API_CORE_V1, API_EVENTS_V1]),
    default=API_CORE_V1,
    show_default=True,
    help="Which Event API to watch.",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch this namespace (repeatable); all by default.",
)
@click.option("--producer-id", default=socket.gethostname, show_default="the host name")
@click.option("--transactional-id", default="", help="Default: kafkube-producer-<cluster>.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ"]),
    help="At the very first start, skip events last seen before this time (ISO 8601, UTC).",
)
@click.option(
    "--batch-max-events",
    type=int,
    default=5000,
    show_default=True,
    help="Events per transaction at most: a commit waits on the broker for ~10 ms.",
)
@click.option("--linger-seconds", type=float, default=0.2, show_default=True)
@click.option("--watch-timeout-seconds", type=int, default=300, show_default=True)
@click.option(
    "--kafka", "kafka_props", multiple=True, metavar="KEY=VALUE", help="librdkafka property."
)
def produce(  # noqa: PLR0913, PLR0917 - click passes one parameter per option
    cluster: str,
    bootstrap_servers: str,
    kubeconfig: str | None,
    source: str,
    recording: Path | None,
    topic: str,
    partitions: int,
    api_version: str,
    namespaces: tuple[str, ...],
    producer_id: str,
    transactional_id: str,
    since: datetime | None,
    batch_max_events: int,
    linger_seconds: float,
    watch_timeout_seconds: int,
    kafka_props: tuple[str, ...],
) -> None:
    """Watch Kubernetes events and publish each occurrence to Kafka exactly once."""
    if (source == "file") != (recording is not None):
        raise click.UsageError("--source file goes with --file PATH, and --file with --source file")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    settings = ProducerSettings(
        cluster=cluster,
        producer_id=producer_id,
        kafka=kafka_properties(kafka_props, bootstrap_servers),
        topic=topic,
        partitions=partitions,
        api_version=api_version,
        namespaces=namespaces,
        transactional_id=transactional_id,
        batch_max_events=batch_max_events,
        linger_seconds=linger_seconds,
        watch_timeout_seconds=watch_timeout_seconds,
        since=since,
    )
    stop = service_process()
    stats = run_producer(settings, kubeconfig=kubeconfig, recording=recording, stop=stop)
    click.echo(json.dumps({"stopped": asdict(stats)}), err=True)


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
@click.option("--rate", type=float, default=50.0, show_default=True, help="Events per second.")
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


def _sink_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every sink shares: Kafka, the group, the format and the rotation rules."""
    options = [
        click.option("--group", default="", help="Consumer group; default kafkube-sink-<type>."),
        click.option(
            "--format", "output_format", type=click.Choice(["avro", "jsonl"]), default="avro",
            show_default=True, help="Avro object container files, or gzip JSON Lines.",
        ),
        click.option(
            "--codec", type=click.Choice(["null", "deflate", "snappy", "zstandard"]),
            default="deflate", show_default=True, help="Avro block compression.",
        ),
        click.option("--max-records", type=int, default=50_000, show_default=True),
        click.option("--max-bytes", type=int, default=64 << 20, show_default=True),
        click.option(
            "--max-age-seconds", type=float, default=60.0, show_default=True,
            help="Write a batch this long after its first record, even if nothing follows.",
        ),
        click.option(
            "--time-field", type=click.Choice(["record", "event"]), default="record",
            show_default=True, help="Which time picks the dt=/hour= folder.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return kafka_options(command)


def _sink_settings(sink_type: str, options: dict[str, Any]) -> SinkSettings:
    return SinkSettings(
        sink_type=sink_type,
        kafka=kafka_properties(options["kafka_props"], options["bootstrap_servers"]),
        topic=options["topic"],
        group=options["group"],
        format=options["output_format"],
        codec=options["codec"],
        max_records=options["max_records"],
        max_bytes=options["max_bytes"],
        max_age_seconds=options["max_age_seconds"],
        time_field=options["time_field"],
    )


def _run_sink(settings: SinkSettings, destination: Destination) -> None:
    stop = service_process()
    stats = run_sink(settings, destination, stop=stop)
    click.echo(json.dumps({"stopped": asdict(stats)}), err=True)


@cli.group()
def sink() -> None:
    """Consume the topic into durable storage, exactly once (one consumer group per sink type)."""


@sink.command("file")
@click.option("--dir", "directory", type=click.Path(path_type=Path), required=True)
@click.option("--min-free-mb", type=int, default=64, show_default=True)
@_sink_options
def sink_file(directory: Path, min_free_mb: int, **options: Any) -> None:  # noqa: ANN401 - click hands the shared options over as keywords
    """Files on local disk: temp file, fsync, atomic rename, fsync of the directory."""
    _run_sink(
        _sink_settings("file", options),
        FileDestination(directory, min_free_bytes=min_free_mb << 20),
    )


@sink.command("s3")
@click.option("--bucket", required=True)
@click.option("--prefix", default="", help="Key prefix; objects go below it.")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL_S3", help="MinIO or another S3 API.")
@click.option("--region", envvar="AWS_REGION")
@click.option("--sse", type=click.Choice(["AES256", "aws:kms"]), help="Server-side encryption.")
@click.option("--kms-key-id", help="With --sse aws:kms.")
@click.option("--storage-class", help="STANDARD_IA, INTELLIGENT_TIERING, ...")
@click.option("--multipart-threshold-mb", type=int, default=16, show_default=True)
@_sink_options
def sink_s3(  # noqa: PLR0913, PLR0917 - click passes one parameter per option
    bucket: str,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    sse: str | None,
    kms_key_id: str | None,
    storage_class: str | None,
    multipart_threshold_mb: int,
    **options: Any,  # noqa: ANN401 - the shared sink options
) -> None:
    """Objects in S3 or MinIO; credentials from the standard AWS chain."""
    from kafkube.consumers.s3sink import S3Destination  # noqa: PLC0415 - boto3 only when asked

    destination = S3Destination(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint_url,
        region=region,
        server_side_encryption=sse,
        kms_key_id=kms_key_id,
        storage_class=storage_class,
        multipart_threshold=multipart_threshold_mb << 20,
    )
    _run_sink(_sink_settings("s3", options), destination)


@sink.command("gcs")
@click.option("--bucket", required=True)
@click.option("--prefix", default="", help="Object name prefix; objects go below it.")
@click.option("--project", envvar="GOOGLE_CLOUD_PROJECT")
@click.option("--endpoint", envvar="STORAGE_EMULATOR_HOST", help="A GCS emulator's URL.")
@_sink_options
def sink_gcs(
    bucket: str,
    prefix: str,
    project: str | None,
    endpoint: str | None,
    **options: Any,  # noqa: ANN401 - the shared sink options
) -> None:
    """Objects in Google Cloud Storage; credentials from Application Default Credentials."""
    from kafkube.consumers.gcssink import GCSDestination  # noqa: PLC0415 - the client only when asked

    destination = GCSDestination(bucket=bucket, prefix=prefix, project=project, endpoint=endpoint)
    _run_sink(_sink_settings("gcs", options), destination)


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
