"""``kafkube demo``, the README's first command, run from the console script as a user runs it;
then ``status`` and ``inspect`` on what it left."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafkube.compose.stack import Stack
from kafkube.compose.stores import gcs_client, s3_client
from kafkube.consumers.settings import SINK_TYPES
from kafkube.producer.synthetic import SyntheticCluster
from tests.conftest import CACHE_DIR, Services, unique
from tests.processes import taking_signals
from tests.producing import read_messages
from tests.sinking import occurrences_in_parquet, read_gcs, read_parquet_dir, read_s3

pytestmark = pytest.mark.timeout(600)

_POINTING = (
    "KUBECONFIG", "KAFKA_BOOTSTRAP_SERVERS", "AWS_", "STORAGE_EMULATOR_HOST", "SCHEMA_REGISTRY_URL"
)  # fmt: skip


def _clean_env() -> dict[str, str]:
    """A shell that points at nothing: the demo finds the stack by its state folder."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_POINTING)}


def _kafkube(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    console_script = Path(sys.executable).parent / "kafkube"
    return subprocess.run(
        [str(console_script), *args], capture_output=True, text=True, env=env, timeout=400,
        check=False,
    )  # fmt: skip


@pytest.fixture
def demo_stack(services: Services, native_stack: Stack) -> Iterator[Stack]:
    """The session's own stack, which the demo finds by its folder and reuses. Where the
    session took its services from elsewhere, the demo starts this one itself: stopped after."""
    yield native_stack
    if "native launcher" not in services.origin.values():
        native_stack.down()


def _seed_with_an_early_oom_kill() -> int:
    """A seed, new each run (a rerun's names would conflict on a reused API server), whose
    simulation writes an OOM kill among its first 20 steps: the README's OOM query then has
    one to count however slowly a loaded machine runs the demo (a random seed left 1 run
    in 13 without one)."""
    for seed in itertools.count(random.randrange(1_000_000)):
        steps = itertools.islice(SyntheticCluster(seed).operations(), 20)
        if any(step.event.get("reason") == "OOMKilling" for step in steps):
            return seed
    raise AssertionError  # unreachable: count() is endless


def test_demo_runs_everything_and_all_sinks_end_with_the_same_records(
    demo_stack: Stack, tmp_path: Path
) -> None:
    native_stack = demo_stack
    topic, bucket = unique("demo"), unique("kafkube-demo")
    output = tmp_path / "demo"
    demo = _kafkube(
        "demo", "--duration", "20", "--rate", "60", "--seed", str(_seed_with_an_early_oom_kill()),
        "--cache-dir", str(CACHE_DIR), "--state-dir", str(native_stack.settings.state_dir),
        "--topic", topic, "--output-dir", str(output),
        "--bucket", bucket,
        env=_clean_env(),
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"all {len(SINK_TYPES)} sinks hold the same records, each once" in demo.stdout

    endpoints = native_stack.endpoints()
    on_disk = Counter(read_parquet_dir(output / "files"))  # Parquet, asked with DuckDB
    in_s3 = Counter(read_s3(s3_client(endpoints), bucket))
    in_gcs = Counter(read_gcs(gcs_client(endpoints), bucket))
    assert len(on_disk) > 300  # 20 s at 60 events/s, plus what the API server already held
    assert on_disk == in_s3 == in_gcs
    assert set(on_disk.values()) == {1}
    assert str(output / "files") in demo.stdout
    assert f"s3://{bucket}/" in demo.stdout
    assert f"gs://{bucket}/" in demo.stdout
    _the_readme_queries_answer(output / "files", on_disk)
    # The demo runs in registry mode: the topic in Confluent's framing, the schema registered.
    framing = {m.value()[:1] for m in read_messages(endpoints.kafka_bootstrap, topic)}
    assert framing == {b"\x00"}
    assert endpoints.schema_registry_url in demo.stdout
    with SchemaRegistryClient({"url": endpoints.schema_registry_url}) as registry:
        assert registry.get_latest_version(f"{topic}-value").schema_id is not None

    # What is left is what status and inspect see.
    env = {**_clean_env(), **endpoints.to_env()}
    status = json.loads(_kafkube("status", "--topic", topic, "--json", env=env).stdout)
    as_yaml = yaml.safe_load(_kafkube("status", "--topic", topic, "-o", "yaml", env=env).stdout)
    assert as_yaml == status  # kubectl's -o, the same document
    groups = {g["group"]: g for g in status["groups"]}
    producer = status["producer"]
    assert producer["checkpoint"]
    last_publish = datetime.fromisoformat(producer["last_publish"])
    assert (datetime.now(UTC) - last_publish).total_seconds() < 300
    for sink in SINK_TYPES:
        group = groups[f"kafkube-demo-{sink}"]
        assert group["lag"] == 0
        assert group["members"] == []
        # The log end counts the transaction marker after the last record; lag does not.
        assert any(p["end"] > (p["committed"] or 0) for p in group["partitions"])

    counted = _kafkube("inspect", str(output / "files"), "--count", env=env)
    assert counted.stdout.splitlines()[-1].split()[0] == str(len(on_disk))
    one_file = min((output / "files").rglob("*.parquet"))
    one = _kafkube("inspect", str(one_file), env=env).stdout.splitlines()
    read_back = [(r["uid"], r["resource_version"]) for r in map(json.loads, one)]
    assert read_back == occurrences_in_parquet([one_file.read_bytes()])
    for location in (f"s3://{bucket}/{topic}/", f"gs://{bucket}/"):
        lines = _kafkube("inspect", location, env=env).stdout.splitlines()
        records = [json.loads(line) for line in lines]
        assert Counter((r["uid"], r["resource_version"]) for r in records) == on_disk, location


def _readme_queries() -> list[str]:
    """The README's example queries, as written there."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("<!-- duckdb-examples:begin -->")[1].split("<!-- duckdb-examples:end -->")
    sql = block[0].split("```sql")[1].split("```")[0]
    return [query.strip() for query in sql.split(";") if query.strip()]


def _the_readme_queries_answer(files: Path, held: Counter[tuple[str, str]]) -> None:
    """The README's three queries, run as written on the demo's output (DuckDB told where it
    is), count what pyarrow reads there."""
    import duckdb  # noqa: PLC0415
    import pyarrow.dataset as ds  # noqa: PLC0415

    rows = ds.dataset(files, format="parquet", partitioning="hive").to_table().to_pylist()
    warnings = Counter((r["namespace"], r["reason"]) for r in rows if r["type"] == "Warning")
    ooms = sum(1 for r in rows if r["reason"] == "OOMKilling")
    queries = _readme_queries()
    with duckdb.connect() as db:
        db.execute("set file_search_path = ?", [str(files)])
        by_reason, oom_killed, by_hour = (db.execute(query).fetchall() for query in queries)

    assert len(queries) == 3
    assert len(rows) == sum(held.values())
    assert {(namespace, reason): n for namespace, reason, n in by_reason} == warnings
    assert sum(row[-1] for row in oom_killed) == ooms > 0
    assert sum(n for _dt, _hour, n in by_hour) == len(rows)


def test_inspect_refuses_a_location_that_is_missing_or_not_a_store(
    tmp_path: Path,
) -> None:
    missing = _kafkube("inspect", str(tmp_path / "nothing"), env=_clean_env())
    foreign = _kafkube("inspect", "ftp://host/x", env=_clean_env())

    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    assert foreign.returncode == 1
    assert "ftp:// is not a store" in foreign.stderr


@pytest.mark.parametrize("after", ["flowing", 0.0, 1.0, 5.0])
def test_ctrl_c_stops_the_demo_in_order_and_loses_nothing(
    demo_stack: Stack, tmp_path: Path, after: str | float
) -> None:
    """Ctrl-C while records flow, and at once, at 1 s and at 5 s, while the demo and its
    children still start (a child stopped before it took its signal handler once made the
    demo report ``simulate exited with code -15`` and exit 1)."""
    native_stack = demo_stack
    topic, bucket = unique("demo"), unique("kafkube-demo")
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "kafkube"), "demo", "--rate", "60",
                "--cache-dir", str(CACHE_DIR), "--state-dir", str(native_stack.settings.state_dir),
                "--topic", topic, "--output-dir", str(tmp_path / "demo"),
                "--bucket", bucket,
            ],
            stdout=out, stderr=subprocess.STDOUT, env=_clean_env(),
        )  # fmt: skip
    if after == "flowing":
        deadline = time.monotonic() + 120
        while " published; " not in log.read_text():  # the live view is up and records flow
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    else:
        # "At once": as soon as the command runs at all, which is when it has taken SIGTERM
        # (kafkube.launch, before any import of its own); in the interpreter's first tenth of
        # a second, before any code of ours, a signal ends it as it would any program.
        taking_signals(demo.pid)
        time.sleep(float(after))  # the instant under test

    demo.send_signal(signal.SIGINT)
    code = demo.wait(300)

    output = log.read_text()
    assert code == 0, output
    assert "exited with code" not in output
    assert "Traceback" not in output
    if after == "flowing" or "stopped." in output:  # it got as far as starting the flow
        assert f"all {len(SINK_TYPES)} sinks hold the same records, each once" in output
