"""Topics kafkube writes to, made when missing: the events topic and the producer's own,
and each sink's dead-letter topic (a broker with topic auto-creation off, the usual set-up,
would otherwise drop what is sent to one that does not exist)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kafkube.core.outages import RDKAFKA_LOG

log = logging.getLogger(__name__)


def topic_exists(client: AdminClient | Consumer, topic: str, *, timeout: float) -> bool:
    """Whether the broker has the topic: one metadata request for it, through any client (a
    missing topic comes back in the answer with an error, not absent from it)."""
    found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    return found is not None and found.error is None


def ensure_topic(
    admin_config: Mapping[str, Any], name: str, *, partitions: int, config: dict[str, str]
) -> None:
    """Create the topic if it is missing; an existing topic is left as it is."""
    client: dict[str, Any] = {**admin_config, "logger": RDKAFKA_LOG}
    admin = AdminClient(client)
    if name in admin.list_topics(timeout=30).topics:
        return
    future = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=-1, config=config)]
    )[name]
    try:
        future.result(30)
    except KafkaException as err:
        if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    log.info("created topic %s with %d partitions", name, partitions)


def kafka_probe(kafka: Mapping[str, Any], topic: str | None) -> Callable[[], str | None]:
    """A readiness check: None while Kafka answers for the topic (for any topic: None), else
    why not (a few seconds at most, one metadata request; run off the main thread)."""
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
