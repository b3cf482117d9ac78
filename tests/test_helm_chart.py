"""deploy/helm/kafkube: rendered by a real helm (built from the Go module proxy and cached),
every manifest validated by the stack's kube-apiserver (a server-side dry run with strict
field validation, so an unknown or misspelt field fails), and the config it carries is
a valid kafkube configuration."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafkube.cli.configuration.loading import load
from kafkube.compose import fetch
from kafkube.compose.stack import Stack
from kafkube.consumers.settings import SINK_TYPES
from tests.charts import CHART, KUBE, render_chart
from tests.charts import monitoring_crds as monitoring_crds_released
from tests.conftest import unique

pytestmark = pytest.mark.timeout(900)  # the first run builds helm (minutes)


FULL = {
    "clusterName": "prod-eu-1",
    "kafka": {
        "bootstrapServers": "kafka-0.kafka:9093",
        "security": {
            "protocol": "SASL_SSL",
            "saslMechanism": "SCRAM-SHA-512",
            "username": "kafkube",
            "passwordSecret": {"name": "kafka-credentials", "key": "password"},
            "tlsSecret": {"name": "kafka-tls", "mutual": True},
        },
        "properties": {"client.id": "kafkube"},
    },
    "producer": {
        "namespaces": ["payments", "checkout"],
        "filter": {"exclude": ["type=Normal,reason=Pulled|Created"]},
    },
    "sinks": {
        "file": {"enabled": True, "replicas": 1, "persistence": {"existingClaim": "events"}},
        "s3": {
            "enabled": True,
            "config": {"bucket": "k8s-events", "prefix": "prod", "format": "jsonl",
                       "rotation": {"max_records": 1000}, "layout": "cluster",
                       "filter": {"include": ["type=Warning"]}},
            "credentialsSecret": {"name": "s3-keys"},
        },
        "gcs": {"enabled": True, "config": {"bucket": "k8s-events"},
                "credentialsSecret": {"name": "gcs"}},
        "iceberg": {"enabled": True,
                    "config": {"warehouse": "s3://lake/events",
                               "catalog_uri": "postgresql+psycopg2://kafkube@pg:5432/iceberg"},
                    "credentialsSecret": {"name": "s3-keys"}},
    },
}  # fmt: skip


MINIMAL = {"clusterName": "c", "kafka": {"bootstrapServers": "k:9092"}}


@pytest.fixture(scope="module")
def helm(native_stack: Stack) -> Path:
    return fetch.wrapped_go_binary(native_stack.settings, "helm")


def _dry_run(kube_api: Any, manifests: list[Any], namespace: str) -> None:
    """Create each manifest with dryRun=All and fieldValidation=Strict: the API server checks it
    against its own schemas and admission, and stores nothing."""
    from kubernetes.dynamic import DynamicClient  # noqa: PLC0415

    dynamic = DynamicClient(kube_api)
    for manifest in manifests:
        resource = dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        where = manifest["metadata"].get("namespace", namespace) if resource.namespaced else None
        resource.create(body=manifest, namespace=where, dry_run="All", field_validation="Strict")


@pytest.fixture
def namespaces(kube_api: Any) -> Iterator[str]:
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    names = [unique("chart"), "payments", "checkout"]
    for name in names:
        try:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except client.ApiException as err:
            if err.status != 409:
                raise
    yield names[0]
    core.delete_namespace(names[0])


@pytest.fixture(scope="module")
def monitoring_crds(kube_api: Any) -> None:
    """The Prometheus Operator's monitor CRDs in the API server, established."""
    from kubernetes import client  # noqa: PLC0415

    extensions = client.ApiextensionsV1Api(kube_api)
    names = []
    for crd in monitoring_crds_released():
        names.append(crd["metadata"]["name"])
        try:
            extensions.create_custom_resource_definition(crd)
        except client.ApiException as err:
            if err.status != 409:
                raise

    def established(name: str) -> bool:
        conditions = extensions.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    deadline = time.monotonic() + 60
    while not all(established(name) for name in names):
        assert time.monotonic() < deadline, f"{names} not established within 60 s"
        time.sleep(0.2)


def _by_kind(manifests: list[Any]) -> dict[tuple[str, str], Any]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def test_helm_lint_passes(helm: Path) -> None:
    linted = subprocess.run(
        [str(helm), "lint", str(CHART), "--strict", "--kube-version", KUBE,
         "--set", "kafka.bootstrapServers=k:9092", "--set", "clusterName=c"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_chart_renders_valid_manifests_for_a_full_deployment(
    helm: Path, kube_api: Any, namespaces: str, tmp_path: Path
) -> None:
    manifests = render_chart(helm, tmp_path, namespaces, FULL)
    _dry_run(kube_api, manifests, namespaces)
    kinds = _by_kind(manifests)

    producer = kinds[("Deployment", "events-kafkube-producer")]["spec"]
    pod = producer["template"]["spec"]
    container = pod["containers"][0]
    assert producer["replicas"] == 2
    assert container["args"] == ["produce"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "KAFKUBE_KAFKA__SECURITY__PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "kafka-credentials", "key": "password"}}
            } in container["env"]  # fmt: skip
    for sink in SINK_TYPES:
        statefulset = kinds[("StatefulSet", f"events-kafkube-sink-{sink}")]["spec"]
        container = statefulset["template"]["spec"]["containers"][0]
        assert container["args"] == ["sink", sink]
        # Static membership: the pod's own, stable name is its instance id.
        assert {
            "name": f"KAFKUBE_SINKS__{sink.upper()}__INSTANCE_ID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        } in container["env"]
        assert statefulset["serviceName"] == f"events-kafkube-sink-{sink}"
        assert ("Service", f"events-kafkube-sink-{sink}") in kinds
        assert statefulset["template"]["spec"]["automountServiceAccountToken"] is False
    assert ("PodDisruptionBudget", "events-kafkube-producer") in kinds
    assert ("PodDisruptionBudget", "events-kafkube-sink-s3") in kinds
    assert ("PodDisruptionBudget", "events-kafkube-sink-file") not in kinds  # one replica
    assert ("ClusterRole", "events-kafkube-events") not in kinds  # namespaces listed: Roles
    roles = [
        m for m in manifests if m["kind"] == "Role" and m["metadata"]["name"].endswith("-events")
    ]
    assert {r["metadata"]["namespace"] for r in roles} == {"payments", "checkout"}
    assert roles[0]["rules"][0]["verbs"] == ["get", "list", "watch"]
    leases = kinds[("Role", "events-kafkube-leases")]["rules"]
    assert {"coordination.k8s.io"} == {g for rule in leases for g in rule["apiGroups"]}

    _check_the_carried_configuration(kinds, namespaces, tmp_path)


def _check_the_carried_configuration(
    kinds: dict[tuple[str, str], Any], namespaces: str, tmp_path: Path
) -> None:
    """The ConfigMap is a kafkube configuration that loads, and says what the values said."""
    carried = kinds[("ConfigMap", "events-kafkube")]["data"]["config.yaml"]
    (tmp_path / "tls").mkdir()
    for name in ("ca.crt", "tls.crt", "tls.key"):
        (tmp_path / "tls" / name).write_text("x")
    local = carried.replace("/etc/kafkube/kafka-tls", str(tmp_path / "tls"))
    (tmp_path / "config.yaml").write_text(local)
    config = load(tmp_path / "config.yaml", {"kafka": {"security": {"password": "from-secret"}}})
    assert config.producer.leader_election.enabled
    assert config.producer.leader_election.namespace == namespaces
    assert config.kafka.client_properties()["ssl.certificate.location"].endswith("tls.crt")
    assert config.producer_settings().producer.namespaces == ["payments", "checkout"]
    assert config.sink_settings("s3").topic == "kafkube.events"
    assert config.sink("s3").format == "jsonl"  # any field of the sink's section passes through
    assert config.sink("s3").rotation.max_records == 1000
    assert config.sink_settings("s3").sink.layout == "cluster"
    assert str(config.sink("s3").filter.event_filter()) == "include (type=Warning)"
    assert (
        str(config.producer_settings().event_filter)
        == "exclude (type=Normal,reason=Pulled|Created)"
    )
    assert config.sink("file").dir == Path("/var/lib/kafkube/events")
    s3_env = kinds[("StatefulSet", "events-kafkube-sink-s3")]["spec"]["template"]["spec"]
    assert {"name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "s3-keys", "key": "AWS_ACCESS_KEY_ID"}}
            } in s3_env["containers"][0]["env"]  # fmt: skip
    gcs_pod = kinds[("StatefulSet", "events-kafkube-sink-gcs")]["spec"]["template"]["spec"]
    assert {
        "name": "GOOGLE_APPLICATION_CREDENTIALS",
        "value": "/etc/kafkube/credentials/key.json",
    } in gcs_pod["containers"][0]["env"]
    assert {"name": "credentials", "secret": {"secretName": "gcs"}} in gcs_pod["volumes"]


def test_the_default_values_watch_every_namespace_with_a_cluster_role(
    helm: Path, kube_api: Any, namespaces: str, tmp_path: Path
) -> None:
    manifests = render_chart(
        helm, tmp_path, namespaces, {"clusterName": "c", "kafka": {"bootstrapServers": "k:9092"}}
    )
    _dry_run(kube_api, manifests, namespaces)
    kinds = _by_kind(manifests)

    assert ("ClusterRole", "events-kafkube-events") in kinds
    assert ("ClusterRoleBinding", "events-kafkube-events") in kinds
    assert not [m for m in manifests if m["metadata"]["name"].startswith("events-kafkube-sink")]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"clusterName": "c"}, "kafka.bootstrapServers is required"),
        ({"kafka": {"bootstrapServers": "k:9092"}}, "clusterName is required"),
        (
            {"clusterName": "c", "kafka": {"bootstrapServers": "k:9092"},
             "sinks": {"s3": {"enabled": True}}},
            "sinks.s3.config.bucket is required",
        ),
        (
            {"clusterName": "c", "kafka": {"bootstrapServers": "k:9092"},
             "sinks": {"file": {"enabled": True}}},
            "sinks.file.persistence.existingClaim is required",
        ),
        # What values.schema.json refuses, helm names by its path.
        ({**MINIMAL, "producer": {"replicas": "two"}},
         "'/producer/replicas': got string, want integer"),
        ({**MINIMAL, "observability": {"logFormat": "xml"}}, "'/observability/logFormat'"),
        ({**MINIMAL, "sinks": {"s3": {"enabled": True, "replica": 3}}},
         "'/sinks/s3': additional prop"),
        ({**MINIMAL, "serviceAccount": {"name": "old"}}, "'/serviceAccount': additional prop"),
        ({**MINIMAL, "unknownTopLevel": 1}, "'unknownTopLevel' not allowed"),
    ],
)  # fmt: skip
def test_missing_or_wrong_values_are_refused_at_render_naming_them(
    helm: Path, tmp_path: Path, values: dict[str, Any], expected: str
) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    rendered = subprocess.run(
        [str(helm), "template", "events", str(CHART), "--kube-version", KUBE,
         "--values", str(values_file)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert rendered.returncode != 0
    assert expected in rendered.stderr


def test_each_token_login_takes_its_settings_and_its_secret_from_a_secret(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OAUTHBEARER: the provider's settings in the configuration, the client secret from a
    Secret by environment; AWS_MSK_IAM: the region (credentials come from IRSA)."""
    oidc = {"tokenEndpoint": "https://idp/realms/k/protocol/openid-connect/token",
            "clientId": "kafkube", "clientSecretSecret": {"name": "idp", "key": "secret"},
            "caSecret": {"name": "idp-ca", "key": "ca.pem"},
            "extensions": {"logicalCluster": "lkc-1"}}  # fmt: skip
    token_logins = {
        "OAUTHBEARER": {"protocol": "SASL_SSL", "saslMechanism": "OAUTHBEARER", "oidc": oidc},
        "AWS_MSK_IAM": {"protocol": "SASL_SSL", "saslMechanism": "AWS_MSK_IAM",
                        "mskIam": {"region": "eu-west-1"}},
    }  # fmt: skip
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAKAFKUBECHART0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chart-test")
    for mechanism, security in token_logins.items():
        values = {**MINIMAL, "kafka": {"bootstrapServers": "k:9098", "security": security}}
        manifests = render_chart(helm, tmp_path, "ns", values)
        kinds = _by_kind(manifests)
        carried = yaml.safe_load(kinds[("ConfigMap", "events-kafkube")]["data"]["config.yaml"])
        pod = kinds[("Deployment", "events-kafkube-producer")]["spec"]["template"]["spec"]
        env, mounts = pod["containers"][0]["env"], pod["containers"][0]["volumeMounts"]
        if mechanism == "OAUTHBEARER":
            # The endpoint's CA from its Secret, mounted where the configuration says (here,
            # where no pod mounts it, a file of this test's stands in for it).
            oidc_carried = carried["kafka"]["security"]["oidc"]
            mounted = {m["name"]: m["mountPath"] for m in mounts}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert Path(oidc_carried["ca_file"]) == Path(mounted["oidc-ca"]) / "ca.pem"
            assert volumes["oidc-ca"]["secret"] == {
                "secretName": "idp-ca",
                "items": [{"key": "ca.pem", "path": "ca.pem"}],
            }
            oidc_carried["ca_file"] = str(tmp_path / "ca.pem")
            (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
        (tmp_path / f"{mechanism}.yaml").write_text(yaml.safe_dump(carried))
        secret = {"kafka": {"security": {"oidc": {"client_secret": "from-the-secret"}}}}
        config = load(tmp_path / f"{mechanism}.yaml", secret if mechanism == "OAUTHBEARER" else {})
        properties = config.kafka.client_properties()
        assert properties["sasl.mechanism"] == "OAUTHBEARER"
        if mechanism == "OAUTHBEARER":
            assert properties["https.ca.location"] == str(tmp_path / "ca.pem")
            assert properties["sasl.oauthbearer.token.endpoint.url"] == oidc["tokenEndpoint"]
            assert properties["sasl.oauthbearer.extensions"] == "logicalCluster=lkc-1"
            assert {
                "name": "KAFKUBE_KAFKA__SECURITY__OIDC__CLIENT_SECRET",
                "valueFrom": {"secretKeyRef": {"name": "idp", "key": "secret"}},
            } in env
        else:
            assert callable(properties["oauth_cb"])
            assert config.kafka.security.msk_iam.region == "eu-west-1"
            assert not [e for e in env if "SECRET" in e["name"]]


def test_enrichment_grants_get_on_exactly_the_kinds_it_reads(
    helm: Path, kube_api: Any, namespaces: str, tmp_path: Path
) -> None:
    from kafkube.producer.enriching import KINDS  # noqa: PLC0415

    values = {"clusterName": "c", "kafka": {"bootstrapServers": "k:9092"},
              "producer": {"enrich": {"enabled": True, "ttl_seconds": 600}}}  # fmt: skip
    manifests = render_chart(helm, tmp_path, namespaces, values)
    _dry_run(kube_api, manifests, namespaces)
    rules = _by_kind(manifests)[("ClusterRole", "events-kafkube-events")]["rules"]
    granted = {
        (group, resource)
        for rule in rules
        if rule["verbs"] == ["get"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    read = {(prefix.removeprefix("/api/v1").removeprefix("/apis/").split("/")[0], plural)
            for prefix, plural, _ in KINDS.values()}  # fmt: skip

    assert granted == read
    carried = _by_kind(manifests)[("ConfigMap", "events-kafkube")]["data"]["config.yaml"]
    assert yaml.safe_load(carried)["producer"]["enrich"] == {"enabled": True, "ttl_seconds": 600}


def test_name_overrides_and_pod_labels_and_annotations_reach_every_pod(
    helm: Path, kube_api: Any, namespaces: str, tmp_path: Path
) -> None:
    values = {
        "clusterName": "c", "kafka": {"bootstrapServers": "k:9092"},
        "fullnameOverride": "events-exporter", "nameOverride": "k8s-events",
        "podLabels": {"team": "platform"}, "podAnnotations": {"owner": "sre"},
        "sinks": {"s3": {"enabled": True, "config": {"bucket": "b"}}},
    }  # fmt: skip
    manifests = render_chart(helm, tmp_path, namespaces, values)
    _dry_run(kube_api, manifests, namespaces)
    kinds = _by_kind(manifests)

    for kind, name in (("Deployment", "events-exporter-producer"),
                       ("StatefulSet", "events-exporter-sink-s3")):  # fmt: skip
        pod = kinds[(kind, name)]["spec"]["template"]["metadata"]
        assert pod["labels"]["team"] == "platform"
        assert pod["labels"]["app.kubernetes.io/name"] == "k8s-events"
        assert pod["annotations"]["owner"] == "sre"
        assert "checksum/config" in pod["annotations"]


S3_ROLE = "eks.amazonaws.com/role-arn"
EVERY_OPTION = {
    **FULL,
    "fullnameOverride": "events-exporter",
    "nameOverride": "k8s-events",
    "podLabels": {"team": "platform"},
    "podAnnotations": {"owner": "sre"},
    "imagePullSecrets": [{"name": "registry"}],
    "serviceAccount": {"create": True, "annotations": {"team": "platform"}},
    "producer": {
        **FULL["producer"],
        "enrich": {"enabled": True},
        "serviceAccount": {"annotations": {"owner": "producer"}},
    },
    "sinks": {
        **FULL["sinks"],
        "s3": {
            **FULL["sinks"]["s3"],
            "serviceAccount": {"annotations": {S3_ROLE: "arn:aws:iam::1:role/s3"}},
        },
        "gcs": {**FULL["sinks"]["gcs"], "serviceAccount": {"name": "existing-gcs"}},
    },
    "observability": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "podMonitor": {"enabled": True, "interval": "15s"},
    },
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "events"}],
    "affinity": {"nodeAffinity": {}},
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
         "whenUnsatisfiable": "ScheduleAnyway"},
    ],
}  # fmt: skip


def test_every_option_on_renders_manifests_the_api_server_takes(
    helm: Path, kube_api: Any, namespaces: str, tmp_path: Path, monitoring_crds: None
) -> None:
    """The values schema takes every option on, and the API server takes what they render:
    monitors (against the Prometheus Operator's own CRDs), a ServiceAccount per component
    (the S3 role on the S3 sink's alone), the metrics Services, the spread constraints."""
    del monitoring_crds
    manifests = render_chart(helm, tmp_path, namespaces, EVERY_OPTION)
    _dry_run(kube_api, manifests, namespaces)
    kinds = _by_kind(manifests)

    accounts = {name: m for (kind, name), m in kinds.items() if kind == "ServiceAccount"}
    assert set(accounts) == {"events-exporter-producer", "events-exporter-sink-file",
                             "events-exporter-sink-s3", "events-exporter-sink-iceberg"}  # fmt: skip
    assert [n for n, m in accounts.items() if S3_ROLE in m["metadata"].get("annotations", {})] == [
        "events-exporter-sink-s3"
    ]
    assert all(m["metadata"]["annotations"]["team"] == "platform" for m in accounts.values())
    pods = {
        name: m["spec"]["template"]["spec"]
        for (kind, name), m in kinds.items()
        if kind in {"Deployment", "StatefulSet"}
    }
    assert {name: pod["serviceAccountName"] for name, pod in pods.items()} == {
        "events-exporter-producer": "events-exporter-producer",
        "events-exporter-sink-file": "events-exporter-sink-file",
        "events-exporter-sink-s3": "events-exporter-sink-s3",
        "events-exporter-sink-gcs": "existing-gcs",
        "events-exporter-sink-iceberg": "events-exporter-sink-iceberg",
    }
    bindings = [
        m for (kind, _), m in kinds.items() if kind in {"RoleBinding", "ClusterRoleBinding"}
    ]
    assert {s["name"] for b in bindings for s in b["subjects"]} == {"events-exporter-producer"}
    for name, pod in pods.items():
        (spread,) = pod["topologySpreadConstraints"]
        component = name.removeprefix("events-exporter-")
        assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
    metrics = [
        m for (kind, _), m in kinds.items()
        if kind == "Service" and m["metadata"]["labels"].get("kafkube.io/metrics")
    ]  # fmt: skip
    assert len(metrics) == 1 + len(SINK_TYPES)  # the producers' and each sink's
    monitor = kinds[("ServiceMonitor", "events-exporter")]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"]["kafkube.io/metrics"] == "true"
    assert (
        kinds[("PodMonitor", "events-exporter")]["spec"]["podMetricsEndpoints"][0]["interval"]
        == "15s"
    )
