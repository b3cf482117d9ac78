"""What the launcher needs to know, decided once in the entry point and passed down; and the
flags of its folders, which the stack's commands, the demo and the benchmark share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import platformdirs

from kafkube.core.errors import ConfigError

KAFKA_VERSION = "4.1.1"
# The broker's heap; the stack's default, modest on two cores.
KAFKA_HEAP_MB = 512
# How long `stack up` waits for each wave of services to answer.
READY_TIMEOUT_SECONDS = 300.0
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
ETCD_VERSION = "v3.6.16"
KUBE_VERSION = "v1.35.4"
HELM_VERSION = "v3.22.0"  # renders deploy/helm/kafkube in the tests
# Apicurio Registry's runnable build from Maven Central: 3.x needs Java 21 or newer; on a
# machine with only Java 17 the last 2.x runs instead (the same Confluent-compatible API).
REGISTRY_VERSION = "3.3.3"
REGISTRY_JAVA = 21
REGISTRY_FALLBACK_VERSION = "2.6.13.Final"

# Project Nessie's runnable jar from Maven Central: an Iceberg REST catalog, kept in memory,
# over the stack's MinIO (its warehouse, a bucket of its own), for the Iceberg sink's REST
# catalog. Java 21 or newer (the Temurin beside the JDK 17 here).
NESSIE_VERSION = "0.99.0"
NESSIE_JAVA = 21
NESSIE_BUCKET = "kafkube-iceberg"

# Keycloak's distribution from Maven Central: an OpenID Connect provider on loopback for the
# token login tests (OAUTHBEARER with OIDC); Java 21 or newer. Not a service of the stack.
KEYCLOAK_VERSION = "26.7.3"
KEYCLOAK_JAVA = 21

SERVICES = ("etcd", "kube-apiserver", "kafka", "minio", "gcs", "registry")
# Started only when named (`kafkube stack up postgres`): PostgreSQL, a system package, and
# Nessie, fetched at its first start.
OPTIONAL_SERVICES = ("postgres", "nessie")
# The optional node (compose/node.py), off unless asked for, by these names or as "node".
NODE = "node"
NODE_SERVICES = ("containerd", "kube-scheduler", "kube-controller-manager", "kubelet")

# The ports each service listens on, by name, and the usual port of each (the ones
# compose/docker-compose.yml publishes too). A stack takes the usual port when it is free
# at first start, else any free one; 0 or absent in ``ports`` means "decide at first start".
DEFAULT_PORTS = {
    "kafka": 9092,
    "kafka_controller": 9093,
    "etcd": 2379,
    "etcd_peer": 2380,
    "kube_apiserver": 6443,
    "minio": 9000,
    "gcs": 4443,
    "registry": 8081,  # the usual port of a schema registry
    "registry_management": 9001,  # Apicurio's health and metrics (Quarkus' management port)
    "postgres": 5432,  # an Iceberg SQL catalog's database
    "nessie": 19120,  # an Iceberg REST catalog (Nessie's usual port)
    "nessie_management": 19121,  # its health (Quarkus' management port)
    # The optional node's components, on loopback too.
    "kube_scheduler": 10259,
    "kube_controller_manager": 10257,
    "kubelet": 10250,
    "kubelet_healthz": 10248,
}
PORT_NAMES = tuple(DEFAULT_PORTS)


@dataclass(frozen=True)
class StackSettings:
    """Where the stack keeps its binaries and its data, and which ports it asks for."""

    cache_dir: Path
    state_dir: Path
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)
    # False for throwaway stacks (the tests'), which must never take a user's usual ports.
    prefer_default_ports: bool = True
    kafka_heap_mb: int = KAFKA_HEAP_MB
    s3_access_key: str = "kafkube"
    s3_secret_key: str = "kafkube-secret"  # noqa: S105 - a local MinIO's fixed test credential

    def __post_init__(self) -> None:
        if self.host not in {"127.0.0.1", "localhost", "::1"}:
            raise ConfigError("stack.host", f"must be a loopback address, got {self.host!r}")
        for name, port in self.ports.items():
            if name not in PORT_NAMES:
                raise ConfigError(
                    f"stack.ports.{name}", f"unknown port; known: {', '.join(PORT_NAMES)}"
                )
            if not 0 <= port <= 65535:
                raise ConfigError(f"stack.ports.{name}", f"must be 0-65535, got {port}")
        if self.kafka_heap_mb < 128:
            raise ConfigError(
                "stack.kafka_heap_mb", f"must be at least 128, got {self.kafka_heap_mb}"
            )
        if len(self.s3_secret_key) < 8:
            raise ConfigError("stack.s3_secret_key", "MinIO needs at least 8 characters")


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("kafkube"))


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("kafkube")) / "stack"


def stack_dir_options(command: Callable[..., None]) -> Callable[..., None]:
    """Where the local stack keeps its built services and its state."""
    options = [
        click.option(
            "--cache-dir", type=click.Path(path_type=Path, file_okay=False),
            envvar="KAFKUBE_CACHE_DIR", default=default_cache_dir,
            show_default="the user cache dir",
            help="Where fetched jars and built binaries are kept.",
        ),
        click.option(
            "--state-dir", type=click.Path(path_type=Path, file_okay=False),
            envvar="KAFKUBE_STACK_DIR", default=default_state_dir,
            show_default="the user state dir",
            help="Where this stack keeps its data, logs, ports and credentials.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command
