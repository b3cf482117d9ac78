"""One Event read through both API groups of the real API server converts to one record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from kafkube.producer.converting import to_record
from kafkube.schemas.codec import Codec
from kafkube.schemas.records import API_CORE_V1, API_EVENTS_V1

pytestmark = pytest.mark.timeout(120)


def test_core_v1_and_events_k8s_io_views_of_one_event_give_the_same_record(
    kube_api: Any, namespace: str
) -> None:
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    events = client.EventsV1Api(kube_api)
    now = datetime.now(UTC).replace(microsecond=0)
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="api-0.backoff", labels={"app": "api"}),
            involved_object=client.V1ObjectReference(
                kind="Pod", name="api-0", namespace=namespace, field_path="spec.containers{api}"
            ),
            reason="BackOff",
            message="Back-off restarting failed container api in pod api-0",
            type="Warning",
            count=4,
            first_timestamp=now,
            last_timestamp=now,
            source=client.V1EventSource(component="kubelet", host="node-b1"),
        ),
    )
    envelope: dict[str, Any] = {
        "watch_type": "ADDED",
        "cluster": "c",
        "producer_id": "p",
        "observed_at": now,
    }

    as_core = json.loads(
        core.read_namespaced_event("api-0.backoff", namespace, _preload_content=False).data
    )
    as_events = json.loads(
        events.read_namespaced_event("api-0.backoff", namespace, _preload_content=False).data
    )
    from_core = to_record(as_core, **envelope)
    from_events = to_record(as_events, **envelope)

    assert as_core["apiVersion"] == API_CORE_V1
    assert as_events["apiVersion"] == API_EVENTS_V1
    assert from_core["api_version"] == API_CORE_V1
    assert from_events["api_version"] == API_EVENTS_V1
    assert {**from_core, "api_version": None} == {**from_events, "api_version": None}
    assert from_core["note"] == "Back-off restarting failed container api in pod api-0"
    assert from_core["count"] == 4
    assert from_core["source_host"] == "node-b1"
    assert from_core["first_timestamp"] == now
    assert Codec().decode(Codec().encode(from_events)) == from_events
