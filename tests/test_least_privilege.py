"""P12: watching a list of namespaces needs only Roles in those namespaces.

The chart's own RBAC (rendered by a real helm for two namespaces) is created on the
real API server; the producer runs with a token of the chart's ServiceAccount, so
the server itself decides what it may read. It publishes every occurrence of both
namespaces and none of a third, across SIGKILLs.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose import fetch
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from tests.charts import render_chart
from tests.conftest import unique
from tests.producing import (
    EventWriter,
    ProducerProcess,
    duplicates,
    service_account_kubeconfig,
    wait_for_occurrences,
)

pytestmark = pytest.mark.timeout(900)  # the first run builds helm (minutes)

_RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


@pytest.fixture
def three_namespaces(kube_api: Any) -> Iterator[tuple[str, str, str, str]]:
    """The release's namespace, two watched ones and one that is not."""
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    names = (unique("release"), unique("payments"), unique("checkout"), unique("other"))
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield names
    for name in names:
        core.delete_namespace(name)


def _service_account_kubeconfig(
    kube_api: Any, endpoints: Endpoints, manifests: list[Any], release: str, path: Path
) -> Path:
    """Create the chart's RBAC for real, and a kubeconfig with its ServiceAccount's token."""
    from kubernetes.dynamic import DynamicClient  # noqa: PLC0415

    dynamic = DynamicClient(kube_api)
    account = ""
    for manifest in manifests:
        if manifest["kind"] not in _RBAC_KINDS:
            continue
        assert manifest["kind"] not in {"ClusterRole", "ClusterRoleBinding"}, manifest
        resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        resource.create(body=manifest, namespace=manifest["metadata"].get("namespace", release))
        if manifest["kind"] == "ServiceAccount":
            account = manifest["metadata"]["name"]
    return service_account_kubeconfig(kube_api, endpoints, release, account, path)


def test_p12_roles_in_two_namespaces_suffice_and_nothing_of_a_third_is_read(
    endpoints: Endpoints,
    kube_api: Any,
    native_stack: Stack,
    three_namespaces: tuple[str, str, str, str],
    tmp_path: Path,
) -> None:
    from kubernetes import client, config  # noqa: PLC0415

    release, payments, checkout, other = three_namespaces
    helm = fetch.wrapped_go_binary(native_stack.settings, "helm")
    values = {
        "clusterName": "test",
        "kafka": {"bootstrapServers": endpoints.kafka_bootstrap},
        "producer": {"namespaces": [payments, checkout]},
    }
    manifests = render_chart(helm, tmp_path, release, values)
    kubeconfig = _service_account_kubeconfig(
        kube_api, endpoints, manifests, release, tmp_path / "sa.kubeconfig"
    )
    # The server itself refuses this token the cluster-wide read: only the Roles count.
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    limited = client.ApiClient(configuration)
    with pytest.raises(client.ApiException) as refused:
        client.CoreV1Api(limited).list_event_for_all_namespaces(limit=1)
    assert refused.value.status == 403

    writers = {ns: EventWriter(kube_api, ns) for ns in (payments, checkout, other)}
    for ns, writer in writers.items():
        writer.create(f"before-{ns[:5]}.backoff")
    producer = ProducerProcess(
        endpoints=dataclasses.replace(endpoints, kubeconfig=str(kubeconfig)),
        topic=unique("events"),
        namespace=payments,
        log=tmp_path / "producer.log",
        extra=["--namespace", checkout],
    )
    producer.start(wait=False)
    # Exactly once from here: before a namespace's first checkpoint is committed, a crash
    # leaves only a list to find its events by, which shows each one's newest version.
    producer.wait_watching(watches=2)
    chance = random.Random(12)
    names = {ns: [w.create(f"live-{i}.backoff") for i in range(3)] for ns, w in writers.items()}
    for kill in range(5):
        for ns, writer in writers.items():
            writer.repeat(chance.choice(names[ns]))
        if kill % 2:
            producer.wait_watching(watches=2)
        producer.kill()
        for ns, writer in writers.items():
            writer.repeat(chance.choice(names[ns]))  # while it is down
        producer.start(wait=False)
    watched = writers[payments].occurrences | writers[checkout].occurrences
    found = wait_for_occurrences(endpoints.kafka_bootstrap, producer.topic, watched, timeout=90)
    producer.wait_watching()
    assert producer.terminate() == 0, producer.log.read_text()[-3000:]

    print(  # noqa: T201 - the figures the run should show
        f"least privilege: 5 SIGKILLs, {len(watched)} occurrences in 2 namespaces, "
        f"{len(found)} records, {len(writers[other].occurrences)} unwatched occurrences"
    )
    assert set(found) == watched
    assert duplicates(found) == {}
    assert not set(found) & writers[other].occurrences
    log = producer.log.read_text()
    # The API server's refusal, as the client reports it: "(403)" and "Reason: Forbidden". A
    # bare "403" also matches a log line's milliseconds.
    assert "(403)" not in log
    assert "Forbidden" not in log
