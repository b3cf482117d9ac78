"""Wires a sink from its settings: the shared runner and one destination."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kafkube.admin import topic_exists
from kafkube.consumers import metrics
from kafkube.consumers.destinations import Destination
from kafkube.consumers.runner import SinkRunner, SinkStats
from kafkube.consumers.settings import SinkSettings
from kafkube.login import check_kafka_login, refusing_later_logins
from kafkube.serving import serving


def run_sink(
    settings: SinkSettings, destination: Destination, *, stop: threading.Event
) -> SinkStats:
    return SinkRunner(settings, destination).run(stop)


def serve_sink(
    settings: SinkSettings,
    destination: Destination,
    *,
    listen: tuple[str, int] | None,
    stop: threading.Event,
) -> SinkStats:
    """A sink as a service: the login checked, then /metrics and the probes (the store
    answers, Kafka has the topic) on ``listen`` while it runs."""
    check_kafka_login(settings.kafka)
    # With a topic pattern no one topic must exist: Kafka answering is the check.
    topic = None if settings.topics else settings.topic
    checks = {"store": destination.ready, "kafka": kafka_probe(settings.kafka, topic)}
    settings = dataclasses.replace(settings, kafka=refusing_later_logins(settings.kafka))
    with serving(listen, metrics.REGISTRY, checks):
        return run_sink(settings, destination, stop=stop)


def kafka_probe(kafka: Mapping[str, Any], topic: str | None) -> Callable[[], str | None]:
    """A readiness check: None while Kafka answers for the topic (for any topic: None), else
    why not (a few seconds at most, one metadata request; run off the sink's own thread)."""
    admin = AdminClient({**kafka, "log_level": 0})

    def probe() -> str | None:
        try:
            if topic is None:
                admin.list_topics(timeout=3)
                return None
            if not topic_exists(admin, topic, timeout=3):
                return f"Kafka does not have the topic {topic}"
        except KafkaException as err:
            return f"Kafka at {kafka.get('bootstrap.servers')} does not answer: {err.args[0].str()}"
        return None

    return probe
