"""Wires the producer's parts from its settings: topics, Kafka transactions, the source."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from kafkube.producer.publishing import TransactionalPublisher, ensure_topic
from kafkube.producer.recorded import RecordedEvents
from kafkube.producer.running import EventProducer, ProducerStats
from kafkube.producer.settings import ProducerSettings
from kafkube.producer.watching import EventSource, KubeEvents, open_api_client


def run_producer(
    settings: ProducerSettings,
    *,
    kubeconfig: str | None,
    recording: Path | None,
    stop: threading.Event,
) -> ProducerStats:
    """Run until ``stop`` (or, for a recording, its end); the counts of what was done."""
    ensure_topic(settings.kafka, settings.topic, partitions=settings.partitions, config={})
    ensure_topic(
        settings.kafka,
        settings.state_topic,
        partitions=1,
        config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
    )
    publisher = TransactionalPublisher(
        {**settings.kafka, "transactional.id": settings.effective_transactional_id},
        topic=settings.topic,
        state_topic=settings.state_topic,
    )
    with contextlib.ExitStack() as resources:
        source: EventSource
        if recording is not None:
            source = RecordedEvents(recording)
        else:
            api_client = resources.enter_context(open_api_client(kubeconfig))
            source = KubeEvents(
                api_client, api_version=settings.api_version, namespaces=settings.namespaces
            )
        producer = EventProducer(settings, source, publisher)
        try:
            producer.run(stop)
        finally:
            publisher.close()
    return producer.stats
