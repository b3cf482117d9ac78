"""``kafkube stack``: the local stack's commands (fetch, up, down, status, env, smoke, ...)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import click

from kafkube.compose.settings import (
    KAFKA_HEAP_MB,
    NODE,
    NODE_SERVICES,
    OPTIONAL_SERVICES,
    PORT_NAMES,
    READY_TIMEOUT_SECONDS,
    SERVICES,
    StackSettings,
    stack_dir_options,
)
from kafkube.compose.smoke import TOPIC as SMOKE_TOPIC
from kafkube.compose.smoke import run as run_smoke
from kafkube.compose.stack import KAFKA_TOOLS, Stack


def _parse_ports(values: tuple[str, ...]) -> dict[str, int]:
    ports = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or not number.isdigit():
            raise click.BadParameter(f"expected NAME=PORT, got {value!r}", param_hint="--port")
        ports[name.replace("-", "_")] = int(number)
    return ports


@click.group()
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


_SERVICE_CHOICE = click.Choice([*SERVICES, *OPTIONAL_SERVICES, *NODE_SERVICES, NODE])
_service_names = click.argument("services", nargs=-1, type=_SERVICE_CHOICE)


@stack.command()
@click.option("--node", is_flag=True, help="Also build the node's kubelet, scheduler, ...")
@click.option("--helm", is_flag=True, help="Also build helm (the tests render the chart).")
@click.option("--nessie", is_flag=True, help="Also fetch Nessie (an Iceberg REST catalog).")
@click.option("--keycloak", is_flag=True, help="Also fetch Keycloak (the login tests' OIDC).")
@click.pass_obj
def fetch(stack: Stack, node: bool, helm: bool, nessie: bool, keycloak: bool) -> None:  # noqa: FBT001
    """Fetch or build every service into the cache (the first time takes minutes)."""
    fetched = stack.fetch(node=node, helm=helm, nessie=nessie, keycloak=keycloak)
    for name, path in fetched.items():
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
