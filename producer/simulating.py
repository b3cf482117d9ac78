"""``kafkube simulate``: play a synthetic cluster into a real API server, or record it to a file.

Into the API server it goes through the ``kubernetes`` client like any
controller's events (create, then patch ``count`` and ``lastTimestamp`` for
repeats), paced to a rate, so a producer watching that server takes the real
path. Recorded, it is a watch stream of JSON lines, as the ``file`` source and
the benchmarks read it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, cast

import orjson
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kafkube.core.errors import SourceError
from kafkube.producer.synthetic import Operation

HTTP_NOT_FOUND, HTTP_CONFLICT = 404, 409

# Events a second a simulation writes unless told (`kafkube simulate`, the demo).
SIMULATED_RATE = 50.0


@dataclass
class SimulationStats:
    created: int = 0
    repeated: int = 0
    skipped: int = 0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _paced(
    operations: Iterator[Operation], rate: float, stop: threading.Event
) -> Iterator[Operation]:
    interval = 1.0 / rate
    due = time.monotonic()
    for operation in operations:
        wait = due - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        if stop.is_set():
            return
        due = max(due + interval, time.monotonic() - 1.0)  # no burst after a stall
        yield operation


def simulate_into_cluster(
    api_client: client.ApiClient,
    operations: Iterator[Operation],
    *,
    rate: float,
    limit: int | None,
    stop: threading.Event,
) -> SimulationStats:
    core = client.CoreV1Api(api_client)
    stats = SimulationStats()
    counts: dict[tuple[str, str], int] = {}
    namespaces: set[str] = set()
    for operation in _paced(operations, rate, stop):
        key = (operation.namespace, operation.name)
        try:
            if operation.action == "create":
                if operation.namespace not in namespaces:
                    _ensure_namespace(core, operation.namespace)
                    namespaces.add(operation.namespace)
                body = {**operation.event, "firstTimestamp": _now(), "lastTimestamp": _now()}
                # The client sends plain JSON as it is; building its model objects would be waste.
                core.create_namespaced_event(operation.namespace, cast("client.CoreV1Event", body))
                counts[key] = 1
                stats.created += 1
            elif key not in counts:  # its create was refused: the name is another run's
                stats.skipped += 1
                continue
            else:
                counts[key] += 1
                patch = {"count": counts[key], "lastTimestamp": _now()}
                core.patch_namespaced_event(operation.name, operation.namespace, patch)
                stats.repeated += 1
        except ApiException as err:
            if err.status not in {HTTP_NOT_FOUND, HTTP_CONFLICT}:
                raise SourceError(
                    f"the API server refused a simulated event: {err.reason}"
                ) from err
            stats.skipped += 1  # expired meanwhile, or a name taken by an earlier run
        if limit is not None and stats.created + stats.repeated >= limit:
            break
    return stats


def _ensure_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as err:
        if err.status != HTTP_CONFLICT:
            raise SourceError(f"cannot create namespace {name}: {err.reason}") from err


def record_watch_stream(
    operations: Iterator[Operation], out: IO[str], *, limit: int, seed: int = 0
) -> int:
    """Write ``limit`` watch events as JSON lines, as the API server would have sent them."""
    ids = uuid.UUID(int=seed)
    events: dict[tuple[str, str], dict[str, Any]] = {}
    resource_version = 1000
    written = 0
    for operation in operations:
        resource_version += 1
        key = (operation.namespace, operation.name)
        if operation.action == "create":
            ids = uuid.uuid5(ids, operation.name)
            event = orjson.loads(orjson.dumps(operation.event))
            event["metadata"] |= {
                "uid": str(ids),
                "resourceVersion": str(resource_version),
                "creationTimestamp": event["firstTimestamp"],
            }
            events[key] = event
            kind = "ADDED"
        else:
            event = events[key]
            event["count"] += 1
            event["metadata"]["resourceVersion"] = str(resource_version)
            kind = "MODIFIED"
        out.write(orjson.dumps({"type": kind, "object": event}).decode() + "\n")
        written += 1
        if written >= limit:
            break
    return written
