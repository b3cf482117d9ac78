"""A new destination type and a new format are each one entry in their table: registered here,
from the test, they run through every path a user has (the sink command, config check,
inspect, replay, the local wiring of the demo and the bench, and the destination x format
contract) with no other file of kafkube touched.

The destination keeps its objects in this process's memory, so the commands run in this
process too, through the same click entry point as the console script.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from kafkube import launch
from kafkube.cli.commands import cli
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stores import StackStores
from kafkube.consumers.destinations import MissingObjectError
from kafkube.consumers.filesink import FileDestination
from kafkube.consumers.formats import FORMATS, Batch, Format
from kafkube.consumers.local import local_sink, local_sinks, location, sink_environment
from kafkube.consumers.objectstore import ObjectStore
from kafkube.consumers.reading import is_output
from kafkube.consumers.settings import SINK_TYPES, FileSinkConfig, ObjectStoreSinkConfig
from kafkube.schemas.topics import sink_group
from tests.sinking import committed, event_values, produce
from tests.test_destination_contract import holds_to_the_contract

EVENTS = 60
PARTITIONS = 3  # the topic fixture's
BUCKET = "events"

# The throwaway store: bucket -> key -> (bytes, when it was stored).
STORE: dict[str, dict[str, tuple[bytes, float]]] = {}


class MemorySinkConfig(ObjectStoreSinkConfig):
    """``kafkube sink memory``: objects in this process's memory (a test's throwaway)."""

    sink_type: ClassVar[str] = "memory"
    destination_module: ClassVar[str] = __name__
    scheme: ClassVar[str | None] = "mem"


class MemoryDestination(ObjectStore):
    def __init__(self, config: MemorySinkConfig) -> None:
        super().__init__(config)
        self.objects = STORE.setdefault(self.bucket, {})

    def check(self) -> None:
        """Memory is always there."""

    def ready(self) -> str | None:
        return None

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:  # noqa: ARG002
        self.objects[self.key(name)] = (data, time.time())

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        self.list_requests += 1
        folder = self.folder(under)
        for key, (_, at) in sorted(self.objects.items()):
            if key.startswith(folder):
                yield self.name_of(key), at

    def get(self, name: str) -> bytes:
        try:
            return self.objects[self.key(name)][0]
        except KeyError:
            raise MissingObjectError(f"no {self.url(name)}") from None


def open_destination(config: MemorySinkConfig) -> MemoryDestination:
    return MemoryDestination(config)


def _tsv_write(batch: Batch) -> bytes:
    return "".join(f"{r['uid']}\t{r['resource_version']}\n" for r in batch.records).encode()


def _tsv_read(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.decode().splitlines():
        uid, resource_version = line.split("\t")
        yield {"uid": uid, "resource_version": resource_version}


TSV = Format(
    extension="tsv",
    needs_records=True,
    write=_tsv_write,
    read=_tsv_read,
    description="uid and resourceVersion, tab-separated",
    label="TSV",
)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The two entries, in the two tables, for this test only."""
    monkeypatch.setitem(SINK_TYPES, "memory", MemorySinkConfig)
    monkeypatch.setitem(FORMATS, "tsv", TSV)
    STORE.clear()
    yield
    STORE.clear()


@pytest.fixture
def in_process() -> Iterator[CliRunner]:
    """Commands run here as the console script runs them; a service's stop signal handling,
    logging and collector thresholds are put back after."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    thresholds = gc.get_threshold()
    root = logging.getLogger()
    log_handlers, log_level = root.handlers[:], root.level
    yield CliRunner()
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    gc.set_threshold(*thresholds)
    root.handlers[:] = log_handlers
    root.setLevel(log_level)
    launch.STOP.clear()


def _invoke(runner: CliRunner, *args: str) -> Result:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _sink_until(runner: CliRunner, done: Callable[[], bool], *args: str) -> Result:
    """``kafkube sink memory ...`` until ``done`` holds (a minute at most), then stopped as a
    SIGTERM stops it: the stop event set, the sink commits what it wrote and returns."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done():
            time.sleep(0.2)
        launch.STOP.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        return _invoke(runner, "sink", "memory", *args)
    finally:
        watcher.join(timeout=70)
        launch.STOP.clear()


def _outputs() -> dict[str, bytes]:
    """The output objects in the store (beside them, the sink's index of each partition)."""
    return {key: data for key, (data, _) in STORE.get(BUCKET, {}).items() if is_output(key)}


def _held() -> list[tuple[str, str]]:
    return [
        (row["uid"], row["resource_version"])
        for data in _outputs().values()
        for row in _tsv_read(data)
    ]


@pytest.mark.usefixtures("registered")
def test_a_registered_sink_type_and_format_run_through_every_command(
    in_process: CliRunner, kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    sent = produce(kafka_bootstrap, topic, event_values(EVENTS, seed=27))
    kafka = ["--bootstrap-servers", kafka_bootstrap, "--topic", topic]
    sink = [*kafka, "--bucket", BUCKET, "--format", "tsv", "--max-age-seconds", "1"]
    group = sink_group("memory")

    def all_committed() -> bool:
        return sum(committed(kafka_bootstrap, group, topic, PARTITIONS).values()) == EVENTS

    config = tmp_path / "kafkube.yaml"
    config.write_text(
        f"kafka:\n  bootstrap_servers: {kafka_bootstrap}\n  topic: {topic}\n"
        f"sinks:\n  memory:\n    bucket: {BUCKET}\n    format: tsv\n"
    )
    checked = _invoke(in_process, "config", "check", str(config), "--component", "memory")
    assert "ready to start: memory" in checked.output

    _sink_until(in_process, all_committed, *sink)
    first = _outputs()
    assert sorted(_held()) == sorted(sent)
    assert first
    assert all(key.startswith(f"{topic}/") and key.endswith(".tsv") for key in first)

    shown = _invoke(in_process, "inspect", f"mem://{BUCKET}/{topic}", "--count")
    assert shown.output.splitlines()[-1].split()[0] == str(EVENTS)

    moved = _invoke(in_process, "replay", "--sink", "memory", *kafka, "--to-earliest", "--execute")
    assert f"rewrite {EVENTS} record(s)" in moved.output
    assert sum(committed(kafka_bootstrap, group, topic, PARTITIONS).values()) == 0

    _sink_until(in_process, all_committed, *sink)
    # The replay rewrote the same objects with the same bytes: nothing doubled, nothing new.
    assert _outputs() == first


@pytest.mark.usefixtures("registered")
def test_the_local_wiring_of_demo_and_bench_takes_a_registered_type(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    stores = StackStores(endpoints)

    every = local_sinks(stores, bucket="kafkube-wiring", folder=tmp_path, prefix="run-1")
    memory = local_sink(stores, "memory", bucket="b", folder=tmp_path, prefix="p", format="tsv")

    assert set(every) == set(SINK_TYPES)
    assert "memory" in every
    assert location(memory) == "mem://b/p"
    assert sink_environment(memory) == {
        "KAFKUBE_SINKS__MEMORY__BUCKET": "b",
        "KAFKUBE_SINKS__MEMORY__PREFIX": "p",
        "KAFKUBE_SINKS__MEMORY__FORMAT": "tsv",
    }


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("output_format", [*FORMATS, "tsv"])
def test_a_registered_destination_and_format_hold_to_the_contract(
    output_format: str, tmp_path: Path
) -> None:
    memory = MemoryDestination(MemorySinkConfig(bucket=BUCKET, prefix="contract"))
    files = FileDestination(FileSinkConfig(dir=tmp_path / "out"))

    holds_to_the_contract(memory, output_format, "compiled")
    holds_to_the_contract(files, output_format, "python")
