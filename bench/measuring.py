"""Each measurement of the benchmark: one function, one kind of figure."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from kubernetes import client

from bench.running import Child, Cluster, Finished, figure, kafkube, must, unique, wait_for
from kafkube.compose.stores import StackStores
from kafkube.consumers.destinations import Destination, open_destination
from kafkube.consumers.formats import FORMATS
from kafkube.consumers.local import local_sinks, sink_environment
from kafkube.consumers.positions import Offsets
from kafkube.consumers.reading import read_location
from kafkube.consumers.settings import SINK_TYPES, SinkConfig
from kafkube.core.errors import SourceError
from kafkube.producer.converting import one_pass, to_record
from kafkube.producer.dedup import PublishedState
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.producer.watching import KubeEvents, open_api_client
from kafkube.schemas.codec import Codec
from kafkube.schemas.records import API_CORE_V1

SINKS = tuple(SINK_TYPES)
# The formats the file sink is measured in beside the default one (every other of FORMATS).
DEFAULT_FORMAT = str(SinkConfig.model_fields["format"].default)
OTHER_FORMATS = tuple(name for name in FORMATS if name != DEFAULT_FORMAT)


# --- the producer ---------------------------------------------------------------------------------


def _registry_flag(registry: str | None) -> list[str]:
    return ["--schema-registry-url", registry] if registry else []


def producer_run(
    cluster: Cluster, recording: Path, log: Path, *, keep: bool = False, registry: str | None = None
) -> dict[str, Any]:
    """``kafkube produce --source file`` over a recorded watch stream, to the end of it.
    With ``keep`` its topic stays (its name is in the result) for the sinks to read; with
    ``registry`` it runs in registry mode."""
    topic = unique("bench-producer")
    child = kafkube(
        "produce", "--cluster", "bench", "--source", "file", "--file", str(recording),
        "--topic", topic, "--bootstrap-servers", cluster.bootstrap,
        "--transactional-id", unique("bench-producer"), *_registry_flag(registry), log=log,
    )  # fmt: skip
    done = must(child.wait(), "the producer")
    cluster.drop(*([] if keep else [topic]), f"{topic}.producer-state")
    stats = done.stats
    busy = stats["last_commit_at"] - stats["first_event_at"]
    return {
        "topic": topic,
        "published": stats["published"],
        "seconds": busy,
        "events_per_s": stats["published"] / busy,
        "peak_rss_mb": done.peak_rss_mb,
        "cpu_us_per_record": done.cpu_seconds / stats["published"] * 1e6,
    }


def producer_profile(cluster: Cluster, recording: Path, sample: int = 20_000) -> dict[str, Any]:
    """Where one event's time goes, stage by stage, in one process over a sample of the stream."""
    with recording.open("rb") as stream:
        lines = [line for _, line in zip(range(sample), stream, strict=False)]
    now, codec = datetime.now(UTC), Codec()
    stages: dict[str, float] = {}

    def timed(name: str, work: Callable[[], Any]) -> Any:  # noqa: ANN401 - whatever the stage gives
        began = time.perf_counter()
        result = work()
        stages[name] = (time.perf_counter() - began) / len(lines) * 1e6
        return result

    items = timed("json_parse", lambda: [orjson.loads(line) for line in lines])
    records = [
        to_record(i["object"], watch_type=i["type"], cluster="b", producer_id="b", observed_at=now)
        for i in items
    ]
    # The producer's own path: the compiled one pass from JSON to value where it is built,
    # else the record, then its encoding.
    converter = one_pass(codec, cluster="b", producer_id="b", api_version=API_CORE_V1)
    if converter is not None:
        moment = now.timestamp()
        converted = timed(
            "one_pass", lambda: [converter.convert(i["object"], i["type"], moment) for i in items]
        )
        values = [c[0] for c in converted if c is not None]
        # What the producer does with a recording's line: the line pass, no dict made.
        timed("line_pass", lambda: [converter.convert_line(line, moment) for line in lines])
    else:
        timed(
            "conversion",
            lambda: [
                to_record(i["object"], watch_type=i["type"], cluster="b", producer_id="b",
                          observed_at=now)
                for i in items
            ],
        )  # fmt: skip
        values = timed("avro_encode", lambda: [codec.encode(r) for r in records])
    state = PublishedState(cluster="a", forget_after=3600)
    timed(
        "dedup_state",
        lambda: [
            state.published(r["uid"], r["resource_version"], r["count"], now=0) for r in records
        ],
    )
    topic = cluster.topic("bench-profile", 6)
    producer = Producer(
        {"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all"}
    )

    def produce() -> None:
        for record, value in zip(records, values, strict=True):
            producer.produce(topic, key=record["uid"].encode(), value=value)
            producer.poll(0)

    timed("produce_call", produce)
    producer.flush(60)
    cluster.drop(topic)
    total = sum(stages.values())
    return {
        "sample_events": len(lines),
        "us_per_event": stages,
        "share": {name: cost / total for name, cost in stages.items()},
    }


# --- the sinks ------------------------------------------------------------------------------------


class Stores:
    """Where each sink writes in a run: a fresh folder or prefix, and how to read it back."""

    def __init__(self, cluster: Cluster, work: Path) -> None:
        self.cluster, self.work = cluster, work
        self.bucket = unique("bench")
        self._runs: dict[str, dict[str, SinkConfig]] = {}

    def config(self, kind: str, run: str) -> SinkConfig:
        """Each sink's section for a run, made (and its buckets checked) once per run."""
        if run not in self._runs:
            self._runs[run] = local_sinks(
                StackStores(self.cluster.endpoints),
                bucket=self.bucket,
                folder=self.work / "files",
                prefix=run,
            )
        return self._runs[run][kind]

    def destination(self, kind: str, run: str) -> Destination:
        return open_destination(self.config(kind, run))

    def durable_times(self, kind: str, run: str, topic: str) -> dict[str, float]:
        """When each object of ``topic`` became durable, by the store's own clock (this
        machine's): a table's data file when the snapshot that added it was committed."""
        return dict(self.destination(kind, run).stored(topic))


def start_sink(  # noqa: PLR0913 - where it reads and where it writes
    cluster: Cluster,
    stores: Stores,
    kind: str,
    topic: str,
    group: str,
    *rotation: str,
    log: Path,
    run: str = "",
) -> Child:
    """``kafkube sink KIND`` into a folder or prefix of the bench's store (a fresh one unless
    ``run`` names it)."""
    where = sink_environment(stores.config(kind, run or unique("run")))
    return kafkube(
        "sink", kind, "--bootstrap-servers", cluster.bootstrap, "--topic", topic,
        "--group", group, *rotation, log=log, env={**cluster.env(), **where},
    )  # fmt: skip


def _committed(offsets: Offsets, group: str) -> int:
    return sum(v or 0 for v in offsets.committed(group).values())


def sink_run(  # noqa: PLR0913 - what one run of one sink needs
    cluster: Cluster,
    stores: Stores,
    kind: str,
    topic: str,
    total: int,
    *,
    max_records: int,
    max_age: float,
    log: Path,
    registry: str | None = None,
    output_format: str | None = None,
) -> dict[str, Any]:
    """One sink in its own group, from the start of a filled topic until it committed it all
    (with ``registry``: in registry mode), in ``output_format`` (else its type's own: Avro,
    an Iceberg table's Parquet)."""
    group, run = unique(f"bench-{kind}"), unique("run")
    child = start_sink(
        cluster, stores, kind, topic, group, "--max-records", str(max_records),
        "--max-age-seconds", str(max_age), *(("--format", output_format) if output_format else ()),
        *_registry_flag(registry),
        log=log, run=run,
    )  # fmt: skip
    with Offsets({"bootstrap.servers": cluster.bootstrap}, topic) as offsets:
        wait_for(
            lambda: _committed(offsets, group) >= total or not child.alive(),
            timeout=900,
            what=f"{kind} sink committing {total} records",
        )
    child.signal(signal.SIGTERM)
    done = must(child.wait(), f"the {kind} sink")
    stats = done.stats
    busy = stats["last_commit_at"] - stats["first_record_at"]
    return {
        "records": stats["records"],
        "seconds": busy,
        "records_per_s": stats["records"] / busy,
        "output_mb_per_s": stats["bytes"] / busy / (1 << 20),
        "peak_rss_mb": done.peak_rss_mb,
        # From the first record to the last commit, as Connect's (start-up left out of both).
        "cpu_us_per_record": stats["busy_cpu_seconds"] / stats["records"] * 1e6,
    }


# Connect's converters for the record values, by the name the bench gives them.
CONNECT_CONVERTERS = {
    "bytes": "org.apache.kafka.connect.converters.ByteArrayConverter",
    "string": "org.apache.kafka.connect.storage.StringConverter",
}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far (its /proc stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect_run(  # noqa: PLR0913 - what one run of Connect needs
    cluster: Cluster,
    topic: str,
    records: int,
    total: int,
    work: Path,
    *,
    converter: str,
    libs: Path,
) -> dict[str, Any]:
    """Kafka Connect's standalone worker running its ``FileStreamSinkConnector`` on the topic
    of ``records`` records (one task, read_committed, offsets flushed each second, as its quick
    start has it), in its own group, until it has committed ``total`` (the offsets, commit
    markers included): records/s and CPU per record from its first line written to that
    commit (the JVM's start left out, as kafkube's is). A value's text may hold line breaks:
    the records are counted from the topic, not from the file's lines."""
    name, out = unique("bench-connect"), work / f"{unique('connect')}.txt"
    worker, connector = work / f"{name}-worker.properties", work / f"{name}.properties"
    worker.write_text(
        "\n".join([
            f"bootstrap.servers={cluster.bootstrap}",
            f"key.converter={CONNECT_CONVERTERS['bytes']}",
            f"value.converter={CONNECT_CONVERTERS[converter]}",
            f"offset.storage.file.filename={work / name}.offsets",
            "offset.flush.interval.ms=1000",
            "consumer.isolation.level=read_committed",
            "consumer.auto.offset.reset=earliest",
            "listeners=http://127.0.0.1:0",
        ]) + "\n"
    )  # fmt: skip
    connector.write_text(
        f"name={name}\nconnector.class=org.apache.kafka.connect.file.FileStreamSinkConnector\n"
        f"tasks.max=1\nfile={out}\ntopics={topic}\n"
    )
    log_config = work / "connect-log4j2.properties"
    log_config.write_text("status = warn\nrootLogger.level = WARN\n")
    argv = [
        "java", "-Xmx1g", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={log_config}",
        "-cp", f"{libs}/*", "org.apache.kafka.connect.cli.ConnectStandalone",
        str(worker), str(connector),
    ]  # fmt: skip
    child = Child(argv, work / f"{name}.log")
    group = f"connect-{name}"
    wait_for(
        lambda: (out.exists() and out.stat().st_size > 0) or not child.alive(),
        timeout=300, what="Connect writing its first line", poll=0.01,
    )  # fmt: skip
    first, cpu_first = time.monotonic(), _cpu_seconds(child.process.pid)
    with Offsets({"bootstrap.servers": cluster.bootstrap}, topic) as offsets:
        wait_for(
            _committing(offsets, group, total, child),
            timeout=900, what=f"Connect committing {total} records", poll=0.05,
        )  # fmt: skip
    done, cpu_done = time.monotonic(), _cpu_seconds(child.process.pid)
    child.signal(signal.SIGTERM)
    finished = child.wait()
    written = out.stat().st_size
    out.unlink()
    return {
        "records": records,
        "output_mb": written / (1 << 20),
        "seconds": done - first,
        "records_per_s": records / (done - first),
        "cpu_us_per_record": (cpu_done - cpu_first) / records * 1e6,
        "process_cpu_s": finished.cpu_seconds,
        "peak_rss_mb": finished.peak_rss_mb,
    }


def sinks_together(
    cluster: Cluster, stores: Stores, topic: str, *, max_records: int, work: Path
) -> dict[str, float]:
    """The three sinks at once, each in its own group, through the whole topic: the peak RSS
    of each (running them side by side changes the time, not the memory)."""
    groups = {kind: unique(f"bench-rss-{kind}") for kind in SINKS}
    children = {
        kind: start_sink(
            cluster,
            stores,
            kind,
            topic,
            groups[kind],
            "--max-records",
            str(max_records),
            "--max-age-seconds",
            "1",
            log=work / f"{groups[kind]}.log",
        )
        for kind in SINKS
    }
    with Offsets({"bootstrap.servers": cluster.bootstrap}, topic) as offsets:
        starts, ends = offsets.log_bounds()
        total = sum(offsets.records_ends(starts, ends).values())
        wait_for(
            lambda: (
                all(_committed(offsets, g) >= total for g in groups.values())
                or not all(child.alive() for child in children.values())
            ),
            timeout=900,
            what=f"the three sinks committing {total} records",
        )
    finished = _stop(list(children.values()), "a sink")
    return {kind: done.peak_rss_mb for kind, done in zip(children, finished, strict=True)}


def scaling_run(  # noqa: PLR0913 - what one run needs
    cluster: Cluster,
    stores: Stores,
    topic: str,
    total: int,
    instances: int,
    *,
    max_records: int,
    work: Path,
) -> dict[str, Any]:
    """One file sink group of ``instances`` members on a topic of as many partitions."""
    group, run = unique("bench-scale"), unique("run")  # one group writes to one place
    children = [
        start_sink(
            cluster,
            stores,
            "file",
            topic,
            group,
            "--max-records",
            str(max_records),
            "--max-age-seconds",
            "3600",
            log=work / f"{group}-{n}.log",
            run=run,
        )
        for n in range(instances)
    ]
    with Offsets({"bootstrap.servers": cluster.bootstrap}, topic) as offsets:
        wait_for(
            lambda: (
                _committed(offsets, group) >= total or not all(child.alive() for child in children)
            ),
            timeout=600,
            what=f"{instances} file sinks committing {total} records",
        )
    finished = _stop(children, "a file sink instance")
    stats = [done.stats for done in finished]
    window = max(s["last_commit_at"] for s in stats) - min(
        s["first_record_at"] for s in stats if s["first_record_at"]
    )
    return {
        "instances": instances,
        "records_per_s": total / window,
        "seconds": window,
        # Every member's CPU from its first record to its last commit, over the records: what
        # scaling out costs (start-up left out: it would swamp a short run).
        "cpu_us_per_record": sum(st["busy_cpu_seconds"] for st in stats) / total * 1e6,
    }


# --- end-to-end latency and keeping pace with the API server ----------------------------------


def _start_producer(  # noqa: PLR0913 - where it reads, writes and logs, and as whom
    cluster: Cluster,
    namespace: str,
    topic: str,
    log: Path,
    *,
    until: str = "watching from",
    transactional_id: str = "",
) -> Child:
    """``kafkube produce`` on a namespace, once its log says ``until``."""
    child = kafkube(
        "produce", "--cluster", "bench", "--namespace", namespace, "--topic", topic,
        "--bootstrap-servers", cluster.bootstrap, "--kubeconfig", cluster.endpoints.kubeconfig,
        "--transactional-id", transactional_id or unique("bench-producer"), log=log,
    )  # fmt: skip
    _until_said(child, log, until, "the producer")
    return child


def _until_said(child: Child, log: Path, text: str, who: str) -> None:
    wait_for(
        lambda: text in log.read_text() or not child.alive(),
        timeout=120, what=f"{who} saying {text!r}", poll=0.01,
    )  # fmt: skip


def _published(cluster: Cluster, topic: str) -> int:
    """The records in a topic, counted: its offsets count the producer's commit markers too."""
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "kafkube-bench",  # assign() only: nothing is committed
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = cluster.admin.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        count, ended = 0, set[int]()
        while len(ended) < len(partitions):
            for message in consumer.consume(10_000, timeout=5):
                error = message.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    ended.add(message.partition() or 0)
                else:
                    raise RuntimeError(f"counting {topic}: {error}")
        return count
    finally:
        consumer.close()


def _stop(children: list[Child], what: str) -> list[Finished]:
    for child in children:
        child.signal(signal.SIGTERM)
    return [must(child.wait(), what) for child in children]


def latency_run(
    cluster: Cluster, stores: Stores, work: Path, *, seconds: float, rate: float
) -> dict[str, Any]:
    """Events through the real path, 1 s rotation: from the producer seeing an event (its
    ``observed_at``) to the object holding it being durable, per sink. The events begin once
    every sink has its partitions: a sink's start is not what this measures."""
    namespace, topic = unique("bench-latency"), unique("bench-latency")
    producer = _start_producer(cluster, namespace, topic, work / f"{namespace}-producer.log")
    runs = {kind: unique("run") for kind in SINKS}
    groups = {kind: unique(f"bench-{kind}") for kind in SINKS}
    logs = {kind: work / f"{namespace}-{kind}.log" for kind in SINKS}
    sinks = [
        start_sink(
            cluster,
            stores,
            kind,
            topic,
            groups[kind],
            "--max-age-seconds",
            "1",
            log=logs[kind],
            run=runs[kind],
        )
        for kind in SINKS
    ]
    for kind, sink in zip(SINKS, sinks, strict=True):
        _until_said(sink, logs[kind], "assigned partition", f"the {kind} sink")
    simulate = kafkube(
        "simulate", "--kubeconfig", cluster.endpoints.kubeconfig, "--namespace", namespace,
        "--rate", str(rate), "--count", str(int(rate * seconds)),
        log=work / f"{namespace}-simulate.log",
    )  # fmt: skip
    must(simulate.wait(), "simulate")
    with Offsets({"bootstrap.servers": cluster.bootstrap}, topic) as offsets:

        def all_written() -> bool:
            starts, ends = offsets.log_bounds()
            records = sum(offsets.records_ends(starts, ends).values())
            return records >= int(rate * seconds) and all(
                _committed(offsets, group) >= records for group in groups.values()
            )

        wait_for(all_written, timeout=120, what="every sink writing the latency run", poll=0.5)
    _stop([producer, *sinks], "a latency run process")
    result = {}
    for kind in SINKS:
        durable = stores.durable_times(kind, runs[kind], topic)
        latencies = [
            durable[name] - record["observed_at"].timestamp()
            for name, record in read_location(stores.destination(kind, runs[kind]), topic)
        ]
        cuts = statistics.quantiles(latencies, n=100)
        result[kind] = {"p50": cuts[49], "p99": cuts[98], "max": max(latencies),
                        "records": len(latencies)}  # fmt: skip
    cluster.drop(topic, f"{topic}.producer-state")
    return result


def pace_run(cluster: Cluster, work: Path, *, events: int, writers: int = 3) -> dict[str, Any]:
    """``writers`` processes of ``kafkube simulate`` writing as fast as the API server takes
    them; the producer's publish rate against a bare watch of the same namespace that only
    reads the stream."""
    namespace, topic = unique("bench-pace"), unique("bench-pace")
    producer = _start_producer(cluster, namespace, topic, work / f"{namespace}-producer.log")
    seen: list[float] = []
    stop = threading.Event()
    with open_api_client(cluster.endpoints.kubeconfig) as api_client:
        bare = KubeEvents(api_client, api_version="v1", namespace=namespace)
        start_rv = bare.list().resource_version

        def read() -> None:
            try:
                for item in bare.watch(start_rv, timeout_seconds=600):
                    if item.type != "BOOKMARK":
                        seen.append(time.time())
                    if stop.is_set():
                        return
            except SourceError:
                if not stop.is_set():
                    raise  # else: the stream was cut on purpose, at the end

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        simulations = [
            kafkube(
                "simulate", "--kubeconfig", cluster.endpoints.kubeconfig, "--namespace", namespace,
                "--rate", "1000000", "--count", str(events // writers), "--seed", str(seed),
                log=work / f"{namespace}-simulate-{seed}.log",
            )
            for seed in range(writers)
        ]  # fmt: skip
        for simulation in simulations:
            must(simulation.wait(), "simulate")
        events = events // writers * writers
        wait_for(lambda: len(seen) >= events, timeout=120, what="the bare watch seeing it all")
        stop.set()
        bare.stop()
    wait_for(
        lambda: _published(cluster, topic) >= events,
        timeout=120, what="the producer publishing it all", poll=0.5,
    )  # fmt: skip
    last_publish = _last_record_time(cluster, topic)
    _stop([producer], "the pace run's producer")
    cluster.drop(topic, f"{topic}.producer-state")
    first = seen[0]
    bare_rate = (len(seen) - 1) / (seen[-1] - first)
    producer_rate = (events - 1) / (last_publish - first)
    return {
        "events": events,
        "bare_watch_per_s": bare_rate,
        "producer_per_s": producer_rate,
        "ratio": producer_rate / bare_rate,
    }


@contextlib.contextmanager
def namespace_of_events(cluster: Cluster, *, events: int, writers: int = 8) -> Iterator[str]:
    """A namespace holding ``events`` synthetic events (``writers`` creates at a time), for
    as long as the block runs."""
    namespace = unique("bench-relist")
    with open_api_client(cluster.endpoints.kubeconfig) as api_client:
        _create_events(api_client, namespace, events, writers)
    try:
        yield namespace
    finally:
        with open_api_client(cluster.endpoints.kubeconfig) as api_client:
            client.CoreV1Api(api_client).delete_namespace(namespace)


def relist_run(cluster: Cluster, work: Path, namespace: str) -> dict[str, Any]:
    """A producer's first list of a namespace, each event published, against a bare paged
    list of the same events: what a producer does at start, and again when its checkpoint
    has expired. Its time runs from the moment it says it lists to the broker's time of its
    last record."""
    topic = unique("bench-relist")
    with open_api_client(cluster.endpoints.kubeconfig) as api_client:
        bare = KubeEvents(api_client, api_version="v1", namespace=namespace)
        began = time.monotonic()
        listed = len(bare.list().items)
        bare_seconds = time.monotonic() - began
    log = work / f"{topic}-producer.log"
    producer = _start_producer(cluster, namespace, topic, log, until="listing events")
    listing_at = time.time()
    wait_for(
        lambda: _published(cluster, topic) >= listed,
        timeout=300, what="the producer publishing it", poll=0.5,
    )  # fmt: skip
    producer_seconds = _last_record_time(cluster, topic) - listing_at
    _stop([producer], "the relist run's producer")
    cluster.drop(topic, f"{topic}.producer-state")
    return {
        "events": listed,
        "bare_list_s": bare_seconds,
        "producer_relist_s": producer_seconds,
        "bare_list_per_s": listed / bare_seconds,
        "producer_per_s": listed / producer_seconds,
        "ratio": bare_seconds / producer_seconds,
    }


def _create_events(api_client: Any, namespace: str, events: int, writers: int) -> None:  # noqa: ANN401 - the kubernetes client's
    """``events`` synthetic events in one namespace, ``writers`` requests at a time."""
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    creates = (op for op in SyntheticCluster(seed=5).operations() if op.action == "create")
    bodies = []
    for index, operation in zip(range(events), creates, strict=False):
        body = {**operation.event, "metadata": {**operation.event["metadata"]}}
        body["metadata"].update(namespace=namespace, name=f"{operation.name}.{index}")
        body["involvedObject"] = {**body["involvedObject"], "namespace": namespace}
        bodies.append(body)

    def create(body: dict[str, Any]) -> None:
        core.create_namespaced_event(
            namespace, cast("client.CoreV1Event", body), _preload_content=False
        )

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(create, bodies))


# --- start-up ---------------------------------------------------------------------------------


def help_seconds() -> float:
    """``kafkube --help`` as a user types it (the console script), exec to exit."""
    script = Path(sys.executable).with_name("kafkube")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "kafkube"]
    began = time.perf_counter()
    subprocess.run([*argv, "--help"], capture_output=True, check=True, timeout=60)
    return time.perf_counter() - began


def producer_restarts(
    cluster: Cluster, work: Path, namespace: str, runs: int
) -> list[dict[str, Any]]:
    """A producer restarted as a pod is (the same transactional id) on a namespace it has
    published, its state topic holding a record for each event there: exec to watching (its
    log saying so), the state read and the watch resumed from its checkpoint on the way."""
    topic, who = unique("bench-startup"), unique("bench-startup")
    first = _start_producer(
        cluster, namespace, topic, work / f"{topic}-first.log", transactional_id=who
    )
    _stop([first], "the first producer")
    out = []
    for index in range(runs):
        log = work / f"{topic}-{index}.log"
        child = _start_producer(cluster, namespace, topic, log, transactional_id=who)
        seconds = time.monotonic() - child.began
        _stop([child], "a restarted producer")
        said = re.search(r"resuming cluster bench: (\d+) state records", log.read_text())
        if said is None:
            raise RuntimeError(f"the restarted producer did not say its state:\n{log.read_text()}")
        out.append({"seconds": seconds, "state_records": int(said[1])})
    cluster.drop(topic, f"{topic}.producer-state")
    return out


def _committing(offsets: Offsets, group: str, count: int, child: Child) -> Callable[[], bool]:
    """Whether the group has committed ``count`` records, or its sink has died."""
    return lambda: _committed(offsets, group) >= count or not child.alive()


def sink_restarts(  # noqa: PLR0913 - what the restarts need
    cluster: Cluster,
    stores: Stores,
    work: Path,
    values: list[tuple[bytes, bytes]],
    *,
    partitions: int,
    runs: int,
) -> list[dict[str, Any]]:
    """The file sink restarted in its group with ``values`` waiting on each partition (a
    whole batch each): exec to its first batch durable, which is when it commits it. A first
    start (a fresh group) goes before the measured restarts."""
    topic = cluster.topic("bench-restart", partitions)
    group, run = unique("bench-restart"), unique("run")
    batch = str(len(values) // partitions)
    out = []
    with Offsets({"bootstrap.servers": cluster.bootstrap}, topic) as offsets:
        for index in range(runs + 1):
            before = _committed(offsets, group)
            cluster.fill(topic, values, partitions)
            child = start_sink(
                cluster, stores, "file", topic, group, "--max-records", batch,
                "--max-age-seconds", "60", log=work / f"{topic}-{index}.log", run=run,
            )  # fmt: skip
            wait_for(
                _committing(offsets, group, before + 1, child),
                timeout=120, what="the restarted sink's first write", poll=0.01,
            )  # fmt: skip
            seconds = time.monotonic() - child.began
            wait_for(
                _committing(offsets, group, before + len(values), child),
                timeout=120, what="the restarted sink writing it all",
            )  # fmt: skip
            _stop([child], "a restarted sink")
            if index:
                out.append({"seconds": seconds})
    cluster.drop(topic)
    return out


def _last_record_time(cluster: Cluster, topic: str) -> float:
    from confluent_kafka.admin._listoffsets import OffsetSpec  # noqa: PLC0415

    request = {
        TopicPartition(topic, p): OffsetSpec.max_timestamp()  # type: ignore[no-untyped-call]
        for p in cluster.admin.list_topics(topic, timeout=30).topics[topic].partitions
    }
    answers = [f.result(30) for f in cluster.admin.list_offsets(request).values()]
    return float(max(a.timestamp for a in answers)) / 1000


__all__ = [
    "connect_run",
    "figure",
    "help_seconds",
    "latency_run",
    "namespace_of_events",
    "pace_run",
    "producer_profile",
    "producer_restarts",
    "producer_run",
    "relist_run",
    "scaling_run",
    "sink_restarts",
    "sink_run",
    "sinks_together",
]
