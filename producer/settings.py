"""The producer's settings: the configuration's ``producer`` section (its fields, defaults and
bounds are written here only), and what the producer runs with, made from it in the entry
point and passed down."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from kafkube.core.errors import ConfigError
from kafkube.core.settings import Section, check_client_properties
from kafkube.schemas.filters import EventFilter, EventFilterConfig
from kafkube.schemas.topics import is_cluster_name, producer_state_topic


def _cluster_name(name: str | None) -> str | None:
    if name is not None and not is_cluster_name(name):
        raise ValueError(
            f"not a cluster name: {name!r} (letters, digits, '.', '_', '-', at most 63, a "
            "letter or digit first)"
        )
    return name


class LeaderElection(Section):
    """Producer high availability: replicas elect one leader on a coordination.k8s.io Lease."""

    enabled: bool = Field(default=False, description="Run the producer only while leading.")
    namespace: str = Field(
        "default", description="Namespace of the Lease (the producer's own, in a pod)."
    )
    lease_name: str = Field("kafkube-producer", description="Name of the Lease object.")
    identity: str = Field(
        default_factory=socket.gethostname, description="This replica's name (the pod name)."
    )
    lease_duration_seconds: Annotated[int, Field(ge=2, le=300)] = Field(
        15, description="A leader that has not renewed for this long is replaced."
    )
    renew_period_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        2.0, description="How often the leader renews, and a follower tries."
    )
    step_down_after_seconds: Annotated[float, Field(gt=0)] = Field(
        120.0,
        description="A leader that cannot publish to Kafka for this long gives the Lease up "
        "(a standby with a working path takes over); it competes again once Kafka answers.",
    )

    @model_validator(mode="after")
    def _renews_in_time(self) -> LeaderElection:
        if self.renew_period_seconds * 2 > self.lease_duration_seconds:
            raise ValueError("renew_period_seconds must be at most half of lease_duration_seconds")
        return self


class Enrichment(Section):
    """Opt-in: the involved object's labels and controlling owner in every record, read from
    the API server (metadata only), within bounds that never stall the stream."""

    enabled: bool = Field(default=False, description="Read and add labels and owner.")
    cache_size: Annotated[int, Field(ge=1)] = Field(10_000, description="Objects kept.")
    ttl_seconds: Annotated[float, Field(gt=0)] = Field(
        300.0, description="How long an object's labels and owner are kept before a new read."
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        1.0, description="The longest one read may take; a slower one is skipped."
    )
    budget: Annotated[float, Field(gt=0, le=1)] = Field(
        0.2, description="The share of the producer's time reads may take; past it, skipped."
    )
    reads_per_second: Annotated[float, Field(gt=0)] = Field(
        50.0, description="At most this many reads a second; past it, skipped."
    )


class ProducerConfig(Section):
    """``kafkube produce``: watches the API server, publishes each occurrence once."""

    cluster: Annotated[str | None, AfterValidator(_cluster_name)] = Field(
        None,
        description="Name of the Kubernetes cluster, written into every record and keying "
        "this producer's state: letters, digits, '.', '_', '-', at most 63, a letter or digit "
        "first.",
    )
    producer_id: str = Field(
        default_factory=socket.gethostname, description="This producer's name, in every record."
    )
    kubeconfig: Path | None = Field(None, description="Else the in-cluster service account.")
    api_version: Literal["v1", "events.k8s.io/v1"] = Field(
        "v1", description="Which Event API to watch."
    )
    namespaces: list[str] = Field(
        default_factory=list, description="Watch only these; all if empty."
    )
    partitions: Annotated[int, Field(ge=1, le=10_000)] = Field(
        6, description="Partitions of the topic, if kafkube creates it."
    )
    transactional_id: str = Field("", description="Default kafkube-producer-<cluster>.")
    batch_max_events: Annotated[int, Field(ge=1)] = Field(
        5000, description="Events per transaction at most."
    )
    linger_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        0.2, description="How long a batch waits for more events."
    )
    watch_timeout_seconds: Annotated[int, Field(ge=1)] = Field(
        300, description="Each watch request's server-side timeout."
    )
    forget_after_seconds: Annotated[float, Field(gt=0)] = Field(
        3 * 3600.0, description="Forget an event's uid this long after it was last seen."
    )
    since: datetime | None = Field(
        None, description="At the very first start, skip events last seen before this time."
    )
    filter: EventFilterConfig = Field(
        default_factory=EventFilterConfig,
        description="What the producer publishes: an excluded occurrence is counted, moves "
        "the checkpoint on and is not published.",
    )
    enrich: Enrichment = Field(default_factory=Enrichment)
    leader_election: LeaderElection = Field(default_factory=LeaderElection)


@dataclass(frozen=True)
class ProducerSettings:
    """What the producer runs with, made in the entry point: the ``producer`` section as it
    is, and the Kafka and registry clients' properties made from the ``kafka`` section."""

    producer: ProducerConfig
    kafka: dict[str, Any]  # librdkafka properties, passed through (and the CLI's error callback)
    topic: str
    # The schema registry client's configuration; None: the registry-less framing.
    registry: dict[str, str] | None
    subject_strategy: str  # topic or record (kafkube.core.registry.SUBJECT_STRATEGIES)

    def __post_init__(self) -> None:
        if not self.producer.cluster:
            raise ConfigError("producer.cluster", "must name the cluster (it is in every record)")
        check_client_properties(
            self.kafka,
            ("enable.idempotence", "acks", "transactional.id", "isolation.level"),
            "for exactly-once delivery",
        )
        since = self.producer.since
        if since is not None and since.tzinfo is None:
            raise ConfigError("producer.since", "must carry a timezone, e.g. 2026-11-25T00:00:00Z")

    @property
    def cluster(self) -> str:
        return self.producer.cluster or ""  # never empty: __post_init__ refuses it

    @property
    def event_filter(self) -> EventFilter:
        return self.producer.filter.event_filter()

    @property
    def state_topic(self) -> str:
        return producer_state_topic(self.topic)

    @property
    def effective_transactional_id(self) -> str:
        return self.producer.transactional_id or f"kafkube-producer-{self.cluster}"
