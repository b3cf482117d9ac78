"""The Helm chart on a real node: `kafkube stack up node` runs containerd, kube-scheduler,
kube-controller-manager and a kubelet beside the stack's API server; the repo's image, built by
podman and imported into the node's containerd, runs the chart's pods there.

Two producer replicas elect one leader on the chart's Lease; a file sink writes to a volume
the test reads. Events written to the watched namespace arrive exactly once through a helm
install, the deletion of the leading pod and a helm upgrade that rolls every pod; the kubelet's
readiness and liveness probes pass on every pod and no container restarts."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafkube.compose import fetch
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.node import NODE_NAME
from kafkube.compose.stack import Stack
from tests.charts import CHART
from tests.conftest import Services, unique
from tests.images import Podman
from tests.producing import EventWriter
from tests.sinking import read_avro_dir

pytestmark = [pytest.mark.timeout(1500), pytest.mark.services]

RELEASE = "events"


@pytest.fixture(scope="module")
def node(native_stack: Stack, services: Services) -> Iterator[Stack]:
    """The session's stack with its node up, and down again after this module."""
    assert services.origin["kube-apiserver"] == "native launcher", (
        "the node joins the launcher's own API server; unset KAFKUBE_TEST_KUBECONFIG"
    )
    native_stack.up(["node"], timeout=300)
    yield native_stack
    native_stack.down(["node"])


@pytest.fixture(scope="module")
def node_image(
    node: Stack, podman: Podman, image: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    archive = tmp_path_factory.mktemp("node-image") / "kafkube.tar"
    podman("save", "--format", "oci-archive", "-o", str(archive), image)
    node.load_image(archive)
    archive.unlink()
    return image


def _until(condition: Callable[[], Any], timeout: float, what: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, what()
        time.sleep(0.5)
    return result


class Release:
    """One helm release of the chart in its own namespace, with kubectl-like reads."""

    def __init__(
        self, helm: Path, kubeconfig: str, kube_api: Any, namespace: str, out: Path
    ) -> None:
        from kubernetes import client  # noqa: PLC0415

        self.helm, self.kubeconfig, self.namespace, self.out = helm, kubeconfig, namespace, out
        self.core = client.CoreV1Api(kube_api)
        self.coordination = client.CoordinationV1Api(kube_api)

    def helm_run(self, verb: str, values: dict[str, Any], values_file: Path) -> None:
        values_file.write_text(yaml.safe_dump(values))
        done = subprocess.run(
            [str(self.helm), verb, RELEASE, str(CHART), "--namespace", self.namespace,
             "--kubeconfig", self.kubeconfig, "--values", str(values_file),
             "--wait", "--timeout", "5m"],
            capture_output=True, text=True, timeout=400, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"helm {verb}:\n{done.stdout}\n{done.stderr}\n{self.describe()}"
        )

    def pods(self, component: str) -> list[Any]:
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        items = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return [pod for pod in items if pod.metadata.deletion_timestamp is None]

    def ready(self, component: str, replicas: int) -> list[Any]:
        """The component's pods, if exactly ``replicas`` of them run and the kubelet's readiness
        probe has passed on each."""
        pods = self.pods(component)
        ok = len(pods) == replicas and all(
            any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            for pod in pods
        )
        return pods if ok else []

    def leader(self) -> str | None:
        from kubernetes import client  # noqa: PLC0415

        try:
            lease = self.coordination.read_namespaced_lease(
                f"{RELEASE}-kafkube-producer", self.namespace
            )
        except client.ApiException:
            return None
        holder: str | None = lease.spec.holder_identity
        return holder

    def restarts(self) -> dict[str, int]:
        items = self.core.list_namespaced_pod(self.namespace).items
        return {
            pod.metadata.name: sum(s.restart_count for s in pod.status.container_statuses or [])
            for pod in items
        }

    def describe(self) -> str:
        lines = []
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            lines.append(f"{pod.metadata.name}: {pod.status.phase} {pod.status.conditions}")
            lines.extend(
                f"  {status.name}: {status.state} restarts={status.restart_count}"
                for status in pod.status.container_statuses or []
            )
        events = self.core.list_namespaced_event(self.namespace).items[-30:]
        lines.extend(f"event {event.reason}: {event.message}" for event in events)
        return "\n".join(lines)


@pytest.fixture
def release(node: Stack, endpoints: Endpoints, kube_api: Any, tmp_path: Path) -> Iterator[Release]:
    """A namespace for the release, with a hostPath PersistentVolume bound to the claim the
    file sink mounts (``events``); uninstalled and removed after the test."""
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    name = unique("chart")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    out = tmp_path / "events"
    out.mkdir()
    out.chmod(0o777)  # the image's user (10001) writes it
    core.create_persistent_volume(
        client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": "1Gi"},
                access_modes=["ReadWriteOnce"],
                storage_class_name="",
                host_path=client.V1HostPathVolumeSource(path=str(out), type="Directory"),
                claim_ref=client.V1ObjectReference(namespace=name, name="events"),
            ),
        )
    )
    core.create_namespaced_persistent_volume_claim(
        name,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="events"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                storage_class_name="",
                volume_name=name,
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        ),
    )
    helm = fetch.wrapped_go_binary(node.settings, "helm")
    yield Release(helm, endpoints.kubeconfig, kube_api, name, out)
    subprocess.run(
        [str(helm), "uninstall", RELEASE, "--namespace", name, "--kubeconfig",
         endpoints.kubeconfig, "--wait", "--timeout", "2m"],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    core.delete_persistent_volume(name)
    core.delete_namespace(name)


def test_the_chart_on_the_node_takes_every_event_once_through_hand_over_and_upgrade(
    release: Release, node_image: str, endpoints: Endpoints, kube_api: Any, namespace: str
) -> None:
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    out, values_file = release.out, release.out.parent / "values.yaml"
    repository, tag = node_image.rsplit(":", 1)
    values: dict[str, Any] = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "clusterName": "node",
        # Inside each pod the relay answers at the stack's own loopback addresses.
        "kafka": {"bootstrapServers": endpoints.kafka_bootstrap, "topic": unique("node")},
        "producer": {"replicas": 2, "namespaces": [namespace], "leaseDurationSeconds": 8,
                     "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}},
        "sinks": {"file": {"enabled": True, "persistence": {"existingClaim": "events"},
                           "config": {"dir": "/var/lib/kafkube/events",
                                      "rotation": {"max_age_seconds": 1}},
                           "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}}},
    }  # fmt: skip
    writer = EventWriter(kube_api, namespace)

    def write(count: int) -> None:
        for n in range(count):
            name = writer.create(f"pod-{n}.{unique('e')}")
            if n % 4 == 0:
                writer.repeat(name)

    def all_arrived() -> bool:
        return set(read_avro_dir(out)) >= writer.occurrences

    release.helm_run("install", values, values_file)
    producers = _until(lambda: release.ready("producer", 2), 120, release.describe)
    _until(lambda: release.ready("sink-file", 1), 120, release.describe)
    leader = _until(release.leader, 60, release.describe)
    assert leader in {pod.metadata.name for pod in producers}
    assert all(pod.spec.node_name == NODE_NAME for pod in producers)

    write(20)
    _until(all_arrived, 120, lambda: f"{len(read_avro_dir(out))} of {len(writer.occurrences)}")

    # The leader's pod deleted: it hands the Lease back as it stops, and a live replica
    # takes it (the standby, or the replacement pod if it asks first: a fair race).
    deleted_at = time.monotonic()
    core.delete_namespaced_pod(leader, release.namespace)
    new_leader = _until(
        lambda: (holder := release.leader()) != leader and holder, 60, release.describe
    )
    hand_over = time.monotonic() - deleted_at
    write(20)
    _until(all_arrived, 120, lambda: f"{len(read_avro_dir(out))} of {len(writer.occurrences)}")
    live = _until(lambda: release.ready("producer", 2), 120, release.describe)
    assert new_leader in {pod.metadata.name for pod in live}
    assert hand_over < values["producer"]["leaseDurationSeconds"], hand_over
    standby = new_leader in {pod.metadata.name for pod in producers}
    print(  # noqa: T201 - the figure the run should show
        f"hand-over: {hand_over:.1f} s, to the {'standby' if standby else 'replacement'}"
    )

    # A changed setting rolls every pod (the config's checksum is in the pod template).
    before = {pod.metadata.uid for pod in release.pods("producer") + release.pods("sink-file")}
    values["producer"]["filter"] = {"exclude": ["reason=NeverSeen"]}
    values["sinks"]["file"]["config"]["rotation"]["max_records"] = 10_000
    release.helm_run("upgrade", values, values_file)
    rolled = _until(
        lambda: (
            (pods := release.ready("producer", 2) + release.ready("sink-file", 1))
            and len(pods) == 3
            and not {pod.metadata.uid for pod in pods} & before
            and pods
        ),
        180,
        release.describe,
    )
    write(20)
    _until(all_arrived, 120, lambda: f"{len(read_avro_dir(out))} of {len(writer.occurrences)}")
    assert release.leader() in {pod.metadata.name for pod in rolled}

    found = read_avro_dir(out)
    # Every occurrence exactly once (the chart's own pods' events are in another namespace).
    assert Counter(found) == Counter(writer.occurrences)
    # The kubelet's probes: every pod it ran went Ready, and liveness never restarted one.
    assert set(release.restarts().values()) == {0}, release.describe()
