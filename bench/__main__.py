"""``python -m bench``: every figure of the benchmark in one run, against Kafka's own tools.

Starts the local stack (or uses the running one), measures, and writes
``bench/results/<name>.json`` and ``<name>.png``. Each figure is the median of
``--runs`` runs with their min and max. ``--scale`` shrinks every record count
(for trying the bench out; the published figures are at scale 1).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bench import measuring
from bench.chart import draw
from bench.running import Cluster, consumer_perf, encoded, figure, producer_perf, recording
from kafkube.compose.fetch import connect_libs
from kafkube.compose.settings import StackSettings, stack_dir_options
from kafkube.compose.stack import Stack
from kafkube.consumers.positions import Offsets
from kafkube.consumers.settings import SINK_TYPES
from kafkube.core.registry import SchemaRegistry
from kafkube.schemas.codec import Codec, latest_version

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 6
# In the order they run: registry mode takes the Kafka tools' figures of the two before it.
SECTIONS = ["producer", "sinks", "registry", "scaling", "latency", "pace", "relist", "startup"]
TARGETS = {
    "producer_ratio": 0.2,  # against kafka-producer-perf-test
    # Every sink type against kafka-consumer-perf-test warm: a local disk's, an object store's.
    **{
        f"{kind}_ratio": 0.3 if SINK_TYPES[kind].scheme is None else 0.25
        for kind in measuring.SINKS
    },
    # The other formats against Avro, the same sink and topic.
    **{f"file_{output}_vs_avro": 0.6 for output in measuring.OTHER_FORMATS},
    # The object stores' sinks against the file sink, the same topic.
    **{f"{kind}_vs_file": 0.8 for kind in measuring.SINKS if kind in {"s3", "gcs"}},
    # The file sink (Avro) against Kafka Connect's FileStreamSinkConnector (ByteArrayConverter)
    # on the same topic: its records/s at least, its CPU per record at most.
    "file_vs_connect": 1.0,
    "file_cpu_vs_connect": 1.0,
    "watch_pace_ratio": 0.95,
    "relist_pace_ratio": 0.95,
    "p99_latency_s": 1.5,
    "rss_growth": 1.2,  # peak RSS at 1M over peak RSS at 10k
    # Start-up, at most (s): `kafkube --help`; a producer from exec to watching, restarted on
    # a namespace of 10,000 events it has published (a state record each).
    "help_s": 0.3,
    "producer_watching_s": 2.0,
}


def _say(text: str) -> None:
    click.echo(f"{datetime.now(UTC):%H:%M:%S} {text}", err=True)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


class Bench:
    def __init__(self, cluster: Cluster, work: Path, cache: Path, runs: int, scale: float) -> None:
        self.cluster, self.work, self.runs, self.scale = cluster, work, runs, scale
        self.stores = measuring.Stores(cluster, work)
        self.results: dict[str, Any] = {}
        self.cache = cache
        self.big_topic = ""

    def count(self, full: int) -> int:
        """A record count at this scale that splits evenly: over the partitions, and each
        partition into whole batches (so no batch waits for the clock at the end of a run)."""
        step = PARTITIONS * 16
        return max(step * 10, round(full * self.scale / step) * step)

    def stream(self) -> Path:
        """The recorded watch stream every part reads (made once per size, then cached)."""
        events = self.count(1_000_000)
        return recording(self.cache / f"watch-{events}.jsonl", events)

    def log(self, name: str) -> Path:
        return self.work / f"{name}.log"

    def repeat(self, what: str, run: Any, n: int | None = None) -> list[dict[str, Any]]:  # noqa: ANN401 - a measurement
        return self.rounds({what: run}, n)[what]

    def rounds(
        self, contenders: dict[str, Callable[[int], dict[str, Any]]], n: int | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Runs of several contenders in turn, one run of each a round: this machine's speed
        drifts by a third over minutes (other tenants, the broker's own work), and taken in
        turn, a slow spell falls on every contender of a ratio alike."""
        out: dict[str, list[dict[str, Any]]] = {what: [] for what in contenders}
        for index in range(n or self.runs):
            for what, run in contenders.items():
                began = time.monotonic()
                out[what].append(run(index))
                _say(
                    f"  {what} run {index + 1}: {_brief(out[what][-1])}"
                    f" ({time.monotonic() - began:.0f} s)"
                )
        return out

    # --- the producer ---------------------------------------------------------------------------

    def producer(self) -> None:
        events = self.count(1_000_000)
        full = self.stream()
        sample = encoded(full, 20_000)
        size = round(statistics.mean(len(value) for _, value in sample))
        _say(f"producer: {events} recorded watch events, {size} B a record encoded")
        runs = self.rounds(
            {
                "kafkube produce": lambda i: measuring.producer_run(
                    self.cluster, full, self.log(f"producer-{i}"), keep=i == 0
                ),
                "kafka-producer-perf-test": lambda i: producer_perf(
                    self.cluster, records=events, size=size, log=self.log(f"perf-producer-{i}")
                ),
            }
        )
        ours, kafkas = runs["kafkube produce"], runs["kafka-producer-perf-test"]
        self.big_topic = ours[0]["topic"]  # what the producer wrote: the sinks' 1M topic
        profile = measuring.producer_profile(self.cluster, full)
        _say(f"  profile (us/event): {_brief(profile['us_per_event'])}")
        self.results["producer"] = {
            "events": events,
            "record_bytes": size,
            "ours_events_per_s": figure(r["events_per_s"] for r in ours),
            "kafka_records_per_s": figure(r["records_per_s"] for r in kafkas),
            "cpu_us_per_record": figure(r["cpu_us_per_record"] for r in ours),
            "kafka_cpu_us_per_record": figure(r["cpu_us_per_record"] for r in kafkas),
            "ratio": _paired(ours, "events_per_s", kafkas, "records_per_s"),
            "profile": profile,
            "runs": {"ours": ours, "kafka": kafkas},
        }
        self.results.setdefault("rss", {}).setdefault("producer", {})["1M"] = figure(
            r["peak_rss_mb"] for r in ours
        )
        for label, small in (("10k", 10_000), ("100k", 100_000)):
            part = self._first(self.count(small))
            smalls = self.repeat(
                f"producer RSS {label}",
                lambda i, p=part, n=label: measuring.producer_run(
                    self.cluster, p, self.log(f"producer-{n}-{i}")
                ),
            )
            self.results["rss"]["producer"][label] = figure(r["peak_rss_mb"] for r in smalls)

    # --- the sinks ------------------------------------------------------------------------------

    def _filled(
        self, prefix: str, total: int, partitions: int = PARTITIONS, codec: Codec | None = None
    ) -> str:
        topic = self.cluster.topic(prefix, partitions)
        self.cluster.fill(topic, encoded(self.stream(), total, codec), partitions)
        return topic

    def _big(self) -> tuple[str, int, int]:
        """The sinks' topic of a million records: the one the producer wrote (else filled);
        how many records it holds, and the sum of the offsets after each partition's last
        record (the offsets count the producer's transaction markers too): a sink has written
        it all once it committed that far."""
        if self.big_topic:
            records = self.results["producer"]["runs"]["ours"][0]["published"]
        else:
            records = self.count(1_000_000)
            self.big_topic = self._filled("bench-big", records)
        with Offsets({"bootstrap.servers": self.cluster.bootstrap}, self.big_topic) as offsets:
            starts, ends = offsets.log_bounds()
            return self.big_topic, records, sum(offsets.records_ends(starts, ends).values())

    def _sink_run(  # noqa: PLR0913 - what a run varies
        self,
        what: str,
        kind: str,
        topic: str,
        total: int,
        *,
        rotation: tuple[int, float],
        output_format: str | None = None,
        registry: str | None = None,
    ) -> Callable[[int], dict[str, Any]]:
        """One run of a sink through a topic, by its index; ``rotation``: its max records and
        max age."""
        return lambda i: measuring.sink_run(
            self.cluster, self.stores, kind, topic, total,
            max_records=rotation[0], max_age=rotation[1],
            log=self.log(f"{what.replace(' ', '-')}-{i}"), output_format=output_format,
            registry=registry,
        )  # fmt: skip

    def sinks(self) -> None:
        """Each sink, the file sink in JSON Lines and in Parquet, and Kafka Connect's file sink,
        through the producer's million records, against Kafka's consumer on the same topic,
        taken in turn (warm: the producer has just written it, and the tool reads it as many
        times). The Iceberg sink, minutes a run, comes after the rounds."""
        topic, total, ends = self._big()
        # Batches as the 100k runs had them; the producer's partitions are uneven, so each
        # ends with a batch the clock closes (1 s).
        rotation = (self.count(100_000) // PARTITIONS // 8, 1.0)
        _say(f"sinks: the producer's topic, {total} records")
        tool = "kafka-consumer-perf-test (warm)"

        def sink(
            kind: str, output: str | None = None
        ) -> tuple[str, Callable[[int], dict[str, Any]]]:
            """A sink's name in the results, and its run."""
            what = f"kafkube sink {kind}" + (f" --format {output}" if output else "")
            return what, self._sink_run(
                what, kind, topic, ends, rotation=rotation, output_format=output
            )

        libs = connect_libs(self.cluster.stack.settings)

        def connect(converter: str) -> Callable[[int], dict[str, Any]]:
            return lambda _: measuring.connect_run(
                self.cluster, topic, total, ends, self.work, converter=converter, libs=libs
            )

        turns: dict[str, Callable[[int], dict[str, Any]]] = {
            tool: lambda i: consumer_perf(
                self.cluster, topic, records=total, log=self.log(f"perf-{i}")
            ),
            **dict(sink(kind) for kind in measuring.SINKS if kind != "iceberg"),
            **dict(sink("file", output) for output in measuring.OTHER_FORMATS),
            **{
                f"Connect FileStreamSink ({converter})": connect(converter)
                for converter in measuring.CONNECT_CONVERTERS
            },
        }
        runs = self.rounds(turns)
        if "iceberg" in measuring.SINKS:
            what, run = sink("iceberg")
            runs[what] = self.repeat(what, run)
        kafkas = runs[tool]
        sinks: dict[str, Any] = {
            "records": total,
            "kafka_records_per_s": figure(r["records_per_s"] for r in kafkas),
            "kafka_mb_per_s": figure(r["mb_per_s"] for r in kafkas),
            "kafka_cpu_us_per_record": figure(r["cpu_us_per_record"] for r in kafkas),
        }
        for kind in measuring.SINKS:
            ours = runs[f"kafkube sink {kind}"]
            self.results.setdefault("rss", {}).setdefault(kind, {})["1M"] = figure(
                r["peak_rss_mb"] for r in ours
            )
            sinks[kind] = _sink_figures(ours, kafkas, paired=kind != "iceberg")
        avros = runs["kafkube sink file"]
        for kind in ("s3", "gcs"):
            sinks[kind]["vs_file"] = _paired(
                runs[f"kafkube sink {kind}"], "records_per_s", avros, "records_per_s"
            )
        for output in measuring.OTHER_FORMATS:
            ours = runs[f"kafkube sink file --format {output}"]
            sinks[f"file_{output}"] = {
                **_sink_figures(ours, kafkas),
                "vs_avro": _paired(ours, "records_per_s", avros, "records_per_s"),
            }
        for converter in measuring.CONNECT_CONVERTERS:
            connects = runs[f"Connect FileStreamSink ({converter})"]
            sinks[f"connect_{converter}"] = {
                "records_per_s": figure(r["records_per_s"] for r in connects),
                "cpu_us_per_record": figure(r["cpu_us_per_record"] for r in connects),
                "runs": connects,
            }
        bytewise = runs["Connect FileStreamSink (bytes)"]
        sinks["file_vs_connect"] = _paired(avros, "records_per_s", bytewise, "records_per_s")
        sinks["file_cpu_vs_connect"] = _paired(
            avros, "cpu_us_per_record", bytewise, "cpu_us_per_record"
        )
        self.results["sinks"] = sinks
        self._sink_memory(max_records=rotation[0])

    # --- registry mode ----------------------------------------------------------------------------

    def registry(self) -> None:
        """The producer and every sink with and without the stack's Apicurio, at a smaller
        size than their own sections: 200k events, 100k records (the latter also the sinks'
        100k memory point). Ratios against the Kafka tools' figures of those sections."""
        if "producer" not in self.results or "sinks" not in self.results:
            raise click.UsageError("registry mode is measured after the producer and the sinks")
        url = self.cluster.endpoints.schema_registry_url
        stream = self._first(self.count(200_000))
        kafka_producer = self.results["producer"]["kafka_records_per_s"]["median"]
        registry: dict[str, Any] = {"producer": {}}
        for mode, flag in (("ratio_without", None), ("ratio", url)):
            runs = self.repeat(
                f"kafkube produce ({'registry' if flag else 'no registry'})",
                lambda i, f=flag: measuring.producer_run(
                    self.cluster, stream, self.log(f"producer-registry-{f is not None}-{i}"),
                    registry=f,
                ),
            )  # fmt: skip
            registry["producer"][mode] = _median(runs, "events_per_s") / kafka_producer
            if flag:
                registry["producer"]["ours_events_per_s"] = figure(r["events_per_s"] for r in runs)
        total = self.count(100_000)
        topic = self.cluster.topic("bench-sinks-registry", PARTITIONS)
        with SchemaRegistry({"url": url}) as client:
            writer = latest_version()
            codec = Codec(
                writer=writer, writer_id=client.register(f"{topic}-value", writer.schema_json)
            )
        self.cluster.fill(topic, encoded(self.stream(), total, codec), PARTITIONS)
        plain = self._filled("bench-sinks", total)
        kafka_sinks = self.results["sinks"]["kafka_records_per_s"]["median"]
        rotation = (total // PARTITIONS // 8, 3600.0)
        for kind in measuring.SINKS:
            what = f"kafkube sink {kind} 100k"
            without = self.repeat(what, self._sink_run(what, kind, plain, total, rotation=rotation))
            self.results["rss"][kind]["100k"] = figure(r["peak_rss_mb"] for r in without)
            what = f"kafkube sink {kind} (registry)"
            runs = self.repeat(
                what, self._sink_run(what, kind, topic, total, rotation=rotation, registry=url)
            )
            registry[kind] = {
                "ours_records_per_s": figure(r["records_per_s"] for r in runs),
                "ratio": _median(runs, "records_per_s") / kafka_sinks,
                "ratio_without": _median(without, "records_per_s") / kafka_sinks,
            }
        self.cluster.drop(topic, plain)
        self.results["registry"] = registry

    def _first(self, events: int) -> Path:
        """The first ``events`` of the recorded stream, as a recording of its own."""
        part = self.work / f"watch-{events}.jsonl"
        if not part.exists():
            with (
                self.stream().open(encoding="utf-8") as source,
                part.open("w", encoding="utf-8") as out,
            ):
                for _, line in zip(range(events), source, strict=False):
                    out.write(line)
        return part

    def _sink_memory(self, *, max_records: int) -> None:
        """Peak RSS of the three sinks side by side through 10k records (which changes their
        time but not their memory). The 1M point is the throughput runs' (each sink alone
        through the producer's topic), the 100k point registry mode's runs without it."""
        topic = self._filled("bench-rss-10k", self.count(10_000))
        runs = self.repeat(
            "sinks RSS 10k",
            lambda _: measuring.sinks_together(
                self.cluster, self.stores, topic, max_records=max_records, work=self.work
            ),
        )
        for kind in measuring.SINKS:
            self.results["rss"].setdefault(kind, {})["10k"] = figure(r[kind] for r in runs)
        self.cluster.drop(topic)

    def scaling(self) -> None:
        """One, two and four file sink instances in one group: records/s, and the CPU a
        record costs (all members together). On two cores shared with the broker the rate
        cannot grow with the members; the CPU per record says what a member costs."""
        total = self.count(240_000)
        scaling, cpu = {}, {}
        for instances in (1, 2, 4):
            topic = self._filled(f"bench-scale-{instances}", total, instances)
            runs = self.repeat(
                f"file sink x{instances}",
                lambda _, n=instances, t=topic: measuring.scaling_run(
                    self.cluster, self.stores, t, total, n,
                    max_records=total // n // 4, work=self.work,
                ),
            )  # fmt: skip
            scaling[str(instances)] = figure(r["records_per_s"] for r in runs)
            cpu[str(instances)] = figure(r["cpu_us_per_record"] for r in runs)
            self.cluster.drop(topic)
        self.results["scaling"] = {
            "records": total,
            "records_per_s": scaling,
            "cpu_us_per_record": cpu,
        }

    # --- latency and pace -----------------------------------------------------------------------

    def latency(self) -> None:
        runs = self.repeat(
            "latency",
            lambda _: measuring.latency_run(
                self.cluster, self.stores, self.work, seconds=max(4.0, 6 * self.scale), rate=200
            ),
        )
        self.results["latency"] = {
            kind: {q: figure(r[kind][q] for r in runs) for q in ("p50", "p99", "max")}
            for kind in measuring.SINKS
        }

    def pace(self) -> None:
        events = self.count(3_000)
        runs = self.repeat(
            "watch pace", lambda _: measuring.pace_run(self.cluster, self.work, events=events)
        )
        self.results["watch_pace"] = {
            "events": events,
            "bare_watch_per_s": figure(r["bare_watch_per_s"] for r in runs),
            "producer_per_s": figure(r["producer_per_s"] for r in runs),
            "ratio": figure(r["ratio"] for r in runs),
        }

    def relist(self) -> None:
        """The producer's list of a namespace of 20k events against a bare paged list of
        them: the events are made once, each run lists them anew (a fresh topic and state).
        Not 100k: this API server makes about 350 events a second on 2 cores (five minutes)."""
        events = self.count(20_000)
        _say(f"relist: making {events} events")
        with measuring.namespace_of_events(self.cluster, events=events) as namespace:
            runs = self.repeat(
                "relist", lambda _: measuring.relist_run(self.cluster, self.work, namespace)
            )
        self.results["relist_pace"] = {
            "events": runs[0]["events"],
            "bare_list_per_s": figure(r["bare_list_per_s"] for r in runs),
            "producer_per_s": figure(r["producer_per_s"] for r in runs),
            "ratio": figure(r["ratio"] for r in runs),
        }

    # --- start-up -------------------------------------------------------------------------------

    def startup(self) -> None:
        """What a crash's recovery and a new user feel: ``kafkube --help``; a producer
        restarted with 10,000 state records, exec to watching; the file sink restarted in its
        group with records waiting, exec to its first durable batch."""
        helps = self.repeat("kafkube --help", lambda _: {"seconds": measuring.help_seconds()}, 5)
        events = max(100, round(10_000 * self.scale))  # a state record each, and a checkpoint
        _say(f"startup: making {events} events")
        with measuring.namespace_of_events(self.cluster, events=events) as namespace:
            producers = measuring.producer_restarts(self.cluster, self.work, namespace, self.runs)
        for index, run in enumerate(producers):
            _say(f"  producer restart run {index + 1}: {_brief(run)}")
        values = encoded(self.stream(), PARTITIONS * 500)
        sinks = measuring.sink_restarts(
            self.cluster, self.stores, self.work, values, partitions=PARTITIONS, runs=self.runs
        )
        for index, run in enumerate(sinks):
            _say(f"  sink restart run {index + 1}: {_brief(run)}")
        self.results["startup"] = {
            "help_s": figure(r["seconds"] for r in helps),
            "producer_watching_s": figure(r["seconds"] for r in producers),
            "producer_state_records": producers[0]["state_records"],
            "sink_first_write_s": figure(r["seconds"] for r in sinks),
            "sink_batch_records": len(values),
        }

    # --- the summary ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        r = self.results
        sinks = r["sinks"]
        return {
            "producer_ratio": r["producer"]["ratio"],
            **{f"{kind}_ratio": sinks[kind]["ratio"] for kind in measuring.SINKS},
            # The basis of the sinks' ratios: Kafka's consumer, warm, on their topic.
            "kafka_consumer_perf_warm_records_per_s": sinks["kafka_records_per_s"]["median"],
            # The file sink's other formats, against Kafka's consumer and against Avro.
            **{
                f"file_{output}_vs_avro": sinks[f"file_{output}"]["vs_avro"]
                for output in measuring.OTHER_FORMATS
            },
            "parquet": {
                **{
                    f"file_{output}_ratio": sinks[f"file_{output}"]["ratio"]
                    for output in measuring.OTHER_FORMATS
                },
                "file_avro_ratio": sinks["file"]["ratio"],
            },
            # User + system CPU of each whole process over its records (the sinks' and
            # Connect's from the first record to the last commit), ours beside Kafka's tools':
            # it holds up better than wall time on 2 shared cores.
            "cpu_us_per_record": {
                "producer": r["producer"]["cpu_us_per_record"]["median"],
                "kafka-producer-perf-test": r["producer"]["kafka_cpu_us_per_record"]["median"],
                **{kind: sinks[kind]["cpu_us_per_record"]["median"] for kind in measuring.SINKS},
                **{
                    f"file_{output}": sinks[f"file_{output}"]["cpu_us_per_record"]["median"]
                    for output in measuring.OTHER_FORMATS
                },
                "kafka-consumer-perf-test": sinks["kafka_cpu_us_per_record"]["median"],
                **{
                    f"connect-file-sink ({c}, first line to last commit)": sinks[f"connect_{c}"][
                        "cpu_us_per_record"
                    ]["median"]
                    for c in measuring.CONNECT_CONVERTERS
                },
            },
            **{f"{kind}_vs_file": sinks[kind]["vs_file"] for kind in ("s3", "gcs")},
            "file_vs_connect": sinks["file_vs_connect"],
            "file_cpu_vs_connect": sinks["file_cpu_vs_connect"],
            "connect_records_per_s": {
                c: sinks[f"connect_{c}"]["records_per_s"]["median"]
                for c in measuring.CONNECT_CONVERTERS
            },
            "watch_pace_ratio": r["watch_pace"]["ratio"]["median"],
            "watch_pace_events_per_s": r["watch_pace"]["bare_watch_per_s"]["median"],
            "relist_pace_ratio": r["relist_pace"]["ratio"]["median"],
            "relist_events_per_s": r["relist_pace"]["bare_list_per_s"]["median"],
            # The same ratios in registry mode, beside those without (not a target of their own:
            # registry mode must simply not be slower).
            "registry": {
                part: {"ratio": figures["ratio"], "ratio_without": figures["ratio_without"]}
                for part, figures in r["registry"].items()
            },
            "p99_latency_s": {k: r["latency"][k]["p99"]["median"] for k in measuring.SINKS},
            "startup_s": {
                "help": r["startup"]["help_s"]["median"],
                "producer_watching": r["startup"]["producer_watching_s"]["median"],
                "sink_first_write": r["startup"]["sink_first_write_s"]["median"],
            },
            "rss_mb": {
                process: {size: sizes[size]["median"] for size in ("10k", "100k", "1M")}
                for process, sizes in r["rss"].items()
            },
            "machine": {
                "cores": os.cpu_count(),
                "memory_gb": round(
                    os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30), 1
                ),
                "python": platform.python_version(),
            },
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _paired(
    ours: list[dict[str, Any]], key: str, theirs: list[dict[str, Any]], their_key: str
) -> float:
    """The median of the ratios of runs taken in the same round (``Bench.rounds``): each
    pair ran minutes apart at most, so the machine's drift between rounds cancels out."""
    return float(
        statistics.median(o[key] / t[their_key] for o, t in zip(ours, theirs, strict=True))
    )


def _sink_figures(
    runs: list[dict[str, Any]], kafkas: list[dict[str, Any]], *, paired: bool = True
) -> dict[str, Any]:
    """A sink's figures, and its rate against Kafka's consumer: paired by round where the
    runs were taken in turn with the tool's, else against the median of the tool's runs."""
    ratio = (
        _paired(runs, "records_per_s", kafkas, "records_per_s")
        if paired
        else _median(runs, "records_per_s") / _median(kafkas, "records_per_s")
    )
    return {
        "ours_records_per_s": figure(r["records_per_s"] for r in runs),
        "ours_output_mb_per_s": figure(r["output_mb_per_s"] for r in runs),
        "cpu_us_per_record": figure(r["cpu_us_per_record"] for r in runs),
        "ratio": ratio,
        "runs": runs,
    }


def _brief(result: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in result.items()
        if not isinstance(v, dict | list)
    )


def _met(summary: dict[str, Any]) -> dict[str, bool]:
    rss_growth = max(
        sizes["1M"] / sizes["10k"] for sizes in summary["rss_mb"].values() if sizes["10k"]
    )
    at_least = [k for k in TARGETS if k.endswith(("_ratio", "_vs_avro", "_vs_file", "_vs_connect"))]
    return {
        **{k: summary[k] >= TARGETS[k] for k in at_least if k != "file_cpu_vs_connect"},
        "file_cpu_vs_connect": summary["file_cpu_vs_connect"] <= TARGETS["file_cpu_vs_connect"],
        "p99_latency_s": max(summary["p99_latency_s"].values()) < TARGETS["p99_latency_s"],
        "rss_flat": rss_growth <= TARGETS["rss_growth"],
        "help_s": summary["startup_s"]["help"] <= TARGETS["help_s"],
        "producer_watching_s": (
            summary["startup_s"]["producer_watching"] <= TARGETS["producer_watching_s"]
        ),
    }


@click.command()
@stack_dir_options
@click.option("--name", default="latest", show_default=True, help="results/<name>.json and .png")
@click.option("--runs", type=int, default=3, show_default=True, help="Runs behind each figure.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Shrink record counts.")
@click.option(
    "--only", multiple=True,
    type=click.Choice(SECTIONS),
    help="Measure only these (the summary needs all).",
)  # fmt: skip
def main(  # noqa: PLR0913, PLR0917 - click passes one parameter per option
    cache_dir: Path, state_dir: Path, name: str, runs: int, scale: float, only: tuple[str, ...]
) -> None:
    """Measure kafkube against Kafka's own perf tools, in one run on this machine."""
    began = time.monotonic()
    stack = Stack(StackSettings(cache_dir=cache_dir.expanduser(), state_dir=state_dir.expanduser()))
    _say("bringing the local stack up")
    stack.up()
    # Reading the S3 output back in this process goes through the standard AWS variables.
    os.environ.update({k: v for k, v in stack.endpoints().to_env().items() if k.startswith("AWS_")})
    work = Path(tempfile.mkdtemp(prefix="kafkube-bench-"))
    try:
        cache = cache_dir.expanduser() / "bench"  # recordings are the same for a seed: kept
        cache.mkdir(parents=True, exist_ok=True)
        bench = Bench(Cluster(stack, work), work, cache, runs, scale)
        for part in only or SECTIONS:
            getattr(bench, part)()
        document: dict[str, Any] = {"name": name, "scale": scale, "runs": runs, **bench.results}
        if not only:
            document["summary"] = bench.summary()
            document["targets"] = TARGETS
            document["met"] = _met(document["summary"])
        document["bench_seconds"] = round(time.monotonic() - began)
        RESULTS.mkdir(exist_ok=True)
        # A part measured alone leaves the whole run's results (and the README's) as they are.
        written = RESULTS / (f"{name}.json" if not only else f"partial-{'-'.join(only)}.json")
        written.write_text(json.dumps(document, indent=2) + "\n")
        if not only:
            draw(document, RESULTS / f"{name}.png")
        _say(f"wrote {written} in {document['bench_seconds']} s")
        click.echo(json.dumps(document.get("summary", {}), indent=2))
    except Exception:
        _say(f"failed; the logs of this run are in {work}")
        raise
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
