"""A synthetic cluster's events: seeded, realistic, endless. Pure: it only says what happens.

Workloads roll out (scheduled, pulling, pulled, created, started), some fail
their probes or crash-loop (repeats that raise ``count``), get OOM-killed or
evicted, nodes come under pressure, deployments scale. Each step is an
``Operation``: create an Event, or repeat one (the same object, count + 1).
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

_APPS = ("checkout", "cart", "search", "payments", "catalog", "auth", "ledger", "web", "api")
_NAMESPACES = ("default", "shop", "platform", "data", "payments")
_IMAGES = {app: f"registry.example.com/{app}:1.{n}.{n * 3 % 7}" for n, app in enumerate(_APPS)}


@dataclass(frozen=True)
class Operation:
    action: Literal["create", "repeat"]
    namespace: str
    name: str
    event: dict[str, Any] = field(default_factory=dict)  # the whole Event, as core/v1 JSON


def _suffix(chance: random.Random, length: int) -> str:
    return "".join(chance.choices(string.ascii_lowercase + string.digits, k=length))


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class SyntheticCluster:
    """Endless operations, the same for the same seed."""

    def __init__(
        self,
        seed: int = 0,
        *,
        nodes: int = 6,
        namespaces: tuple[str, ...] = _NAMESPACES,
        start: datetime | None = None,
    ) -> None:
        self._namespaces = namespaces
        self._chance = random.Random(seed)  # noqa: S311 - reproducible scenarios, not secrets
        self._nodes = [f"node-{chr(97 + i // 9)}{i % 9 + 1}" for i in range(nodes)]
        self._clock = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        self._open: list[Operation] = []  # events that may repeat

    def _event(  # noqa: PLR0913 - the fields of an Event
        self,
        namespace: str,
        kind: str,
        name: str,
        reason: str,
        message: str,
        *,
        component: str,
        host: str | None = None,
        warning: bool = False,
        field_path: str | None = None,
    ) -> Operation:
        event_name = f"{name}.{self._chance.getrandbits(64):016x}"
        involved: dict[str, Any] = {"kind": kind, "namespace": namespace, "name": name}
        if kind == "Pod":
            involved["apiVersion"] = "v1"
        if field_path:
            involved["fieldPath"] = field_path
        source = {"component": component} | ({"host": host} if host else {})
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "type": "Warning" if warning else "Normal",
            "count": 1,
            "firstTimestamp": _stamp(self._clock),
            "lastTimestamp": _stamp(self._clock),
            "reportingComponent": component,
            "reportingInstance": host or f"{component}-0",
        }
        return Operation("create", namespace, event_name, event)

    def _rollout(self) -> list[Operation]:
        chance = self._chance
        app, namespace = chance.choice(_APPS), chance.choice(self._namespaces)
        node = chance.choice(self._nodes)
        pod = f"{app}-{_suffix(chance, 9)}-{_suffix(chance, 5)}"
        image, container = _IMAGES[app], f"spec.containers{{{app}}}"

        def kubelet(reason: str, message: str, *, warning: bool = False) -> Operation:
            return self._event(
                namespace, "Pod", pod, reason, message,
                component="kubelet", host=node, warning=warning, field_path=container,
            )  # fmt: skip

        pulled_in = chance.uniform(0.4, 9)
        steps = [
            self._event(
                namespace,
                "Pod",
                pod,
                "Scheduled",
                f"Successfully assigned {namespace}/{pod} to {node}",
                component="default-scheduler",
            ),
            kubelet("Pulling", f'Pulling image "{image}"'),
            kubelet("Pulled", f'Successfully pulled image "{image}" in {pulled_in:.3f}s'),
            kubelet("Created", f"Created container {app}"),
            kubelet("Started", f"Started container {app}"),
        ]
        trouble = chance.random()
        if trouble < 0.25:  # a quarter of the pods fail their readiness probe for a while
            probe = "Readiness probe failed: HTTP probe failed with statuscode: 503"
            steps.append(kubelet("Unhealthy", probe, warning=True))
        elif trouble < 0.35:
            crash = f"Back-off restarting failed container {app} in pod {pod}"
            steps.append(kubelet("BackOff", crash, warning=True))
        elif trouble < 0.40:
            killed = f"Memory cgroup out of memory: Killed process {chance.randint(1000, 99999)}"
            steps.append(
                self._event(
                    namespace,
                    "Node",
                    node,
                    "OOMKilling",
                    f"{killed} ({app})",
                    component="kernel-monitor",
                    host=node,
                    warning=True,
                )
            )
        elif trouble < 0.43:
            pressure = "The node was low on resource: memory. Threshold quantity: 100Mi."
            steps.append(kubelet("Evicted", pressure, warning=True))
        return steps

    def _cluster_level(self) -> Operation:
        chance = self._chance
        if chance.random() < 0.5:
            node = chance.choice(self._nodes)
            pressure = chance.choice(["NodeHasDiskPressure", "NodeHasInsufficientMemory"])
            return self._event(
                self._namespaces[0],  # node events land in "default" in a real cluster
                "Node",
                node,
                pressure,
                f"Node {node} status is now: {pressure}",
                component="kubelet",
                host=node,
                warning=True,
            )
        app, namespace = chance.choice(_APPS), chance.choice(self._namespaces)
        replicas = chance.randint(2, 12)
        return self._event(
            namespace,
            "Deployment",
            app,
            "ScalingReplicaSet",
            f"Scaled up replica set {app}-{_suffix(chance, 9)} to {replicas}",
            component="deployment-controller",
        )

    def operations(self) -> Iterator[Operation]:
        pending: list[Operation] = []
        while True:
            self._clock += timedelta(milliseconds=self._chance.randint(50, 900))
            if self._open and self._chance.random() < 0.3:
                first = self._chance.choice(self._open)
                yield Operation("repeat", first.namespace, first.name)
                continue
            if not pending:
                pending = (
                    self._rollout() if self._chance.random() < 0.85 else [self._cluster_level()]
                )
            operation = pending.pop(0)
            if operation.event.get("type") == "Warning":
                self._open.append(operation)
                self._open = self._open[-50:]  # only recent trouble keeps repeating
            yield operation
