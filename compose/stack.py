"""One local stack: its services, the ports and secrets it chose, and up / down / status.

The first ``up`` picks free loopback ports (or the ones asked for) and an admin
token, and keeps them in ``<state>/stack.json``; every later start reuses
them, so addresses handed out stay true across restarts of one service.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kafkube.compose import fetch, node, processes
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.node import NODE_SERVICES
from kafkube.compose.services import REGISTRY_API, Service, StackState, kafka_java_argv
from kafkube.compose.services import SERVICES as CORE_SERVICES
from kafkube.compose.settings import (
    DEFAULT_PORTS,
    NODE,
    PORT_NAMES,
    READY_TIMEOUT_SECONDS,
    StackSettings,
)
from kafkube.compose.settings import SERVICES as DEFAULT_SERVICES
from kafkube.core.errors import ConfigError, ServiceError
from kafkube.core.waiting import Deadline

log = logging.getLogger(__name__)

# Kafka's command-line tools by their script names, and the main class each script runs.
KAFKA_TOOLS = {
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-configs": "kafka.admin.ConfigCommand",
}
# Tools that take --bootstrap-server; the wrapper points them at this stack unless told otherwise.
_TAKES_BOOTSTRAP = set(KAFKA_TOOLS) - {"kafka-producer-perf-test"}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    ready: bool
    address: str
    log: Path


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(_family(host)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _save(state: StackState) -> None:
    """The stack's decisions (its ports, its admin token), kept for its next start."""
    saved_path = state.state_dir / "stack.json"
    saved_path.write_text(
        json.dumps({"ports": state.ports, "admin_token": state.admin_token}, indent=2)
    )
    saved_path.chmod(0o600)


def free_port(host: str) -> int:
    with socket.socket(_family(host)) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _with_names(names: Iterable[str]) -> list[str]:
    return [n for name in names for n in (NODE_SERVICES if name == NODE else (name,))]


# Every service in start order: the default ones, the optional ones, then the node's.
SERVICES: dict[str, Service] = {**CORE_SERVICES, **NODE_SERVICES}


def _with_requirements(names: Iterable[str]) -> list[str]:
    """The services asked for ("node" for all of the node's) plus all they need, in start order."""
    wanted: set[str] = set()
    pending = _with_names(names)
    while pending:
        name = pending.pop()
        if name not in SERVICES:
            known = ", ".join([*SERVICES, NODE])
            raise ConfigError("service", f"unknown service {name!r}; known: {known}")
        if name not in wanted:
            wanted.add(name)
            pending.extend(SERVICES[name].requires)
    return [name for name in SERVICES if name in wanted]


def _waves(order: list[str]) -> list[list[str]]:
    """The services in groups that start together, each after the ones it requires are ready."""
    depth: dict[str, int] = {}
    for name in order:  # start order lists what a service requires before it
        depth[name] = 1 + max((depth[r] for r in SERVICES[name].requires), default=-1)
    return [[n for n in order if depth[n] == level] for level in range(max(depth.values()) + 1)]


class Stack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self._state: StackState | None = None

    @property
    def state(self) -> StackState:
        if self._state is None:
            self._state = self._load_or_create_state()
        return self._state

    def _load_or_create_state(self) -> StackState:
        state_dir = self.settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        state_dir.chmod(0o700)
        saved_path = state_dir / "stack.json"
        saved = json.loads(saved_path.read_text()) if saved_path.exists() else {}
        ports: dict[str, int] = dict(saved.get("ports", {}))
        host = self.settings.host
        for name in PORT_NAMES:
            asked = self.settings.ports.get(name, 0)
            if asked:
                ports[name] = asked
            elif ports.get(name):
                continue
            elif self.settings.prefer_default_ports and _port_is_free(host, DEFAULT_PORTS[name]):
                ports[name] = DEFAULT_PORTS[name]
            else:
                ports[name] = free_port(host)
        token = saved.get("admin_token") or secrets.token_hex(24)
        state = StackState(settings=self.settings, ports=ports, admin_token=token)
        _save(state)
        return state

    def fetch(
        self,
        *,
        node: bool = False,
        helm: bool = False,
        nessie: bool = False,
        keycloak: bool = False,
    ) -> dict[str, Path]:
        return fetch.fetch_all(
            self.settings, node=node, helm=helm, nessie=nessie, keycloak=keycloak
        )

    def up(
        self, names: Iterable[str] = DEFAULT_SERVICES, *, timeout: float = READY_TIMEOUT_SECONDS
    ) -> Endpoints:
        """Start what is not running yet and wait until every service answers; harmless twice."""
        state = self.state
        for wave in _waves(_with_requirements(names)):
            # Build or fetch the whole wave before starting any of it, so none waits on a build.
            starting = [n for n in wave if processes.running_pid(state.state_dir, n) is None]
            for name in starting:
                self._repick_taken_ports(name)
            launches = {name: SERVICES[name].prepare(state) for name in starting}
            for name, launch in launches.items():
                self._check_ports_free(SERVICES[name])
                processes.start(state.state_dir, name, launch.argv, env=launch.env)
            self._wait_ready(wave, timeout=timeout)
            for name in wave:
                hook = SERVICES[name].ready_hook
                if hook is not None:
                    hook(state)
        return self.endpoints()

    def _repick_taken_ports(self, name: str) -> None:
        """A node service's port, chosen with the stack but bound only when the node starts
        (minutes later in the tests), may meanwhile have been taken by any client's outgoing
        connection: a free port is in the kernel's ephemeral range. Such a port is chosen
        again, and saved; nothing else of the stack refers to the node's ports. A port the
        settings asked for is left to fail clearly."""
        if name not in NODE_SERVICES:
            return
        state = self.state
        for port_name in SERVICES[name].ports:
            port = state.ports[port_name]
            if port_name in self.settings.ports or _port_is_free(state.host, port):
                continue
            state.ports[port_name] = free_port(state.host)
            log.info(
                "%s: port %d was taken meanwhile; %d instead", name, port, state.ports[port_name]
            )
            _save(state)

    def _check_ports_free(self, service: Service) -> None:
        for port_name in service.ports:
            port = self.state.ports[port_name]
            if not _port_is_free(self.state.host, port):
                raise ServiceError(
                    f"{service.name} cannot start: port {port} ({port_name}) is taken by "
                    "another process; stop it or give another port"
                )

    def _wait_ready(self, names: list[str], *, timeout: float) -> None:
        deadline = Deadline(timeout)
        pending = list(names)
        absent: dict[str, int] = {}  # checks in a row that found no process
        while pending:
            for name in list(pending):
                if processes.running_pid(self.state.state_dir, name) is None:
                    # Twice in a row, 0.2 s apart: a launcher mid-exec is not an exit.
                    absent[name] = absent.get(name, 0) + 1
                    if absent[name] >= 2:
                        raise ServiceError(f"{name} exited while starting:\n{self._log_tail(name)}")
                    continue
                absent.pop(name, None)
                if SERVICES[name].probe(self.state):
                    pending.remove(name)
            if pending and deadline.passed():
                raise ServiceError(
                    f"{', '.join(pending)} not ready after {timeout:.0f} s:\n"
                    + "\n".join(self._log_tail(name) for name in pending)
                )
            if pending:
                time.sleep(0.2)

    def _log_tail(self, name: str, lines: int = 25) -> str:
        log = processes.log_file(self.state.state_dir, name)
        try:
            text = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {log})"
        return f"--- last lines of {log}:\n" + "\n".join(text)

    def down(self, names: Iterable[str] = SERVICES) -> list[str]:
        """Stop the services (dependents first); the names of those that were running."""
        wanted = set(_with_names(names))
        stopped = []
        for name in reversed(list(SERVICES)):
            if name not in wanted:
                continue
            if processes.stop(self.state.state_dir, name):
                stopped.append(name)
            hook = SERVICES[name].stop_hook
            if hook is not None:
                hook(self.state)
        return stopped

    def restart(self, names: Iterable[str], *, timeout: float = READY_TIMEOUT_SECONDS) -> Endpoints:
        names = list(names)
        self.down(names)
        return self.up(names, timeout=timeout)

    def load_image(self, archive: Path) -> list[str]:
        """Import an image archive into the node's containerd (``up node`` first)."""
        if processes.running_pid(self.state.state_dir, "containerd") is None:
            raise ServiceError("the node is not running: kafkube stack up node")
        return node.load_image(self.state, archive)

    def status(self) -> list[ServiceStatus]:
        state = self.state
        rows = []
        for name, service in SERVICES.items():
            pid = processes.running_pid(state.state_dir, name)
            address = ", ".join(f"{state.host}:{state.ports[port]}" for port in service.ports)
            rows.append(
                ServiceStatus(
                    name=name,
                    pid=pid,
                    ready=pid is not None and service.probe(state),
                    address=address,
                    log=processes.log_file(state.state_dir, name),
                )
            )
        return rows

    def endpoints(self) -> Endpoints:
        state = self.state
        return Endpoints(
            kafka_bootstrap=f"{state.host}:{state.ports['kafka']}",
            kubeconfig=str(state.kubeconfig_path),
            s3_endpoint=state.url("minio"),
            s3_access_key=self.settings.s3_access_key,
            s3_secret_key=self.settings.s3_secret_key,
            s3_region="us-east-1",
            gcs_endpoint=state.url("gcs"),
            schema_registry_url=state.url("registry") + REGISTRY_API,
        )

    def kafka_tool_argv(self, tool: str, args: list[str], *, heap_mb: int = 512) -> list[str]:
        """The command line that runs one of Kafka's own tools against this stack."""
        if tool not in KAFKA_TOOLS:
            raise ConfigError(
                "tool", f"unknown Kafka tool {tool!r}; known: {', '.join(KAFKA_TOOLS)}"
            )
        argv = kafka_java_argv(
            self.state, KAFKA_TOOLS[tool], heap_mb=heap_mb, log_config="tools-log4j2.properties"
        )
        extra = []
        if tool in _TAKES_BOOTSTRAP and not any(a.startswith("--bootstrap-server") for a in args):
            extra = ["--bootstrap-server", self.endpoints().kafka_bootstrap]
        return [*argv, *extra, *args]
