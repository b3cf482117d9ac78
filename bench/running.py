"""Running what is measured: kafkube's commands and Kafka's perf tools, as processes, with
their peak memory; topics filled with realistic records; figures as median, min and max."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from kafkube.core.waiting import Deadline
from kafkube.producer.converting import to_record
from kafkube.producer.simulating import record_watch_stream
from kafkube.producer.synthetic import SyntheticCluster
from kafkube.schemas.codec import Codec


def figure(values: Iterable[float]) -> dict[str, Any]:
    """A figure as the bench reports it: the median of the runs, their min and max, the runs."""
    runs = list(values)
    return {
        "median": statistics.median(runs),
        "min": min(runs),
        "max": max(runs),
        "runs": runs,
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Finished:
    code: int
    seconds: float  # wall clock, start to exit
    peak_rss_mb: float  # the process's own high-water mark (VmHWM)
    log: str
    stats: dict[str, Any] = field(default_factory=dict)  # kafkube's {"stopped": ...} line
    cpu_seconds: float = 0.0  # user + system, the whole process (start-up included)


class Child:
    """One process of the benchmark, and its peak RSS.

    The peak is the kernel's high-water mark of the process's own memory (VmHWM), read
    while it runs: wait4's ru_maxrss would also count the pages of this process that the
    child shared between fork and exec."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.began = time.monotonic()
        self.peak_kib = 0
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        self._watcher = threading.Thread(target=self._watch_memory, daemon=True)
        self._watcher.start()

    def _watch_memory(self) -> None:
        status = Path(f"/proc/{self.process.pid}/status")
        while self.process.returncode is None:
            try:
                text = status.read_text()
            except OSError:
                return  # gone
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            time.sleep(0.05)

    def alive(self) -> bool:
        """Whether it runs; asked without reaping it (Popen.poll would, and lose its rusage)."""
        if self.process.returncode is not None:
            return False
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.process.pid, flags) is None

    def signal(self, number: int) -> None:
        if self.alive():
            os.kill(self.process.pid, number)  # not Popen's: it polls, and would reap it

    def wait(self, timeout: float = 900) -> Finished:
        """Its exit, with the CPU time the kernel counted for it (wait4's rusage)."""
        deadline = Deadline(timeout)
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                break
            if deadline.passed():
                self.signal(signal.SIGKILL)
                raise TimeoutError(f"{' '.join(self.process.args)}: not done in {timeout:.0f} s")  # type: ignore[arg-type]
            time.sleep(0.02)
        code = self.process.returncode = os.waitstatus_to_exitcode(status)
        self._watcher.join(1)
        text = self.log.read_text(errors="replace")
        stats: dict[str, Any] = {}
        for line in text.splitlines():
            if line.startswith('{"stopped"'):
                stats = json.loads(line)["stopped"]
        return Finished(
            code=code,
            seconds=time.monotonic() - self.began,
            peak_rss_mb=self.peak_kib / 1024,
            log=text,
            stats=stats,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
        )


def kafkube(*args: str, log: Path, env: dict[str, str] | None = None) -> Child:
    """A kafkube command; its log written as it goes (a run may wait for a line of it)."""
    return Child(
        [sys.executable, "-m", "kafkube", *args], log, {"PYTHONUNBUFFERED": "1", **(env or {})}
    )


def must(finished: Finished, what: str) -> Finished:
    if finished.code != 0:
        raise RuntimeError(f"{what} exited with {finished.code}:\n{finished.log[-3000:]}")
    return finished


class Cluster:
    """The stack the benchmark runs on, and what it does with Kafka."""

    def __init__(self, stack: Stack, work: Path) -> None:
        self.stack = stack
        self.endpoints: Endpoints = stack.endpoints()
        self.bootstrap = self.endpoints.kafka_bootstrap
        self.work = work
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})

    def env(self) -> dict[str, str]:
        """The stack's variables, but for the registry's: a run in registry mode says so with
        its flag, every other one measures the registry-less framing."""
        variables = self.endpoints.to_env()
        variables.pop("SCHEMA_REGISTRY_URL")
        return variables

    def topic(self, prefix: str, partitions: int) -> str:
        name = unique(prefix)
        new = NewTopic(name, num_partitions=partitions, replication_factor=1)
        self.admin.create_topics([new])[name].result(30)
        return name

    def drop(self, *topics: str) -> None:
        """Free the disk a run used; the next run has its own topics."""
        for future in self.admin.delete_topics(list(topics)).values():
            future.result(30)

    def fill(self, topic: str, values: list[tuple[bytes, bytes]], partitions: int) -> None:
        """Each partition gets exactly len(values) / partitions records, in order."""
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "batch.size": 1 << 20,
                "queue.buffering.max.messages": 500_000,
            }
        )
        for index, (key, value) in enumerate(values):
            while True:
                try:
                    producer.produce(topic, value=value, key=key, partition=index % partitions)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120):
            raise RuntimeError(f"filling {topic}: records left unsent")

    def kafka_tool(self, tool: str, *args: str, log: Path) -> Finished:
        argv = self.stack.kafka_tool_argv(tool, list(args), heap_mb=1024)
        return must(Child(argv, log).wait(timeout=600), tool)


def recording(path: Path, count: int, seed: int = 7) -> Path:
    """A watch stream as the API server sends it: one JSON watch event a line."""
    if not path.exists():
        with path.open("w", encoding="utf-8") as out:
            record_watch_stream(SyntheticCluster(seed).operations(), out, limit=count, seed=seed)
    return path


def encoded(path: Path, count: int, codec: Codec | None = None) -> list[tuple[bytes, bytes]]:
    """The first ``count`` events of a recording as the producer encodes them: (key, value);
    ``codec`` frames them (default: the registry-less framing)."""
    codec, now, out = codec or Codec(), datetime.now(UTC), []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            record = to_record(
                item["object"], watch_type=item["type"], cluster="bench", producer_id="bench",
                observed_at=now,
            )  # fmt: skip
            out.append((record["uid"].encode(), codec.encode(record)))
            if len(out) == count:
                break
    return out


_PRODUCER_PERF = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def producer_perf(cluster: Cluster, *, records: int, size: int, log: Path) -> dict[str, float]:
    """kafka-producer-perf-test with acks=all and idempotence, as our producer writes."""
    topic = cluster.topic("perf-producer", 6)
    try:
        finished = cluster.kafka_tool(
            "kafka-producer-perf-test", "--topic", topic, "--num-records", str(records),
            "--record-size", str(size), "--throughput", "-1", "--producer-props",
            f"bootstrap.servers={cluster.bootstrap}", "acks=all", "enable.idempotence=true",
            log=log,
        )  # fmt: skip
    finally:
        cluster.drop(topic)
    sent, rate, megabytes = _PRODUCER_PERF.findall(finished.log)[-1]
    return {
        "records": int(sent),
        "records_per_s": float(rate),
        "mb_per_s": float(megabytes),
        "cpu_us_per_record": finished.cpu_seconds / int(sent) * 1e6,
    }


def consumer_perf(cluster: Cluster, topic: str, *, records: int, log: Path) -> dict[str, float]:
    """kafka-consumer-perf-test on the same topic; its fetch rate leaves out the group join,
    as our sinks' rate starts at their first record."""
    finished = cluster.kafka_tool(
        "kafka-consumer-perf-test", "--bootstrap-server", cluster.bootstrap, "--topic", topic,
        "--messages", str(records), "--group", unique("perf-consumer"), "--timeout", "60000",
        log=log,
    )  # fmt: skip
    lines = [line for line in finished.log.splitlines() if line.count(",") >= 8]
    header, values = lines[-2:]
    row = dict(zip([h.strip() for h in header.split(",")], values.split(","), strict=True))
    consumed = int(row["data.consumed.in.nMsg"])
    return {
        "records": consumed,
        "records_per_s": float(row["fetch.nMsg.sec"]),
        "mb_per_s": float(row["fetch.MB.sec"]),
        "cpu_us_per_record": finished.cpu_seconds / consumed * 1e6,
    }


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, poll: float = 0.2
) -> None:
    deadline = Deadline(timeout)
    while not condition():
        if deadline.passed():
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)
