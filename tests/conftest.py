"""Real services for the whole test session, and fresh names for each test.

Each service comes, in this order of preference, from
1. the environment: ``KAFKA_BOOTSTRAP_SERVERS``; ``AWS_ENDPOINT_URL_S3`` with
   ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; ``STORAGE_EMULATOR_HOST``;
   ``KAFKUBE_TEST_KUBECONFIG`` (not ``KUBECONFIG``: tests write Events, and
   a shell's ``KUBECONFIG`` often points at a cluster nobody meant to test on);
   and ``KAFKUBE_TEST_SCHEMA_REGISTRY_URL`` (not ``SCHEMA_REGISTRY_URL``: every
   kafkube a test starts would inherit it);
2. testcontainers, when a Docker engine answers;
3. the native launcher (``kafkube.compose``), started in a private state
   directory on free ports and stopped when the session ends.

Kafka's own command-line tools always run from the launcher's cached jars.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from kafkube.compose.settings import StackSettings
from kafkube.compose.stack import Stack

# The image's fixtures, shared by the image's tests and the node's: it is built once a session.
pytest_plugins = ["tests.images"]

CACHE_DIR = Path(
    os.environ.get("KAFKUBE_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kafkube"
)


def unique(prefix: str) -> str:
    """A name no other test uses: Kafka topics, groups, buckets, namespaces."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Services:
    endpoints: Endpoints
    # How each service was provided, for the test report.
    origin: dict[str, str]


def _docker_engine_answers() -> bool:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    import docker  # noqa: PLC0415 - only asked when the environment names no service

    try:
        with contextlib.closing(docker.from_env(timeout=3)) as engine:
            return bool(engine.ping())
    except docker.errors.DockerException:
        return False


def _from_environment() -> dict[str, dict[str, str]]:
    env = os.environ
    given: dict[str, dict[str, str]] = {}
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        given["kafka"] = {"kafka_bootstrap": env["KAFKA_BOOTSTRAP_SERVERS"]}
    if env.get("AWS_ENDPOINT_URL_S3"):
        given["minio"] = {
            "s3_endpoint": env["AWS_ENDPOINT_URL_S3"],
            "s3_access_key": env.get("AWS_ACCESS_KEY_ID", ""),
            "s3_secret_key": env.get("AWS_SECRET_ACCESS_KEY", ""),
            "s3_region": env.get("AWS_REGION", "us-east-1"),
        }
    if env.get("STORAGE_EMULATOR_HOST"):
        given["gcs"] = {"gcs_endpoint": env["STORAGE_EMULATOR_HOST"]}
    # Not SCHEMA_REGISTRY_URL itself: every kafkube the tests start would inherit it and run
    # in registry mode, where a test asks for the registry-less one.
    if env.get("KAFKUBE_TEST_SCHEMA_REGISTRY_URL"):
        given["registry"] = {"schema_registry_url": env["KAFKUBE_TEST_SCHEMA_REGISTRY_URL"]}
    if env.get("KAFKUBE_TEST_KUBECONFIG"):
        given["kube-apiserver"] = {"kubeconfig": env["KAFKUBE_TEST_KUBECONFIG"]}
    return given


def _from_testcontainers(
    names: list[str], stack: contextlib.ExitStack
) -> dict[str, dict[str, str]]:
    """Kafka, MinIO, the GCS emulator and k3s as containers, where a Docker engine runs."""
    started: dict[str, dict[str, str]] = {}
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy  # noqa: PLC0415

    if "kafka" in names:
        from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

        # The module drives Confluent's image; 7.9 is Apache Kafka 3.9 in KRaft mode.
        kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft())
        started["kafka"] = {"kafka_bootstrap": kafka.get_bootstrap_server()}
    if "minio" in names:
        minio = stack.enter_context(
            DockerContainer("minio/minio:RELEASE.2025-09-07T16-13-09Z")
            .with_exposed_ports(9000)
            .with_env("MINIO_ROOT_USER", "kafkube")
            .with_env("MINIO_ROOT_PASSWORD", "kafkube-secret")
            .with_command("server /data --address :9000")
            .waiting_for(LogMessageWaitStrategy("API:"))
        )
        host, port = minio.get_container_host_ip(), minio.get_exposed_port(9000)
        started["minio"] = {
            "s3_endpoint": f"http://{host}:{port}",
            "s3_access_key": "kafkube",
            "s3_secret_key": "kafkube-secret",
            "s3_region": "us-east-1",
        }
    if "gcs" in names:
        gcs = stack.enter_context(
            DockerContainer("fsouza/fake-gcs-server:1.52.2")
            .with_exposed_ports(4443)
            .with_command("-scheme http -backend memory -port 4443")
            .waiting_for(LogMessageWaitStrategy("server started"))
        )
        url = f"http://{gcs.get_container_host_ip()}:{gcs.get_exposed_port(4443)}"
        started["gcs"] = {"gcs_endpoint": url}
    if "registry" in names:
        registry = stack.enter_context(
            DockerContainer("apicurio/apicurio-registry:3.3.3")
            .with_exposed_ports(8080)
            .with_env("APICURIO_RULES_GLOBAL_COMPATIBILITY", "BACKWARD")
            .waiting_for(LogMessageWaitStrategy("Installed features"))
        )
        host, port = registry.get_container_host_ip(), registry.get_exposed_port(8080)
        started["registry"] = {"schema_registry_url": f"http://{host}:{port}/apis/ccompat/v7"}
    if "kube-apiserver" in names:
        from testcontainers.community.k3s import K3SContainer  # noqa: PLC0415

        k3s = stack.enter_context(K3SContainer())
        kubeconfig = Path(stack.enter_context(_tempdir())) / "kubeconfig"
        kubeconfig.write_text(k3s.config_yaml())
        started["kube-apiserver"] = {"kubeconfig": str(kubeconfig)}
    return started


@contextlib.contextmanager
def _tempdir() -> Iterator[str]:
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="kafkube-test-") as path:
        yield path


@pytest.fixture(scope="session")
def native_stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The launcher of this session's private stack (its jars also run Kafka's own tools)."""
    return Stack(
        StackSettings(
            cache_dir=CACHE_DIR,
            state_dir=tmp_path_factory.mktemp("stack"),
            prefer_default_ports=False,
        )
    )


@pytest.fixture(scope="session")
def services(native_stack: Stack) -> Iterator[Services]:
    wanted = ["kafka", "kube-apiserver", "minio", "gcs", "registry"]
    given = _from_environment()
    origin = dict.fromkeys(given, "environment")
    with contextlib.ExitStack() as cleanup:
        missing = [name for name in wanted if name not in given]
        if missing and _docker_engine_answers():
            containers = _from_testcontainers(missing, cleanup)
            given.update(containers)
            origin.update(dict.fromkeys(containers, "testcontainers"))
            missing = [name for name in wanted if name not in given]
        if missing:
            cleanup.callback(native_stack.down)
            native = native_stack.up(missing)
            origin.update(dict.fromkeys(missing, "native launcher"))
            for name in missing:
                given[name] = {
                    "kafka": {"kafka_bootstrap": native.kafka_bootstrap},
                    "kube-apiserver": {"kubeconfig": native.kubeconfig},
                    "minio": {
                        "s3_endpoint": native.s3_endpoint,
                        "s3_access_key": native.s3_access_key,
                        "s3_secret_key": native.s3_secret_key,
                        "s3_region": native.s3_region,
                    },
                    "gcs": {"gcs_endpoint": native.gcs_endpoint},
                    "registry": {"schema_registry_url": native.schema_registry_url},
                }[name]
        fields: dict[str, str] = {}
        for values in given.values():
            fields.update(values)
        yield Services(endpoints=Endpoints(**fields), origin=origin)


# A test that asks for one of these uses a real service: it is in the `services` tier.
SERVICE_FIXTURES = frozenset(
    {"services", "endpoints", "native_stack", "kafka_bootstrap", "kafka_tool", "topic",
     "s3_client", "s3_bucket", "gcs_client", "gcs_bucket", "kube_api", "etcd_url", "namespace",
     "kafkube_stack", "postgres_url", "rest_catalog_url"}
)  # fmt: skip


# Under pytest-xdist (`make test`: -n 2 --dist loadfile) a module's tests stay on one worker,
# so its module fixtures (a secured broker, a node) start once. The image's tests and the
# node's share one worker too, and one build of the image; they take longest, so they go first.
SHARED_SCOPES = {"tests/test_node.py": "tests/test_image.py"}
FIRST_MODULES = ("tests/test_image.py", "tests/test_node.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a service (through a fixture, or its module's own mark) so
    that ``pytest -m "not services"`` runs the pure tier alone; the longest modules first."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in FIRST_MODULES)  # stable


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """By file, as ``--dist loadfile``, with the node's module on the image's worker (its
    ``xdist_group`` marks do nothing under pytest 9, whose node ids xdist 3.8 cannot suffix)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # noqa: PLC0415 - only under xdist

    class SharedFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = str(super()._split_scope(nodeid))
            return SHARED_SCOPES.get(scope, scope)

    return SharedFileScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def _pure_tier_starts_no_service(request: pytest.FixtureRequest) -> None:
    """Under ``-m "not services"`` the launcher refuses to start anything: a test that needs
    a service and is not marked fails there, rather than slowing the pure tier."""
    if "not services" in (request.config.getoption("markexpr") or ""):
        Stack.up = _refuse_in_pure_tier  # type: ignore[method-assign]


def _refuse_in_pure_tier(*_: object, **__: object) -> None:
    raise AssertionError("the pure tier started a service: mark the test `services`")


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"kafkube test services: environment, else testcontainers, else native (cache {CACHE_DIR})"
    )


@pytest.fixture(scope="session")
def endpoints(services: Services) -> Endpoints:
    return services.endpoints


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """A test that fails half-way leaves no producer or sink running into the next one."""
    from tests.processes import STARTED  # noqa: PLC0415

    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.wait(30)


# --- Kafka ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url(services: Services, native_stack: Stack) -> str:
    """The stack's PostgreSQL (Debian's, started on first use), as a SQLAlchemy URL."""
    del services  # the stack is up, and stopped with it
    from kafkube.compose.services import postgres_url as url  # noqa: PLC0415

    native_stack.up(["postgres"])
    return url(native_stack.state)


@pytest.fixture(scope="session")
def rest_catalog_url(services: Services, native_stack: Stack) -> str:
    """The stack's Iceberg REST catalog (Nessie, started on first use, with the native
    MinIO it keeps its warehouse in), as ``sinks.iceberg.catalog_uri`` takes it."""
    del services
    from kafkube.compose.services import nessie_url  # noqa: PLC0415

    native_stack.up(["nessie"])
    return nessie_url(native_stack.state)


@pytest.fixture(scope="session")
def kafka_bootstrap(endpoints: Endpoints) -> str:
    return endpoints.kafka_bootstrap


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh topic of three partitions, deleted after the test."""
    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    name = unique("test")
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


class Kafkube:
    """``kafkube stack ...`` on a private state directory, run as a user runs it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "kafkube",
                "stack",
                "--cache-dir",
                str(CACHE_DIR),
                "--state-dir",
                str(self.state_dir),
                "--any-free-ports",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="session")
def kafka_tool(native_stack: Stack, kafka_bootstrap: str) -> Callable[..., str]:
    """Run one of Kafka's own tools through ``kafkube stack kafka-tool``; returns its stdout."""
    kafkube = Kafkube(native_stack.settings.state_dir)

    def run(tool: str, *args: str) -> str:
        return kafkube("kafka-tool", tool, "--bootstrap-server", kafka_bootstrap, *args).stdout

    return run


# --- S3 -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_client(endpoints: Endpoints) -> Any:
    from kafkube.compose.stores import s3_client  # noqa: PLC0415

    return s3_client(endpoints)


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh bucket, emptied and removed after the test."""
    name = unique("kafkube-test")
    s3_client.create_bucket(Bucket=name)
    yield name
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3_client.delete_bucket(Bucket=name)


# --- GCS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs_client(endpoints: Endpoints) -> Any:
    from kafkube.compose.stores import gcs_client  # noqa: PLC0415

    return gcs_client(endpoints)


@pytest.fixture
def gcs_bucket(gcs_client: Any) -> Iterator[str]:
    """A fresh bucket, emptied and removed after the test."""
    name = unique("kafkube-test")
    bucket = gcs_client.create_bucket(name)
    yield name
    for blob in gcs_client.list_blobs(name):
        blob.delete()
    bucket.delete()


# --- Kubernetes -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kube_api(endpoints: Endpoints) -> Iterator[Any]:
    """An ApiClient of the real ``kubernetes`` client, loaded from the kubeconfig."""
    from kubernetes import client, config  # noqa: PLC0415

    configuration = client.Configuration()
    config.load_kube_config(config_file=endpoints.kubeconfig, client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield api
    api.close()


@pytest.fixture(scope="session")
def etcd_url(services: Services, native_stack: Stack) -> str:
    """The etcd behind the API server, for faults such as compaction (native launcher only)."""
    assert services.origin["kube-apiserver"] == "native launcher", (
        "etcd faults need the launcher's own API server; unset KAFKUBE_TEST_KUBECONFIG"
    )
    return native_stack.state.url("etcd")


@pytest.fixture
def namespace(kube_api: Any) -> Iterator[str]:
    """A fresh namespace, deleted after the test."""
    from kubernetes import client  # noqa: PLC0415

    core = client.CoreV1Api(kube_api)
    name = unique("kafkube-test")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
