"""A sink's Prometheus metrics, labelled by sink type; updated once per written object."""

from __future__ import annotations

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
)

from kafkube.core.serving import component_registry

REGISTRY = component_registry("sink")

RECORDS = Counter(
    "kafkube_sink_records_written", "Records made durable.", ["sink"], registry=REGISTRY
)
BYTES = Counter(
    "kafkube_sink_bytes_written", "Bytes of objects made durable.", ["sink"], registry=REGISTRY
)
BATCHES = Counter(
    "kafkube_sink_batches_written", "Objects made durable.", ["sink"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "kafkube_sink_dead_letters",
    "Records sent to the dead-letter topic.",
    ["sink"],
    registry=REGISTRY,
)
FILTERED = Counter(
    "kafkube_sink_records_filtered",
    "Records this sink group's filter left out: committed, not written.",
    ["sink"],
    registry=REGISTRY,
)
WRITE_RETRIES = Counter(
    "kafkube_sink_write_retries",
    "Writes the store refused for now (retried).",
    ["sink"],
    registry=REGISTRY,
)
COMMIT_CONFLICTS = Counter(
    "kafkube_sink_commit_conflicts",
    "A table's commits that met another instance's and were tried again.",
    ["sink"],
    registry=REGISTRY,
)
WRITE_SECONDS = Histogram(
    "kafkube_sink_write_duration_seconds",
    "Time to make one object durable, retries included.",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
COMMITTED = Gauge(
    "kafkube_sink_committed_offset",
    "The next offset this sink's group will read, per partition it holds.",
    ["sink", "topic", "partition"],
    registry=REGISTRY,
)
LAG = Gauge(
    "kafkube_sink_lag_records",
    "Records this group has still to commit, per partition held; a transaction's commit "
    "marker is no record, so a caught-up partition shows 0.",
    ["sink", "topic", "partition"],
    registry=REGISTRY,
)


def start(sink: str) -> None:
    """Every series of this sink from zero, so that rates and alerts see the first event."""
    for metric in (RECORDS, BYTES, BATCHES, DEAD_LETTERS, WRITE_RETRIES, WRITE_SECONDS):
        metric.labels(sink)
