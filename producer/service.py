"""Wires the producer's parts from its settings: topics, Kafka transactions, the source."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kafkube.core.admin import ensure_topic, kafka_probe
from kafkube.core.errors import KafkaUnreachableError, RegistryUnreachableError
from kafkube.core.login import refusing_later_logins, wait_for_kafka_login
from kafkube.core.outages import Outage
from kafkube.core.serving import serving
from kafkube.core.waiting import Stopped, waited_out
from kafkube.producer import metrics
from kafkube.producer.dedup import CLUSTER_WIDE, PublishedState, cluster_of
from kafkube.producer.enriching import Enricher
from kafkube.producer.leadership import LeaderElector, lead_then_run
from kafkube.producer.metrics import Exporter
from kafkube.producer.publishing import TransactionalPublisher, read_state
from kafkube.producer.recorded import RecordedEvents
from kafkube.producer.running import EventProducer, ProducerStats
from kafkube.producer.settings import LeaderElection, ProducerSettings
from kafkube.producer.watching import EventSource, KubeEvents, open_api_client
from kafkube.schemas.codec import Codec
from kafkube.schemas.topics import producer_dlq_topic, producer_state_topic

log = logging.getLogger(__name__)


def run_producer(
    settings: ProducerSettings,
    *,
    kubeconfig: str | None,
    recording: Path | None,
    stop: threading.Event,
    on_start: Callable[[ProducerStats], None] = lambda _: None,
) -> ProducerStats:
    """Run until ``stop`` (or, for a recording, its end); the counts of what was done.
    ``on_start`` is handed the live counts first (for health checks), and the Prometheus
    counters follow them after every transaction. Kafka or the registry away at start is
    waited out."""
    try:
        codec = waited_out(
            lambda: registered_codec(settings),
            Outage("the schema registry", log),
            stop,
            away=lambda err: isinstance(err, RegistryUnreachableError),
        )
        waited_out(
            lambda: _make_topics(settings),
            Outage(f"Kafka at {settings.kafka.get('bootstrap.servers')}", log),
            stop,
            away=lambda err: isinstance(err, KafkaException | TimeoutError),
        )
    except Stopped:
        return ProducerStats()
    publisher = TransactionalPublisher(
        {**settings.kafka, "transactional.id": settings.effective_transactional_id},
        topic=settings.topic,
        state_topic=settings.state_topic,
    )
    with contextlib.ExitStack() as resources:
        sources: dict[str, EventSource]
        api_client = None
        if recording is not None:
            sources = {CLUSTER_WIDE: RecordedEvents(recording)}
        else:
            api_client = resources.enter_context(open_api_client(kubeconfig))
            # One watch per listed namespace, so Roles in those namespaces are all it needs.
            sources = {
                scope: KubeEvents(
                    api_client, api_version=settings.producer.api_version, namespace=scope
                )
                for scope in settings.producer.namespaces or (CLUSTER_WIDE,)
            }
        enricher = None
        if settings.producer.enrich.enabled and api_client is not None:
            enricher = Enricher(api_client, settings.producer.enrich)
        producer = EventProducer(
            settings, sources, publisher, observe=Exporter(settings.cluster), codec=codec,
            enricher=enricher,
        )  # fmt: skip
        on_start(producer.stats)
        try:
            producer.run(stop)
        finally:
            publisher.close()
    return producer.stats


def _stalled(terms: list[ProducerStats], bound: float) -> str | None:
    """Why this leader should hand over: events have waited longer than ``bound`` seconds
    for a commit (Kafka unreachable from here); None while it publishes."""
    waiting = terms[-1].waiting_since if terms else 0.0
    waited = time.time() - waiting
    if waiting and waited > bound:
        return f"nothing published for {waited:.0f} s ({terms[-1].kafka_problem})"
    return None


def _make_topics(settings: ProducerSettings) -> None:
    ensure_topic(settings.kafka, settings.topic, partitions=settings.producer.partitions, config={})
    ensure_topic(settings.kafka, producer_dlq_topic(settings.topic), partitions=1, config={})
    ensure_topic(
        settings.kafka,
        settings.state_topic,
        partitions=1,
        config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
    )


def registered_codec(settings: ProducerSettings) -> Codec:
    """The codec the producer writes with: with a schema registry, its writer schema
    registered (or found) under the subject, once, before anything is published, and each
    value framed with that id; else the registry-less framing."""
    codec = Codec()
    if settings.registry is None:
        return codec
    # The registry's client (an HTTP and OAuth stack) only in registry mode: a quicker start.
    from kafkube.core.registry import SchemaRegistry, subject_name  # noqa: PLC0415

    writer = codec.writer
    subject = subject_name(settings.subject_strategy, settings.topic, writer.full_name)
    with SchemaRegistry(settings.registry) as registry:
        schema_id = registry.register(subject, writer.schema_json)
    return Codec(writer=writer, writer_id=schema_id)


def serve_producer(  # noqa: PLR0913 - the service's whole set-up, each by name
    settings: ProducerSettings,
    *,
    kubeconfig: str | None,
    recording: Path | None,
    lease: LeaderElection | None,
    listen: tuple[str, int] | None,
    stop: threading.Event,
) -> ProducerStats:
    """The producer as a service: the login checked, /metrics and the probes on ``listen``,
    and, with a ``lease``, publishing only while this replica leads (a replica standing by
    is ready: it takes over when the lease frees). The counts of the last term led.
    Kafka away, at start or later, is waited out: readiness says why meanwhile."""
    terms: list[ProducerStats] = []  # one for each time this replica led
    standing_by = threading.Event()

    def watching() -> str | None:
        if standing_by.is_set() or (terms and terms[-1].watching):
            return None
        return "the watch is not open"

    def publishing() -> str | None:
        return None if standing_by.is_set() or not terms else terms[-1].kafka_problem

    def publish(halt: threading.Event) -> None:
        standing_by.clear()
        try:
            run_producer(
                settings, kubeconfig=kubeconfig, recording=recording, stop=halt,
                on_start=terms.append,
            )  # fmt: skip
        finally:
            standing_by.set()

    kafka = kafka_probe(settings.kafka, None)
    checks = {"watch": watching, "publishing": publishing, "kafka": kafka}
    with serving(listen, metrics.REGISTRY, checks):
        if not wait_for_kafka_login(settings.kafka, stop):
            return ProducerStats()
        settings = dataclasses.replace(settings, kafka=refusing_later_logins(settings.kafka))
        if lease is None:
            publish(stop)
        else:
            standing_by.set()
            with open_api_client(kubeconfig) as api_client:
                lead_then_run(
                    LeaderElector(api_client, lease), stop, publish,
                    can_publish=lambda: kafka() is None,
                    stalled=lambda: _stalled(terms, lease.step_down_after_seconds),
                )  # fmt: skip
    return terms[-1] if terms else ProducerStats()


@dataclass(frozen=True)
class ClusterStatus:
    checkpoint: str | None  # the resourceVersion the cluster-wide watch resumes from
    namespaces: dict[str, str]  # with a list of namespaces: where each one's watch resumes
    uids_remembered: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "namespace_checkpoints": self.namespaces,
            "uids_remembered": self.uids_remembered,
        }


@dataclass(frozen=True)
class ProducerStatus:
    state_topic: str
    clusters: dict[str, ClusterStatus]  # every cluster whose producer writes to the topic
    last_publish: datetime | None
    legacy_records: int  # written before state keys named their cluster: read by no one

    def to_dict(self) -> dict[str, Any]:
        only = next(iter(self.clusters.values())) if len(self.clusters) == 1 else None
        return {
            "state_topic": self.state_topic,
            "clusters": {name: status.to_dict() for name, status in self.clusters.items()},
            # The one cluster's, when a single cluster writes to the topic.
            **(only.to_dict() if only is not None else {}),
            "legacy_records": self.legacy_records,
            "last_publish": self.last_publish.isoformat() if self.last_publish else None,
        }


def producer_status(kafka: Mapping[str, Any], topic: str) -> ProducerStatus | None:
    """What the producers of ``topic`` last committed, by cluster, read from their state;
    None if none ever ran."""
    state_topic = producer_state_topic(topic)
    try:
        listed = AdminClient(dict(kafka)).list_topics(state_topic, timeout=30).topics
    except KafkaException as err:
        where = kafka.get("bootstrap.servers")
        raise KafkaUnreachableError(f"cannot reach Kafka at {where}: {err}") from err
    found = listed.get(state_topic)
    if found is None or found.error is not None:
        return None
    states: dict[str, PublishedState] = {}
    legacy = 0

    def load(key: bytes, value: bytes | None) -> None:
        nonlocal legacy
        cluster = cluster_of(key)
        if cluster is None:
            legacy += 1
            return
        state = states.get(cluster)
        if state is None:
            state = states[cluster] = PublishedState(cluster=cluster, forget_after=float("inf"))
        state.load(key, value)

    read = read_state(kafka, state_topic, load)
    clusters = {
        name: ClusterStatus(
            checkpoint=state.checkpoint,
            namespaces={s: rv for s, rv in state.checkpoints.items() if s != CLUSTER_WIDE},
            uids_remembered=len(state),
        )
        for name, state in sorted(states.items())
    }
    return ProducerStatus(state_topic, clusters, read.last_written, legacy)
