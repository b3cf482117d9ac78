"""Helpers for producer tests: run ``kafkube produce``, make events, read the topic back."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from kafkube.compose.endpoints import Endpoints
from kafkube.core.registry import SchemaRegistry
from kafkube.schemas.codec import Codec
from tests.conftest import unique
from tests.processes import KafkubeProcess


@dataclass
class ProducerProcess(KafkubeProcess):
    """``kafkube produce`` as a user runs it, on its own topic and namespace (none: what the
    configuration and ``extra`` say)."""

    endpoints: Endpoints
    topic: str
    namespace: str
    log: Path
    extra: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    _watches_before: int = 0

    def _watches(self) -> int:
        return (
            self.log.read_text().count("watching from resourceVersion") if self.log.exists() else 0
        )

    def start(self, *, wait: bool = True) -> None:
        """Start it; unless told otherwise, wait until it watches (so what follows is seen live)."""
        self._watches_before = self._watches()
        self.launch(
            "produce",
            "--cluster",
            "test",
            "--bootstrap-servers",
            self.endpoints.kafka_bootstrap,
            "--kubeconfig",
            self.endpoints.kubeconfig,
            "--topic",
            self.topic,
            "--partitions",
            "3",
            *(["--namespace", self.namespace] if self.namespace else []),
            "--transactional-id",
            f"tx-{self.topic}",
            "--linger-seconds",
            "0.05",
            *self.extra,
            env=self.env,
        )
        if wait:
            self.wait_watching()

    def wait_watching(self, timeout: float = 60, *, watches: int = 1) -> None:
        """Until this start has opened ``watches`` watches (one per namespace it watches on
        its own), each after its list and checkpoint were committed."""
        deadline = time.monotonic() + timeout
        while self._watches() < self._watches_before + watches:
            assert self.alive(), f"the producer exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, (
                f"not watching after {timeout} s:\n{self.log.read_text()}"
            )
            time.sleep(0.1)


def new_producer(
    endpoints: Endpoints, namespace: str, tmp_path: Path, *extra: str
) -> ProducerProcess:
    return ProducerProcess(
        endpoints=endpoints,
        topic=unique("events"),
        namespace=namespace,
        log=tmp_path / f"producer-{os.getpid()}.log",
        extra=list(extra),
    )


def read_occurrences(
    bootstrap: str, topic: str, registry: str | None = None
) -> list[tuple[str, str]]:
    """Every (uid, resourceVersion) on the topic, as a read_committed consumer sees it."""
    return [(r["uid"], r["resource_version"]) for r in read_records(bootstrap, topic, registry)]


def read_records(
    bootstrap: str, topic: str, registry: str | None = None, *, headers: bool = True
) -> list[dict[str, Any]]:
    """Every record on the topic, decoded (registry-framed ones through ``registry``), as a
    read_committed consumer sees it; with ``headers``, each checked against the producer's
    headers (a topic filled by a test has none)."""
    with contextlib.ExitStack() as closing:
        lookup = None
        if registry is not None:
            lookup = closing.enter_context(SchemaRegistry({"url": registry})).schema
        codec, found = Codec(lookup=lookup), []
        for message in read_messages(bootstrap, topic):
            record = codec.decode(message.value())
            if headers:
                said = dict(message.headers() or [])
                assert said["kafkube.uid"].decode() == record["uid"]
                assert said["kafkube.resource_version"].decode() == record["resource_version"]
            found.append(record)
        return found


def read_messages(bootstrap: str, topic: str) -> list[Message]:
    """Every committed message of the topic, to its end, as a read_committed consumer sees it."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending, found = set(partitions), []
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF  # noqa: SLF001
                pending.discard(message.partition())
                continue
            found.append(message)
        assert not pending, "the topic was not read to its end"
        return found
    finally:
        consumer.close()


def wait_for_occurrences(
    bootstrap: str,
    topic: str,
    expected: set[tuple[str, str]],
    *,
    timeout: float = 60,
    registry: str | None = None,
) -> list[tuple[str, str]]:
    """Read until every expected occurrence is on the topic (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    while True:
        found = read_occurrences(bootstrap, topic, registry)
        if expected <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def duplicates(found: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    return {occurrence: n for occurrence, n in Counter(found).items() if n > 1}


class EventWriter:
    """Creates and patches core/v1 Events through the real API, remembering what the server said."""

    def __init__(self, kube_api: Any, namespace: str) -> None:
        from kubernetes import client  # noqa: PLC0415

        self.core = client.CoreV1Api(kube_api)
        self.client = client
        self.namespace = namespace
        self.occurrences: set[tuple[str, str]] = set()
        self.counts: dict[str, int] = {}

    def create(self, name: str, event_type: str = "Warning", *, about: str | None = None) -> str:
        """An Event about the Pod ``about`` (by default, the name up to its first dot)."""
        client = self.client
        created = self.core.create_namespaced_event(
            self.namespace,
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=name),
                involved_object=client.V1ObjectReference(
                    kind="Pod",
                    name=about if about is not None else name.split(".", maxsplit=1)[0],
                    namespace=self.namespace,
                    uid=unique("pod"),
                ),
                reason="BackOff",
                message=f"Back-off restarting failed container in {name}",
                type=event_type,
                count=1,
            ),
        )
        self.occurrences.add((created.metadata.uid, created.metadata.resource_version))
        self.counts[name] = 1
        return str(created.metadata.name)

    def repeat(self, name: str) -> None:
        self.counts[name] += 1
        patched = self.core.patch_namespaced_event(
            name, self.namespace, {"count": self.counts[name]}
        )
        self.occurrences.add((patched.metadata.uid, patched.metadata.resource_version))


def service_account_kubeconfig(
    kube_api: Any, endpoints: Endpoints, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig for the stack's API server that authenticates as this ServiceAccount (a
    token the server issues for it): the server alone decides what it may read."""
    import yaml  # noqa: PLC0415
    from kubernetes import client  # noqa: PLC0415

    token = client.CoreV1Api(kube_api).create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600))
    ).status.token  # fmt: skip
    config = yaml.safe_load(Path(endpoints.kubeconfig).read_text())
    config["users"] = [{"name": "kafkube-admin", "user": {"token": token}}]
    path.write_text(yaml.safe_dump(config))
    return path
