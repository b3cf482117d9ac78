"""``kafkube demo``: the whole flow on this machine, watched live.

The local stack comes up (or the running one is used); ``kafkube simulate``
writes a synthetic cluster's events into the stack's real API server, the
producer watches it, and the file, S3 and GCS sinks consume the topic, each in
its own group, all as child processes of the same ``kafkube`` command a user
runs. On Ctrl-C or after ``--duration`` the demo stops them in the order that
loses nothing: the simulation, then the producer (it commits its last
transaction), then it waits for every sink to commit the last record before
stopping them. It then reads every sink's output back and checks that they
hold the same records, each once.

A tally consumer (read_committed, no group) counts the records the producer
committed and remembers their offsets, so lag is counted in records: a sink's
committed offset is compared with the records' offsets, not with a log end
that transaction markers push past the last record.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import platformdirs
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kafkube.cli.options import stop_on_signals
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.processes import Supervised
from kafkube.compose.settings import StackSettings, stack_dir_options
from kafkube.compose.stack import Stack
from kafkube.compose.stores import StackStores
from kafkube.consumers.destinations import open_destination
from kafkube.consumers.local import local_sinks, location, sink_environment
from kafkube.consumers.naming import check_topic
from kafkube.consumers.positions import Offsets
from kafkube.consumers.reading import read_location
from kafkube.consumers.settings import SINK_TYPES, SinkConfig
from kafkube.consumers.tally import TopicTally
from kafkube.core.admin import ensure_topic
from kafkube.core.errors import ConfigError, KafkubeError
from kafkube.core.waiting import Deadline
from kafkube.producer.settings import ProducerConfig
from kafkube.producer.simulating import SIMULATED_RATE


# The sinks that write files write Parquet, so the demo's output answers SQL where it lies
# (DuckDB, no extension to fetch); the object stores keep Avro.
def _demo_formats() -> dict[str, str]:
    return {name: "parquet" for name, model in SINK_TYPES.items() if model.scheme is None}


# The demo's own topic and groups: a group remembers where it wrote up to, so sharing one with
# a sink run by hand into another directory would leave that part out of the demo's output.
DEMO_TOPIC = "kafkube.demo"


def demo_group(sink: str) -> str:
    return f"kafkube-demo-{sink}"


_REFRESH = 1.0
_PLAIN_EVERY = 5.0  # seconds between progress lines when the output is not a terminal


@dataclass(frozen=True)
class DemoSettings:
    topic: str
    output_dir: Path  # files/ holds the file sink's output, logs/ each child's log
    bucket: str  # in each object store of the stack
    duration: float | None  # None: until Ctrl-C
    rate: float  # simulated events per second
    seed: int | None  # the simulation's; None: simulate's own, a new one each run
    partitions: int
    cluster: str
    kubeconfig: str | None  # a real cluster to watch; None: simulate one on the stack

    @property
    def files(self) -> Path:
        return self.output_dir / "files"

    @property
    def logs(self) -> Path:
        return self.output_dir / "logs"


class Demo:
    def __init__(self, stack: Stack, settings: DemoSettings, console: Console) -> None:
        self.stack, self.settings, self.console = stack, settings, console
        self.children: dict[str, Supervised] = {}
        self.endpoints: Endpoints | None = None
        self.kafka: dict[str, str] = {}
        self.sinks: dict[str, SinkConfig] = {}
        self.kinds = tuple(SINK_TYPES)  # every sink type runs, each in its own group

    # --- the run ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> bool:
        """Run until ``stop`` or the duration; True when every sink ended with the same records."""
        settings = self.settings
        simulated = settings.kubeconfig is None
        self.console.print("[bold]kafkube demo[/]: bringing the local stack up ...")
        services = None if simulated else ("kafka", "minio", "gcs", "registry")
        self.endpoints = self.stack.up(services) if services else self.stack.up()
        self.kafka = {"bootstrap.servers": self.endpoints.kafka_bootstrap}
        # This command is the entry point: reading the output back at the end goes through the
        # same clients as the sinks, which take their credentials from the standard variables.
        os.environ.update(
            {k: v for k, v in self.endpoints.to_env().items() if k.startswith("AWS_")}
        )
        self.sinks = local_sinks(
            StackStores(self.endpoints),
            bucket=settings.bucket,
            folder=settings.files,
            formats=_demo_formats(),
        )
        ensure_topic(self.kafka, settings.topic, partitions=settings.partitions, config={})
        settings.files.mkdir(parents=True, exist_ok=True)
        settings.logs.mkdir(parents=True, exist_ok=True)

        with Offsets(self.kafka, settings.topic) as offsets:
            tally = TopicTally(
                self.kafka,
                settings.topic,
                self._tally_starts(offsets),
                registry={"url": self.endpoints.schema_registry_url},
            )
            tally.start()
            try:
                self._start_children()
                finished = self._watch(offsets, tally, stop)
                self._stop_sources()
                if finished:
                    self._catch_up(offsets, tally)
            finally:
                for child in self.children.values():
                    if child.process is not None:
                        child.stop()
                tally.halt()
        if not finished:
            return False
        return self._report(tally)

    def _tally_starts(self, offsets: Offsets) -> dict[int, int]:
        """Count from the lowest offset any sink still has to write, so lag includes backlog."""
        starts, ends = offsets.log_bounds()
        lowest = dict(ends)
        for sink in self.kinds:
            for partition, committed in offsets.committed(demo_group(sink)).items():
                at = starts[partition] if committed is None else max(committed, starts[partition])
                lowest[partition] = min(lowest[partition], at)
        return lowest

    def _start_children(self) -> None:
        settings, endpoints = self.settings, self.endpoints
        assert endpoints is not None  # noqa: S101 - run() set it
        env = {**os.environ, **endpoints.to_env()}
        kubeconfig = settings.kubeconfig or endpoints.kubeconfig
        env["KUBECONFIG"] = kubeconfig
        kafka = ["--bootstrap-servers", endpoints.kafka_bootstrap, "--topic", settings.topic]
        rotation = ["--max-age-seconds", "2", "--max-records", "5000"]
        commands = {
            "producer": [
                "produce", "--cluster", settings.cluster, "--kubeconfig", kubeconfig,
                "--partitions", str(settings.partitions), "--linger-seconds", "0.2", *kafka,
            ],
        }  # fmt: skip
        environments = dict.fromkeys(commands, env)
        for sink, config in self.sinks.items():
            group = ["--group", demo_group(sink)]
            commands[f"{sink} sink"] = ["sink", sink, *group, *kafka, *rotation]
            environments[f"{sink} sink"] = {**env, **sink_environment(config)}
        if settings.kubeconfig is None:
            commands["simulate"] = ["simulate", "--rate", str(settings.rate)]
            if settings.seed is not None:
                commands["simulate"] += ["--seed", str(settings.seed)]
            environments["simulate"] = env
        for name, args in commands.items():
            log = settings.logs / f"{name.replace(' ', '-')}.log"
            self.children[name] = Supervised(name, args, log, environments[name])
            self.children[name].start()

    def _dead_child(self) -> Supervised | None:
        for child in self.children.values():
            code = child.exited()
            if code is not None and not (child.name == "simulate" and code == 0):
                return child
        return None

    # --- live view --------------------------------------------------------------------------

    def _lags(self, offsets: Offsets, tally: TopicTally) -> dict[str, int]:
        return {sink: tally.behind(offsets.committed(demo_group(sink))) for sink in self.kinds}

    def _where(self, sink: str) -> str:
        return location(self.sinks[sink])

    def _table(self, elapsed: float, published: int, lags: dict[str, int]) -> Table:
        left = self.settings.duration
        when = f"{elapsed:.0f} s" + (f" of {left:.0f} s" if left else "; Ctrl-C stops")
        source = (
            "simulated cluster on the stack's API server"
            if self.settings.kubeconfig is None
            else f"cluster of {self.settings.kubeconfig}"
        )
        table = Table(title=f"kafkube demo: {source}, {when}", title_justify="left")
        table.add_column("stage")
        table.add_column("records", justify="right")
        table.add_column("lag", justify="right")
        table.add_column("where")
        assert self.endpoints is not None  # noqa: S101 - run() set it
        topic = f"Kafka topic {self.settings.topic}, schema in {self.endpoints.schema_registry_url}"
        table.add_row("producer", str(published), "", topic)
        for sink in self.kinds:
            table.add_row(
                f"{sink} sink", str(published - lags[sink]), str(lags[sink]), self._where(sink)
            )
        return table

    def _watch(self, offsets: Offsets, tally: TopicTally, stop: threading.Event) -> bool:
        """Show the live view until stop or the duration; False if a child died."""
        began = time.monotonic()
        duration = self.settings.duration
        last_plain = 0.0
        with Live(console=self.console, auto_refresh=False, transient=False) as live:
            while not stop.is_set():
                elapsed = time.monotonic() - began
                if duration is not None and elapsed >= duration:
                    break
                dead = self._dead_child()
                if dead is not None or tally.error:
                    self._died(dead, tally)
                    return False
                lags = self._lags(offsets, tally)
                published = tally.total()
                if self.console.is_terminal:
                    live.update(self._table(elapsed, published, lags), refresh=True)
                elif elapsed - last_plain >= _PLAIN_EVERY:
                    last_plain = elapsed
                    sinks = ", ".join(f"{s} lag {lags[s]}" for s in self.kinds)
                    self.console.print(f"{elapsed:4.0f} s: {published} published; {sinks}")
                stop.wait(_REFRESH)
        return True

    def _died(self, dead: Supervised | None, tally: TopicTally) -> None:
        if dead is not None:
            self.console.print(
                f"[red]{dead.name} exited with code {dead.exited()}[/]; its log ({dead.log}):\n"
                f"{dead.tail()}",
                markup=True,
                highlight=False,
            )
        else:
            self.console.print(f"[red]counting the topic failed[/]: {tally.error}")

    # --- stopping in order --------------------------------------------------------------------

    def _stop_sources(self) -> None:
        for name in ("simulate", "producer"):
            child = self.children.get(name)
            if child is not None and child.process is not None:
                self.console.print(f"stopping {name} ...")
                code = child.stop()
                if code != 0:
                    raise KafkubeError(f"{name} exited with code {code}:\n{child.tail()}")

    def _catch_up(self, offsets: Offsets, tally: TopicTally, timeout: float = 180.0) -> None:
        """Wait until the tally saw every record and every sink committed them all."""
        deadline = Deadline(timeout)
        starts, ends = offsets.log_bounds()
        records_ends = offsets.records_ends(starts, ends)
        while not tally.reached(records_ends):
            if deadline.passed():
                raise KafkubeError("the topic could not be read to its end within the deadline")
            time.sleep(0.2)
        total = tally.total()
        columns = (
            TextColumn("{task.description:10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self.console.print("sinks catching up (each writes its open batch within 2 s):")
        with Progress(*columns, console=self.console) as progress:
            tasks = {sink: progress.add_task(f"{sink} sink", total=total) for sink in self.kinds}
            while True:
                lags = self._lags(offsets, tally)
                for sink, task in tasks.items():
                    progress.update(task, completed=total - lags[sink])
                if not any(lags.values()):
                    break
                dead = self._dead_child()
                if dead is not None:
                    raise KafkubeError(f"{dead.name} exited while catching up:\n{dead.tail()}")
                if deadline.passed():
                    raise KafkubeError(f"sinks still behind after {timeout:.0f} s: {lags}")
                time.sleep(0.5)
        for sink in self.kinds:
            self.children[f"{sink} sink"].stop()

    # --- what is where --------------------------------------------------------------------------

    def _report(self, tally: TopicTally) -> bool:
        held: dict[str, Counter[tuple[str, str]]] = {}
        objects: dict[str, set[str]] = {}
        samples: list[dict[str, Any]] = []
        for sink in self.kinds:
            held[sink], objects[sink] = Counter(), set()
            destination = open_destination(self.sinks[sink])
            for name, record in read_location(destination, self.settings.topic):
                held[sink][record["uid"], record["resource_version"]] += 1
                objects[sink].add(name)
                if len(samples) < 3:
                    samples.append(record)
        self.console.print(
            f"\n[bold]stopped[/]. {tally.total()} records went through the topic in this run."
        )
        assert self.endpoints is not None  # noqa: S101 - run() set it
        self.console.print(
            f"  the topic is in the wire format every Kafka tool reads: schema "
            f"{self.settings.topic}-value in {self.endpoints.schema_registry_url}",
            highlight=False,
            soft_wrap=True,
        )
        for sink in self.kinds:
            doubled = sum(1 for n in held[sink].values() if n > 1)
            self.console.print(
                f"  {sink:5} {sum(held[sink].values()):>8} records ({doubled} doubled) in "
                f"{len(objects[sink]):>4} objects under {self._where(sink)}",
                highlight=False,
                soft_wrap=True,
            )
        same = all(held[sink] == held[self.kinds[0]] for sink in self.kinds)
        complete = all(tally.occurrences <= set(held[sink]) for sink in self.kinds)
        once = all(n == 1 for sink in self.kinds for n in held[sink].values())
        verdict = "the same records, each once" if same and once else "[red]DIFFERENT[/] records"
        self.console.print(f"  all {len(self.kinds)} sinks hold {verdict}")
        if not complete:
            self.console.print(
                "  [red]some records of this run are missing from a sink[/]: a group resumes "
                "where it last committed, so output moved elsewhere since is not here; "
                f"`kafkube replay --group {demo_group(self.kinds[0])} --to-earliest --execute` "
                f"(and the same for {', '.join(self.kinds[1:])}) rewrites it all"
            )
        self.console.print(f"\nA few records, from the {self.kinds[0]} sink:")
        for record in samples:
            moment = record["last_timestamp"] or record["event_time"] or record["observed_at"]
            regarding = record["regarding"] or {}
            self.console.print(
                f"  {moment:%Y-%m-%dT%H:%M:%SZ}  {record['namespace']}/{regarding.get('name')}  "
                f"{record['reason']}: {record['note']}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        self.console.print(
            '\nLook further (after: eval "$(kafkube stack env)"):\n'
            + "".join(f"  kafkube inspect {self._where(sink)} --count\n" for sink in self.kinds)
            + f"  kafkube status --topic {self.settings.topic}\n"
            f"  kafkube replay --group {demo_group(self.kinds[0])} --topic {self.settings.topic} "
            "--to-earliest",
            highlight=False,
            markup=False,
        )
        return same and once and complete


def _cluster_of(kubeconfig: str) -> str:
    from kubernetes import config  # noqa: PLC0415 - only with a real cluster

    try:
        _contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError) as err:
        raise ConfigError("kubeconfig", f"cannot read {kubeconfig}: {err}") from err
    return str(active["context"]["cluster"])


@click.command()
@stack_dir_options
@click.option("--duration", type=float, help="Stop after this many seconds; default: at Ctrl-C.")
@click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    help="Watch this cluster (or $KUBECONFIG's) instead of simulating one on the stack.",
)
@click.option(
    "--rate", type=float, default=SIMULATED_RATE, show_default=True, help="Simulated events/s."
)
@click.option(
    "--seed",
    type=int,
    show_default="a new one each run",
    help="The simulation's seed: the same seed, the same events (a rerun's names conflict).",
)
@click.option("--topic", default=DEMO_TOPIC, show_default=True)
@click.option(
    "--partitions",
    type=int,
    default=ProducerConfig.model_fields["partitions"].default,
    show_default=True,
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=lambda: Path(platformdirs.user_data_dir("kafkube")) / "demo",
    show_default="the user data dir",
    help="The file sink's output (files/) and the logs (logs/).",
)
@click.option(
    "--bucket",
    default="kafkube-demo",
    show_default=True,
    help="The bucket in each object store of the stack, created if missing.",
)
def demo(  # noqa: PLR0913, PLR0917 - click passes one parameter per option
    cache_dir: Path,
    state_dir: Path,
    duration: float | None,
    kubeconfig: str | None,
    rate: float,
    seed: int | None,
    topic: str,
    partitions: int,
    output_dir: Path,
    bucket: str,
) -> None:
    """The main job on this machine: a cluster's events into Kafka and out to every sink.

    Brings the local stack up (or uses the running one), simulates a busy cluster on
    its API server (or watches --kubeconfig's cluster), runs the producer and every sink
    type (files, and each object store on the stack's emulator), shows them live, and at
    Ctrl-C or after --duration stops everything in order and shows where the records are.
    """
    if duration is not None and duration <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--duration")
    if rate <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--rate")
    stack = Stack(
        StackSettings(
            cache_dir=cache_dir.expanduser().absolute(), state_dir=state_dir.expanduser().absolute()
        )
    )
    # Inside the stack's own folder, KUBECONFIG points at the stack: that is no cluster to watch.
    if kubeconfig and Path(kubeconfig).expanduser().absolute() == stack.state.kubeconfig_path:
        kubeconfig = None
    settings = DemoSettings(
        topic=check_topic(topic),
        output_dir=output_dir.expanduser().absolute(),
        bucket=bucket,
        duration=duration,
        rate=rate,
        seed=seed,
        partitions=partitions,
        cluster=_cluster_of(kubeconfig) if kubeconfig else "kafkube-demo",
        kubeconfig=kubeconfig,
    )
    if not Demo(stack, settings, Console()).run(stop_on_signals()):
        sys.exit(1)
