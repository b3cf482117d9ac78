"""Wires a sink from its settings: the shared runner and one destination."""

from __future__ import annotations

import dataclasses
import threading

from kafkube.consumers import metrics
from kafkube.consumers.destinations import Destination
from kafkube.consumers.runner import SinkRunner, SinkStats
from kafkube.consumers.settings import SinkSettings
from kafkube.core.admin import kafka_probe
from kafkube.core.login import refusing_later_logins, wait_for_kafka_login
from kafkube.core.serving import serving


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
    # With a topic pattern no one topic must exist: Kafka answering is the check.
    topic = None if settings.topics else settings.topic
    checks = {"store": destination.ready, "kafka": kafka_probe(settings.kafka, topic)}
    with serving(listen, metrics.REGISTRY, checks):
        if not wait_for_kafka_login(settings.kafka, stop):
            return SinkStats()
        settings = dataclasses.replace(settings, kafka=refusing_later_logins(settings.kafka))
        return run_sink(settings, destination, stop=stop)
