"""Producer HA: two replicas elect one leader on a real coordination.k8s.io Lease of the
stack's API server; the standby takes over within the lease duration when the leader is
killed, and the topic ends with every occurrence exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.processes import running_pid
from kafkube.compose.stack import Stack
from tests.conftest import unique
from tests.producing import EventWriter, ProducerProcess, duplicates, wait_for_occurrences

pytestmark = pytest.mark.timeout(600)

LEASE_SECONDS, RENEW_SECONDS = 6, 1
STEP_DOWN = 10


def _replica(
    endpoints: Endpoints, namespace: str, topic: str, lease: str, name: str, tmp_path: Path
) -> ProducerProcess:
    election = "KAFKUBE_PRODUCER__LEADER_ELECTION__"
    return ProducerProcess(
        endpoints=endpoints,
        topic=topic,
        namespace=namespace,
        log=tmp_path / f"{name}.log",
        env={
            f"{election}ENABLED": "true",
            f"{election}NAMESPACE": namespace,
            f"{election}LEASE_NAME": lease,
            f"{election}IDENTITY": name,
            f"{election}LEASE_DURATION_SECONDS": str(LEASE_SECONDS),
            f"{election}RENEW_PERIOD_SECONDS": str(RENEW_SECONDS),
        },
    )


def _wait_log(replica: ProducerProcess, text: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while text not in (replica.log.read_text() if replica.log.exists() else ""):
        assert replica.alive(), replica.log.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in:\n{replica.log.read_text()}"
        time.sleep(0.05)
    return time.monotonic()


def _holder(kube_api: Any, namespace: str, lease: str) -> tuple[str | None, int]:
    from kubernetes import client  # noqa: PLC0415

    spec = client.CoordinationV1Api(kube_api).read_namespaced_lease(lease, namespace).spec
    return spec.holder_identity, spec.lease_transitions or 0


def test_two_producers_one_publishes_and_the_other_takes_over_when_it_is_killed(
    endpoints: Endpoints, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    topic, lease = unique("ha"), unique("lease")
    first = _replica(endpoints, namespace, topic, lease, "replica-a", tmp_path)
    second = _replica(endpoints, namespace, topic, lease, "replica-b", tmp_path)
    writer = EventWriter(kube_api, namespace)

    first.start()  # waits until it watches: it leads
    second.start(wait=False)
    _wait_log(second, "standing by for lease")
    names = [writer.create(f"ha-{i}.{unique('e')}") for i in range(30)]
    for name in names[:10]:
        writer.repeat(name)
    before_kill = set(writer.occurrences)
    found = wait_for_occurrences(endpoints.kafka_bootstrap, topic, before_kill)
    holder_before = _holder(kube_api, namespace, lease)
    second_watched_before = "watching from" in second.log.read_text()

    assert before_kill <= set(found)
    assert holder_before[0] == "replica-a"
    assert not second_watched_before, "the standby published while the leader lived"

    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(30)
    killed_at = time.monotonic()
    for name in names[10:20]:  # occurrences while nobody leads: the next leader lists them
        writer.repeat(name)
    took_over_at = _wait_log(second, "leading: lease", timeout=60)
    second.wait_watching()
    for name in names[20:]:
        writer.repeat(name)
    extra = [writer.create(f"ha-late-{i}.{unique('e')}") for i in range(10)]
    found = wait_for_occurrences(endpoints.kafka_bootstrap, topic, writer.occurrences)
    holder_after = _holder(kube_api, namespace, lease)
    code = second.terminate()
    released = _holder(kube_api, namespace, lease)

    assert took_over_at - killed_at <= LEASE_SECONDS + 2 * RENEW_SECONDS + 1
    assert holder_after[0] == "replica-b"
    assert holder_after[1] >= holder_before[1] + 1  # a transition the API server recorded
    assert len(extra) == 10
    assert set(found) == writer.occurrences, "an occurrence was lost in the hand-over"
    assert duplicates(found) == {}, "an occurrence was published twice"
    assert code == 0
    assert released[0] is None  # handed back on a clean stop: no wait for the next leader


def test_a_leader_that_cannot_publish_gives_its_lease_up_and_a_standby_publishes(
    endpoints: Endpoints, native_stack: Stack, kube_api: Any, namespace: str, tmp_path: Path
) -> None:
    """Kafka frozen (SIGSTOP) under the leader: its transaction blocks, events wait. Past
    step_down_after_seconds it gives the Lease up, though still blocked in Kafka; the standby
    leads, and once Kafka answers publishes what waited, its producer fencing the old
    leader's: every occurrence once."""
    topic, lease = unique("ha"), unique("lease")
    leader = _replica(endpoints, namespace, topic, lease, "replica-a", tmp_path)
    leader.env["KAFKUBE_PRODUCER__LEADER_ELECTION__STEP_DOWN_AFTER_SECONDS"] = str(STEP_DOWN)
    standby = _replica(endpoints, namespace, topic, lease, "replica-b", tmp_path)
    writer = EventWriter(kube_api, namespace)
    leader.start()
    standby.start(wait=False)
    _wait_log(standby, "standing by for lease")
    for i in range(3):
        writer.create(f"before-{i}.{unique('e')}")
    wait_for_occurrences(endpoints.kafka_bootstrap, topic, writer.occurrences)
    kafka = running_pid(native_stack.settings.state_dir, "kafka")
    assert kafka is not None

    os.killpg(kafka, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        for i in range(5):
            writer.create(f"frozen-{i}.{unique('e')}")
        gave_up = _wait_log(leader, "giving the lease up", timeout=60)
        led = _wait_log(standby, "leading: lease", timeout=30)
        holder = _holder(kube_api, namespace, lease)
    finally:
        os.killpg(kafka, signal.SIGCONT)
    for i in range(2):
        writer.create(f"after-{i}.{unique('e')}")
    found = wait_for_occurrences(endpoints.kafka_bootstrap, topic, writer.occurrences, timeout=120)
    codes = (leader.terminate(), standby.terminate())

    assert gave_up - frozen_at < STEP_DOWN + 10  # the bound, and a transaction's start
    assert led - gave_up < LEASE_SECONDS
    assert holder[0] == "replica-b"
    assert set(found) == writer.occurrences
    assert duplicates(found) == {}
    assert "watching from" in standby.log.read_text()
    assert codes == (0, 0)
