"""``kafkube stack``: the native launcher, driven through its command line as a user would."""

from __future__ import annotations

import json
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.services import kafka_cluster_id
from kafkube.compose.settings import StackSettings
from kafkube.core.errors import ConfigError
from tests.conftest import Kafkube

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def kafkube_stack(tmp_path: Path) -> Iterator[Kafkube]:
    """A private stack, brought down after the test, which must leave no process behind."""
    run = Kafkube(tmp_path / "stack")
    yield run
    run("down", check=False)
    assert _processes_of(run.state_dir) == []


def _processes_of(state_dir: Path) -> list[int]:
    """Every live process that this stack started, found by the marker in its environment."""
    marker = f"KAFKUBE_STACK_SERVICE={state_dir}/".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(v.startswith(marker) for v in environ.split(b"\0")):
            pids.append(int(proc.name))
    return pids


def _status(run: Kafkube) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in json.loads(run("status", "--json").stdout)}


def _exports(run: Kafkube) -> dict[str, str]:
    exports = {}
    for line in run("env").stdout.splitlines():
        assert line.startswith("export ")
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = shlex.split(value)[0]
    return exports


def test_up_twice_is_harmless_and_down_leaves_no_process_behind(kafkube_stack: Kafkube) -> None:
    kafkube_stack("up", "minio", "gcs")
    first = _status(kafkube_stack)

    kafkube_stack("up", "minio", "gcs")
    second = _status(kafkube_stack)

    assert first["minio"]["ready"]
    assert first["gcs"]["ready"]
    assert (second["minio"]["pid"], second["gcs"]["pid"]) == (
        first["minio"]["pid"],
        first["gcs"]["pid"],
    )
    assert sorted(_processes_of(kafkube_stack.state_dir)) == sorted(
        [first["minio"]["pid"], first["gcs"]["pid"]]
    )

    stopped = kafkube_stack("down")

    assert "gcs" in stopped.stdout
    assert "minio" in stopped.stdout
    assert _processes_of(kafkube_stack.state_dir) == []
    assert not any(row["pid"] for row in _status(kafkube_stack).values())


def test_one_service_stops_and_restarts_alone_and_keeps_its_data(kafkube_stack: Kafkube) -> None:
    import boto3  # noqa: PLC0415

    kafkube_stack("up", "minio", "gcs")
    exports = _exports(kafkube_stack)
    s3 = boto3.client(
        "s3",
        endpoint_url=exports["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
        region_name=exports["AWS_REGION"],
    )
    s3.create_bucket(Bucket="kept")
    s3.put_object(Bucket="kept", Key="a", Body=b"survives a restart")
    gcs_pid = _status(kafkube_stack)["gcs"]["pid"]

    kafkube_stack("down", "minio")
    while_down = _status(kafkube_stack)
    kafkube_stack("up", "minio")
    after = _status(kafkube_stack)

    assert while_down["minio"]["pid"] is None
    assert while_down["gcs"]["ready"]
    assert while_down["gcs"]["pid"] == gcs_pid
    assert after["minio"]["ready"]
    assert _exports(kafkube_stack)["AWS_ENDPOINT_URL_S3"] == exports["AWS_ENDPOINT_URL_S3"]
    assert s3.get_object(Bucket="kept", Key="a")["Body"].read() == b"survives a restart"


def test_env_points_the_gcs_client_at_the_emulator(kafkube_stack: Kafkube) -> None:
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
    from google.cloud import storage  # noqa: PLC0415

    kafkube_stack("up", "gcs")
    exports = _exports(kafkube_stack)
    client = storage.Client(
        project="p",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": exports["STORAGE_EMULATOR_HOST"]},
    )
    client.create_bucket("from-env").blob("x").upload_from_string(b"y")

    assert [b.name for b in client.list_blobs("from-env")] == ["x"]
    assert set(exports) >= {
        "KAFKA_BOOTSTRAP_SERVERS",
        "KUBECONFIG",
        "AWS_ENDPOINT_URL_S3",
        "STORAGE_EMULATOR_HOST",
    }


def _listening(port: int) -> set[str]:
    """The local addresses something listens on at ``port``, as the kernel lists them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, and as IPv6-mapped


def test_the_registry_answers_confluents_api_on_loopback_only_and_env_exports_it(
    kafkube_stack: Kafkube,
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415

    kafkube_stack("up", "registry")
    url = _exports(kafkube_stack)["SCHEMA_REGISTRY_URL"]
    with SchemaRegistryClient({"url": url}) as client:
        compatibility = client.get_compatibility()
    ports = json.loads((kafkube_stack.state_dir / "stack.json").read_text())["ports"]

    assert url.endswith("/apis/ccompat/v7")
    assert compatibility == "BACKWARD"  # Confluent's default rule
    for name in ("registry", "registry_management"):  # Quarkus' management port included
        assert _listening(ports[name]), name
        assert _listening(ports[name]) <= LOOPBACK, name


def test_the_api_server_brings_its_etcd_along(kafkube_stack: Kafkube) -> None:
    kafkube_stack("up", "kube-apiserver")

    status = _status(kafkube_stack)

    assert status["etcd"]["ready"]
    assert status["kube-apiserver"]["ready"]
    assert status["kafka"]["pid"] is None


def test_a_taken_port_is_refused_with_the_service_and_port_named(kafkube_stack: Kafkube) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        result = kafkube_stack("--port", f"minio={port}", "up", "minio", check=False)

    assert result.returncode == 1
    assert f"minio cannot start: port {port} (minio) is taken" in result.stderr


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"host": "0.0.0.0"}, "stack.host"),  # noqa: S104 - the address being refused
        ({"ports": {"kafak": 9092}}, "stack.ports.kafak"),
        ({"ports": {"kafka": 70000}}, "stack.ports.kafka"),
        ({"kafka_heap_mb": 64}, "stack.kafka_heap_mb"),
    ],
)
def test_bad_stack_settings_are_refused_naming_the_field(
    settings: dict[str, Any], field: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as refused:
        StackSettings(cache_dir=tmp_path, state_dir=tmp_path, **settings)

    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_kafka_logs_readably_and_its_own_tools_reach_it_through_the_wrapper(
    kafkube_stack: Kafkube,
) -> None:
    kafkube_stack("--kafka-heap-mb", "256", "up", "kafka")

    topics = kafkube_stack(
        "kafka-tool", "kafka-topics", "--create", "--topic", "via-wrapper", "--partitions", "2"
    )
    described = kafkube_stack("kafka-tool", "kafka-topics", "--describe", "--topic", "via-wrapper")
    log = (kafkube_stack.state_dir / "kafka.log").read_text()

    assert "Created topic via-wrapper." in topics.stdout
    assert "PartitionCount: 2" in described.stdout
    # The log4j2 SLF4J binding is on the classpath: the broker's own lines, no SLF4J fallback noise.
    assert "Kafka Server started" in log
    assert "SLF4J" not in log


def test_kafka_cluster_ids_never_look_like_an_option() -> None:
    # One CI run failed because the storage tool read an id starting with "-" as an option.
    ids = [kafka_cluster_id() for _ in range(5000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert all(len(cluster_id) == 22 for cluster_id in ids)
    assert len(set(ids)) == len(ids)


def test_a_node_port_taken_before_the_node_starts_is_chosen_again_and_kept(
    tmp_path: Path,
) -> None:
    """The node's ports are chosen with the stack and bound minutes later; a client's outgoing
    connection may take one meanwhile (they are in the kernel's ephemeral range). A core
    service's port, which others are configured with, is left to fail clearly."""
    from kafkube.compose.stack import Stack  # noqa: PLC0415

    settings = StackSettings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    stack = Stack(settings)
    taken = stack.state.ports["kube_controller_manager"]
    kafka = stack.state.ports["kafka"]
    with socket.socket() as squatter, socket.socket() as other:
        squatter.bind((stack.state.host, taken))
        other.bind((stack.state.host, kafka))
        stack._repick_taken_ports("kube-controller-manager")  # noqa: SLF001 - before its start
        stack._repick_taken_ports("kafka")  # noqa: SLF001

    chosen = stack.state.ports["kube_controller_manager"]
    assert chosen != taken
    saved = json.loads((tmp_path / "state" / "stack.json").read_text())["ports"]
    assert saved["kube_controller_manager"] == chosen
    assert stack.state.ports["kafka"] == saved["kafka"] == kafka
