"""Wires a sink from its settings: the shared runner and one destination."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kafkube.consumers.destinations import Destination
from kafkube.consumers.runner import SinkRunner, SinkStats
from kafkube.consumers.settings import SinkSettings


def run_sink(
    settings: SinkSettings, destination: Destination, *, stop: threading.Event
) -> SinkStats:
    return SinkRunner(settings, destination).run(stop)


def kafka_probe(kafka: Mapping[str, Any], topic: str) -> Callable[[], str | None]:
    """A readiness check: None while Kafka answers for the topic, else why not (a few
    seconds at most, one metadata request; run off the sink's own thread)."""
    admin = AdminClient({**kafka, "log_level": 0})

    def probe() -> str | None:
        try:
            found = admin.list_topics(topic, timeout=3).topics.get(topic)
        except KafkaException as err:
            return f"Kafka at {kafka.get('bootstrap.servers')} does not answer: {err.args[0].str()}"
        if found is None or found.error is not None:
            return f"Kafka does not have the topic {topic}"
        return None

    return probe
