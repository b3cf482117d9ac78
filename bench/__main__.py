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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bench import measuring
from bench.chart import draw
from bench.running import Cluster, consumer_perf, encoded, figure, producer_perf, recording
from kafkube.cli.options import stack_dir_options
from kafkube.compose.settings import StackSettings
from kafkube.compose.stack import Stack
from kafkube.consumers.settings import SINK_TYPES
from kafkube.registry import SchemaRegistry
from kafkube.schemas.codec import Codec, latest_version

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 6
TARGETS = {
    "producer_ratio": 0.3,
    # Every sink type: a local disk's writes against Kafka's consumer, an object store's.
    **{
        f"{kind}_ratio": 0.5 if SINK_TYPES[kind].scheme is None else 0.3 for kind in measuring.SINKS
    },
    "watch_pace_ratio": 0.95,
    "p99_latency_s": 2.0,
    "rss_growth": 1.2,  # peak RSS at 1M over peak RSS at 10k
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
        out = []
        for index in range(n or self.runs):
            began = time.monotonic()
            out.append(run(index))
            _say(f"  {what} run {index + 1}: {_brief(out[-1])} ({time.monotonic() - began:.0f} s)")
        return out

    # --- the producer ---------------------------------------------------------------------------

    def producer(self) -> None:
        events = self.count(1_000_000)
        full = self.stream()
        sample = encoded(full, 20_000)
        size = round(statistics.mean(len(value) for _, value in sample))
        _say(f"producer: {events} recorded watch events, {size} B a record encoded")
        ours = self.repeat(
            "kafkube produce",
            lambda i: measuring.producer_run(
                self.cluster, full, self.log(f"producer-{i}"), keep=i == 0
            ),
        )
        self.big_topic = ours[0]["topic"]  # what the producer wrote: the sinks' 1M topic
        kafkas = self.repeat(
            "kafka-producer-perf-test",
            lambda i: producer_perf(
                self.cluster, records=events, size=size, log=self.log(f"perf-producer-{i}")
            ),
        )
        profile = measuring.producer_profile(self.cluster, full)
        _say(f"  profile (us/event): {_brief(profile['us_per_event'])}")
        self.results["producer"] = {
            "events": events,
            "record_bytes": size,
            "ours_events_per_s": figure(r["events_per_s"] for r in ours),
            "kafka_records_per_s": figure(r["records_per_s"] for r in kafkas),
            "ratio": _median(ours, "events_per_s") / _median(kafkas, "records_per_s"),
            "profile": profile,
            "runs": {"ours": ours, "kafka": kafkas},
        }
        self.results.setdefault("rss", {}).setdefault("producer", {})["1M"] = figure(
            r["peak_rss_mb"] for r in ours
        )
        for label, small in (("10k", 10_000), ("100k", 100_000)):
            part = self.work / f"watch-{label}.jsonl"
            with full.open(encoding="utf-8") as source, part.open("w", encoding="utf-8") as out:
                for _, line in zip(range(self.count(small)), source, strict=False):
                    out.write(line)
            runs = self.repeat(
                f"producer RSS {label}",
                lambda i, p=part, n=label: measuring.producer_run(
                    self.cluster, p, self.log(f"producer-{n}-{i}")
                ),
            )
            self.results["rss"]["producer"][label] = figure(r["peak_rss_mb"] for r in runs)

    # --- the sinks ------------------------------------------------------------------------------

    def _filled(self, prefix: str, total: int, partitions: int = PARTITIONS) -> str:
        topic = self.cluster.topic(prefix, partitions)
        self.cluster.fill(topic, encoded(self.stream(), total), partitions)
        return topic

    def sinks(self) -> None:
        total = self.count(100_000)  # also the 100k point of the sinks' memory
        per_partition = total // PARTITIONS
        topic = self._filled("bench-sinks", total)
        _say(f"sinks: a topic of {total} records in {PARTITIONS} partitions")
        kafkas = self.repeat(
            "kafka-consumer-perf-test",
            lambda i: consumer_perf(
                self.cluster, topic, records=total, log=self.log(f"perf-consumer-{i}")
            ),
        )
        sinks: dict[str, Any] = {
            "records": total,
            "kafka_records_per_s": figure(r["records_per_s"] for r in kafkas),
            "kafka_mb_per_s": figure(r["mb_per_s"] for r in kafkas),
        }
        for kind in measuring.SINKS:
            ours = self.repeat(
                f"kafkube sink {kind}",
                lambda i, k=kind: measuring.sink_run(
                    self.cluster, self.stores, k, topic, total,
                    max_records=per_partition // 8, max_age=3600, log=self.log(f"sink-{k}-{i}"),
                ),
            )  # fmt: skip
            self.results.setdefault("rss", {}).setdefault(kind, {})["100k"] = figure(
                r["peak_rss_mb"] for r in ours
            )
            sinks[kind] = {
                "ours_records_per_s": figure(r["records_per_s"] for r in ours),
                "ours_output_mb_per_s": figure(r["output_mb_per_s"] for r in ours),
                "ratio": _median(ours, "records_per_s") / _median(kafkas, "records_per_s"),
                "runs": ours,
            }
        # Parquet beside Avro: the file sink again on the same topic, in the same run.
        parquet = self.repeat(
            "kafkube sink file --format parquet",
            lambda i: measuring.sink_run(
                self.cluster, self.stores, "file", topic, total,
                max_records=per_partition // 8, max_age=3600, log=self.log(f"sink-parquet-{i}"),
                output_format="parquet",
            ),
        )  # fmt: skip
        sinks["file_parquet"] = {
            "ours_records_per_s": figure(r["records_per_s"] for r in parquet),
            "ours_output_mb_per_s": figure(r["output_mb_per_s"] for r in parquet),
            "ratio": _median(parquet, "records_per_s") / _median(kafkas, "records_per_s"),
            "runs": parquet,
        }
        self.cluster.drop(topic)
        if self.big_topic:  # Kafka's tool on a million records too: warm, it is faster
            big = self.results["producer"]["events"]
            warm = self.repeat(
                "kafka-consumer-perf-test on the producer's topic",
                lambda i: consumer_perf(
                    self.cluster, self.big_topic, records=big, log=self.log(f"perf-big-{i}")
                ),
            )
            sinks["kafka_records_per_s_at_1M"] = figure(r["records_per_s"] for r in warm)
        self.results["sinks"] = sinks
        self._sink_memory(max_records=per_partition // 8)

    # --- registry mode ----------------------------------------------------------------------------

    def registry(self) -> None:
        """The producer and every sink again in registry mode (the stack's Apicurio), against
        the same Kafka figures as the registry-less runs (producer and sinks run first)."""
        if "producer" not in self.results or "sinks" not in self.results:
            raise click.UsageError("registry mode is measured after the producer and the sinks")
        url = self.cluster.endpoints.schema_registry_url
        ours = self.repeat(
            "kafkube produce (registry)",
            lambda i: measuring.producer_run(
                self.cluster, self.stream(), self.log(f"producer-registry-{i}"), registry=url
            ),
        )
        kafka_producer = self.results["producer"]["runs"]["kafka"]
        registry: dict[str, Any] = {
            "producer": {
                "ours_events_per_s": figure(r["events_per_s"] for r in ours),
                "ratio": _median(ours, "events_per_s") / _median(kafka_producer, "records_per_s"),
                "ratio_without": self.results["producer"]["ratio"],
            },
        }
        total = self.results["sinks"]["records"]
        topic = self.cluster.topic("bench-sinks-registry", PARTITIONS)
        with SchemaRegistry({"url": url}) as client:
            writer = latest_version()
            codec = Codec(
                writer=writer, writer_id=client.register(f"{topic}-value", writer.schema_json)
            )
        self.cluster.fill(topic, encoded(self.stream(), total, codec), PARTITIONS)
        kafka_sinks = self.results["sinks"]["kafka_records_per_s"]["median"]
        for kind in measuring.SINKS:
            runs = self.repeat(
                f"kafkube sink {kind} (registry)",
                lambda i, k=kind: measuring.sink_run(
                    self.cluster, self.stores, k, topic, total,
                    max_records=total // PARTITIONS // 8, max_age=3600,
                    log=self.log(f"sink-registry-{k}-{i}"), registry=url,
                ),
            )  # fmt: skip
            registry[kind] = {
                "ours_records_per_s": figure(r["records_per_s"] for r in runs),
                "ratio": _median(runs, "records_per_s") / kafka_sinks,
                "ratio_without": self.results["sinks"][kind]["ratio"],
            }
        self.cluster.drop(topic)
        self.results["registry"] = registry

    def _sink_memory(self, *, max_records: int) -> None:
        """Peak RSS of each sink through 10k and 1M records (the producer's topic); the three
        run side by side, which changes their time but not their memory. The 100k point is
        the throughput runs' (each sink alone, the same batches)."""
        rss = self.results.setdefault("rss", {})
        topics = {"10k": self._filled("bench-rss-10k", self.count(10_000))}
        if self.big_topic:
            topics["1M"] = self.big_topic
        for label, topic in topics.items():
            runs = self.repeat(
                f"sinks RSS {label}",
                lambda _, t=topic: measuring.sinks_together(
                    self.cluster, self.stores, t, max_records=max_records, work=self.work
                ),
                n=1 if label == "1M" else None,  # a million records three times: minutes
            )
            for kind in measuring.SINKS:
                rss.setdefault(kind, {})[label] = figure(r[kind] for r in runs)
            self.cluster.drop(topic)

    def scaling(self) -> None:
        total = self.count(24_000)
        scaling = {}
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
            self.cluster.drop(topic)
        self.results["scaling"] = {"records": total, "records_per_s": scaling}

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
        events = self.count(1_500)
        runs = self.repeat(
            "watch pace", lambda _: measuring.pace_run(self.cluster, self.work, events=events)
        )
        self.results["watch_pace"] = {
            "events": events,
            "bare_watch_per_s": figure(r["bare_watch_per_s"] for r in runs),
            "producer_per_s": figure(r["producer_per_s"] for r in runs),
            "ratio": figure(r["ratio"] for r in runs),
        }

    # --- the summary ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        r = self.results
        return {
            "producer_ratio": r["producer"]["ratio"],
            **{f"{kind}_ratio": r["sinks"][kind]["ratio"] for kind in measuring.SINKS},
            # Not a target of its own: Parquet beside Avro, the file sink on the same topic.
            "parquet": {
                "file_parquet_ratio": r["sinks"]["file_parquet"]["ratio"],
                "file_avro_ratio": r["sinks"]["file"]["ratio"],
            },
            "watch_pace_ratio": r["watch_pace"]["ratio"]["median"],
            # The same ratios in registry mode, beside those without (not a target of their own:
            # registry mode must simply not be slower).
            "registry": {
                part: {"ratio": figures["ratio"], "ratio_without": figures["ratio_without"]}
                for part, figures in r["registry"].items()
            },
            "p99_latency_s": {k: r["latency"][k]["p99"]["median"] for k in measuring.SINKS},
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
    return {
        **{k: summary[k] >= TARGETS[k] for k in TARGETS if k.endswith("_ratio")},
        "p99_latency_s": max(summary["p99_latency_s"].values()) < TARGETS["p99_latency_s"],
        "rss_flat": rss_growth <= TARGETS["rss_growth"],
    }  # fmt: skip


@click.command()
@stack_dir_options
@click.option("--name", default="latest", show_default=True, help="results/<name>.json and .png")
@click.option("--runs", type=int, default=3, show_default=True, help="Runs behind each figure.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Shrink record counts.")
@click.option(
    "--only", multiple=True,
    type=click.Choice(["producer", "sinks", "registry", "scaling", "latency", "pace"]),
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
        for part in only or ("producer", "sinks", "registry", "scaling", "latency", "pace"):
            getattr(bench, part)()
        document: dict[str, Any] = {"name": name, "scale": scale, "runs": runs, **bench.results}
        if not only:
            document["summary"] = bench.summary()
            document["targets"] = TARGETS
            document["met"] = _met(document["summary"])
        document["bench_seconds"] = round(time.monotonic() - began)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
        if not only:
            draw(document, RESULTS / f"{name}.png")
        _say(f"wrote {RESULTS / name}.json in {document['bench_seconds']} s")
        click.echo(json.dumps(document.get("summary", {}), indent=2))
    except Exception:
        _say(f"failed; the logs of this run are in {work}")
        raise
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
