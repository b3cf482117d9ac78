"""P2: the producer killed with SIGKILL at random moments publishes every occurrence once."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from tests.producing import (
    EventWriter,
    duplicates,
    new_producer,
    read_messages,
    wait_for_occurrences,
)

pytestmark = pytest.mark.timeout(900)

EVENTS = 1_000
REPEATS = 4  # each event is then patched four times: 5,000 occurrences in all
MIN_KILLS = 20


@pytest.mark.parametrize("framing", ["single-object", "registry"])
def test_p2_sigkill_at_random_moments_publishes_every_occurrence_exactly_once(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path, framing: str
) -> None:
    chance = random.Random(20261125)
    registry = endpoints.schema_registry_url if framing == "registry" else None
    with_registry = ["--schema-registry-url", registry] if registry else []
    producer = new_producer(
        endpoints, namespace, tmp_path, "--linger-seconds", "0.1", *with_registry
    )
    writer = EventWriter(kube_api, namespace)
    producer.start()  # watching before the first write: from here on every version counts
    done = threading.Event()

    def write() -> None:
        names = [f"pod-{i}.chaos" for i in range(EVENTS)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(writer.create, names))
            for _ in range(REPEATS):
                list(pool.map(writer.repeat, names))
        done.set()

    writing = threading.Thread(target=write)
    writing.start()
    kills = 0
    while not done.is_set() or kills < MIN_KILLS:
        time.sleep(chance.uniform(0.2, 2.5))  # mid-startup, mid-batch, mid-commit: anywhere
        producer.kill()
        kills += 1
        producer.start(wait=False)
    writing.join()
    producer.wait_watching()
    found = wait_for_occurrences(
        endpoints.kafka_bootstrap, producer.topic, writer.occurrences, timeout=240,
        registry=registry,
    )  # fmt: skip
    code = producer.terminate()
    first_bytes = {m.value()[:1] for m in read_messages(endpoints.kafka_bootstrap, producer.topic)}

    print(  # noqa: T201 - the figures the run should show
        f"chaos: {kills} SIGKILLs, {len(writer.occurrences)} occurrences written, "
        f"{len(found)} records read, {len(set(found))} distinct"
    )
    assert kills >= MIN_KILLS
    assert len(writer.occurrences) == EVENTS * (1 + REPEATS)
    assert writer.occurrences - set(found) == set(), "occurrences missing from the topic"
    assert set(found) - writer.occurrences == set()
    assert duplicates(found) == {}
    assert code == 0
    assert first_bytes == ({b"\x00"} if registry else {b"\xc3"})  # the framing asked for
