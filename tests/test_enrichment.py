"""Enrichment against the real API server: the involved object's labels and its controlling
owner (a Pod's ReplicaSet followed to its Deployment), empty for an object already gone, and
a role without the reads warned about once, never a stall."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from tests.conftest import unique
from tests.faults import proxied_kubeconfig
from tests.producing import (
    EventWriter,
    new_producer,
    read_records,
    service_account_kubeconfig,
    wait_for_occurrences,
)

pytestmark = pytest.mark.timeout(300)

ENRICH = {"KAFKUBE_PRODUCER__ENRICH__ENABLED": "true"}


def _workload(kube_api: Any, namespace: str) -> str:
    """Deployment web, its ReplicaSet and one of its Pods, as the controllers would leave them
    (this stack runs no controller manager, so the test makes each one): the Pod's name."""
    from kubernetes import client  # noqa: PLC0415

    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )
    labels = {"app": "web", "pod-template-hash": "7d9f"}
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="web:1")]),
    )
    selector = client.V1LabelSelector(match_labels={"app": "web"})
    deployment = apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(selector=selector, template=template),
        ),
    )

    def owned_by(kind: str, name: str, uid: str) -> list[Any]:
        return [
            client.V1OwnerReference(
                api_version="apps/v1", kind=kind, name=name, uid=uid, controller=True
            )
        ]

    replica_set = apps.create_namespaced_replica_set(
        namespace,
        client.V1ReplicaSet(
            metadata=client.V1ObjectMeta(
                name="web-7d9f",
                owner_references=owned_by("Deployment", "web", deployment.metadata.uid),
            ),
            spec=client.V1ReplicaSetSpec(selector=selector, template=template),
        ),
    )
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(
                name="web-7d9f-x2k4q",
                labels=labels,
                owner_references=owned_by("ReplicaSet", "web-7d9f", replica_set.metadata.uid),
            ),
            spec=template.spec,
        ),
    )
    return "web-7d9f-x2k4q"


def _deleted_pod(kube_api: Any, namespace: str, name: str) -> None:
    """A Pod that was there and is gone (never scheduled, so deleted at once)."""
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    spec = client.V1PodSpec(containers=[client.V1Container(name="c", image="web:1")])
    core.create_namespaced_pod(
        namespace, client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=spec)
    )
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_an_event_about_a_deployments_pod_carries_its_labels_and_the_deployment(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    pod = _workload(kube_api, namespace)
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.env = ENRICH
    writer = EventWriter(kube_api, namespace)
    producer.start()

    writer.create(f"{pod}.backoff")  # about the Pod (the writer names it from the event)
    _deleted_pod(kube_api, namespace, "gone-0")
    writer.create("gone-0.backoff")  # about a Pod deleted before its event is read
    wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    assert producer.terminate() == 0
    records = {r["name"]: r for r in read_records(endpoints.kafka_bootstrap, producer.topic)}

    about_pod = records[f"{pod}.backoff"]
    assert about_pod["regarding_labels"] == {"app": "web", "pod-template-hash": "7d9f"}
    assert about_pod["regarding_owner"] == {"kind": "Deployment", "name": "web"}
    gone = records["gone-0.backoff"]
    assert gone["regarding_labels"] is None
    assert gone["regarding_owner"] is None


def _events_only_kubeconfig(
    kube_api: Any, endpoints: Endpoints, namespace: str, path: Path
) -> Path:
    """A kubeconfig with the token of a ServiceAccount that may read events and nothing else."""
    from kubernetes import client  # noqa: PLC0415

    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="events-only"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="events-only"),
            rules=[
                client.V1PolicyRule(
                    api_groups=["", "events.k8s.io"], resources=["events"],
                    verbs=["get", "list", "watch"],
                )
            ],
        ),
    )  # fmt: skip
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="events-only"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="events-only"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="events-only", namespace=namespace)
            ],
        ),
    )
    return service_account_kubeconfig(kube_api, endpoints, namespace, "events-only", path)


def test_a_role_without_the_reads_is_warned_about_once_and_the_events_flow_on(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    pod = _workload(kube_api, namespace)
    kubeconfig = _events_only_kubeconfig(kube_api, endpoints, namespace, tmp_path / "kubeconfig")
    producer = new_producer(endpoints, namespace, tmp_path, "--kubeconfig", str(kubeconfig))
    producer.env = ENRICH
    writer = EventWriter(kube_api, namespace)
    producer.start()

    for i in range(5):
        writer.create(f"{pod}.{i}")
    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
    assert producer.terminate() == 0
    log = producer.log.read_text()
    records = read_records(endpoints.kafka_bootstrap, producer.topic)

    assert set(found) == writer.occurrences
    assert log.count("enrichment: the API server refuses to let this producer get pods") == 1
    assert {r["regarding_owner"] is None and r["regarding_labels"] is None for r in records} == {
        True
    }


def test_an_event_naming_an_object_of_another_namespace_by_its_path_gets_no_labels(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    """Whoever may create Events in one namespace writes involvedObject.name: a name that
    climbs out of its request path must never attach another namespace's object."""
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    other = unique("kafkube-other")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    core.create_namespaced_service_account(  # no controller manager here makes it
        other, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    )
    spec = client.V1PodSpec(containers=[client.V1Container(name="c", image="secret:1")])
    meta = client.V1ObjectMeta(name="x", labels={"team": "payments"})
    core.create_namespaced_pod(other, client.V1Pod(metadata=meta, spec=spec))
    producer = new_producer(endpoints, namespace, tmp_path)
    producer.env = ENRICH
    writer = EventWriter(kube_api, namespace)
    producer.start()

    try:
        writer.create("climbing.backoff", about=f"../../{other}/pods/x")
        wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, writer.occurrences)
        assert producer.terminate() == 0
    finally:
        core.delete_namespace(other)
    (record,) = read_records(endpoints.kafka_bootstrap, producer.topic)

    assert record["regarding"]["name"] == f"../../{other}/pods/x"  # published, as it came
    assert record["regarding_labels"] is None
    assert record["regarding_owner"] is None


def test_a_trickling_api_server_cannot_hold_an_enrichment_read_past_its_timeout(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client, config  # noqa: PLC0415

    from kafkube.producer.enriching import Enricher  # noqa: PLC0415
    from kafkube.producer.settings import Enrichment  # noqa: PLC0415

    pod = _workload(kube_api, namespace)
    with proxied_kubeconfig(endpoints.kubeconfig, tmp_path) as (kubeconfig, proxy):
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        settings = Enrichment(
            enabled=True, cache_size=100, ttl_seconds=0.001, timeout_seconds=1.0, budget=1.0,
            reads_per_second=100,
        )  # fmt: skip
        with client.ApiClient(configuration) as api:
            enricher = Enricher(api, settings)
            assert enricher.enrich(_about(pod, namespace))["regarding_labels"]  # it reads
            proxy.trickle()  # the answers now come a byte every half second, never stopping
            began = time.monotonic()
            trickled = enricher.enrich(_about(pod, namespace))
            took = time.monotonic() - began
            proxy.drop_all()
            enricher.close()  # the read given up on ends with its connection

    assert trickled["regarding_labels"] is None
    assert took < 1.5, f"one read held the stream {took:.1f} s"
    assert enricher.stats.skipped == 1


def _about(pod: str, namespace: str) -> Any:
    from datetime import UTC, datetime  # noqa: PLC0415

    from kafkube.producer.converting import to_record  # noqa: PLC0415

    event = {
        "metadata": {"name": "e", "namespace": namespace, "uid": "u", "resourceVersion": "1"},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": namespace, "name": pod},
        "reason": "BackOff", "type": "Warning",
    }  # fmt: skip
    return to_record(
        event, watch_type="ADDED", cluster="t", producer_id="t", observed_at=datetime.now(UTC)
    )
