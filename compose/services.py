"""Each service of the stack: what it needs on disk, how it is launched, how it says it is ready.

``prepare`` is the only step that writes files (configs, keys, formatted
storage); ``probe`` asks the running service over the network with the same
kind of request our code will make, so "ready" means usable, not merely alive.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import pwd
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kafkube.compose import fetch
from kafkube.compose.settings import NESSIE_BUCKET, StackSettings
from kafkube.compose.stores import ensure_s3_bucket
from kafkube.core.errors import ServiceError


@dataclass(frozen=True)
class StackState:
    """What one stack instance decided at its first start and keeps across restarts."""

    settings: StackSettings
    ports: dict[str, int]
    admin_token: str

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    @property
    def host(self) -> str:
        return self.settings.host

    def url(self, port_name: str, scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.ports[port_name]}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def apiserver_cert_dir(self) -> Path:
        return self.state_dir / "kube-apiserver" / "certs"

    @property
    def apiserver_cert(self) -> Path:
        """The API server's self-signed chain, written at its first start: what clients trust."""
        return self.apiserver_cert_dir / "apiserver.crt"


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Service:
    name: str
    ports: tuple[str, ...]
    requires: tuple[str, ...]  # started first, and ready before this one is prepared
    prepare: Callable[[StackState], Launch]
    probe: Callable[[StackState], bool]
    ready_hook: Callable[[StackState], object] | None = None  # once ready, at each start
    stop_hook: Callable[[StackState], None] | None = None  # after its process has stopped


def http_ok(
    url: str, *, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None
) -> bool:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - our own loopback URL
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
            status: int = response.status
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return 200 <= status < 300


# --- etcd -------------------------------------------------------------------------------------


def _etcd_prepare(state: StackState) -> Launch:
    data = state.state_dir / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    peer = state.url("etcd_peer")
    return Launch(
        argv=[
            str(fetch.wrapped_go_binary(state.settings, "etcd")),
            "--name=kafkube",
            f"--data-dir={data}",
            f"--listen-client-urls={state.url('etcd')}",
            f"--advertise-client-urls={state.url('etcd')}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=kafkube={peer}",
            "--log-level=warn",
            "--quota-backend-bytes=2147483648",
        ],
        env={},
    )


def _etcd_probe(state: StackState) -> bool:
    return http_ok(state.url("etcd") + "/health")


# --- kube-apiserver ---------------------------------------------------------------------------


def _service_account_keys(directory: Path) -> tuple[Path, Path]:
    """An RSA key pair for signing service-account tokens, made once per stack."""
    private, public = directory / "sa.key", directory / "sa.pub"
    if private.exists() and public.exists():
        return private, public
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - only at first start
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


# The identities of the node's components (compose/node.py), each bound by Kubernetes'
# built-in roles (and the kubelet by the Node authorizer), with their groups.
COMPONENT_USERS = {
    "system:node:kafkube-node": "system:nodes",
    "system:kube-scheduler": "",
    "system:kube-controller-manager": "",
}


def component_token(state: StackState, user: str) -> str:
    """A component's bearer token, derived from the stack's secret admin token."""
    return hmac.new(state.admin_token.encode(), user.encode(), hashlib.sha256).hexdigest()


def _apiserver_prepare(state: StackState) -> Launch:
    home = state.state_dir / "kube-apiserver"
    state.apiserver_cert_dir.mkdir(parents=True, exist_ok=True)
    private, public = _service_account_keys(home)
    tokens = home / "tokens.csv"
    tokens.write_text(
        f'{state.admin_token},kafkube-admin,kafkube-admin,"system:masters"\n'
        + "".join(
            f"{component_token(state, user)},{user},{user}"
            + (f',"{groups}"' if groups else "")
            + "\n"
            for user, groups in COMPONENT_USERS.items()
        )
    )
    tokens.chmod(0o600)
    return Launch(
        argv=[
            str(fetch.wrapped_go_binary(state.settings, "kube-apiserver")),
            f"--etcd-servers={state.url('etcd')}",
            f"--bind-address={state.host}",
            f"--advertise-address={state.host}",
            f"--secure-port={state.ports['kube_apiserver']}",
            f"--cert-dir={state.apiserver_cert_dir}",
            f"--token-auth-file={tokens}",
            # The node's kubelet reaches only what its own pods need (compose/node.py).
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={public}",
            f"--service-account-signing-key-file={private}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # Without it the server loops on "cannot reconcile the loopback endpoint".
            "--endpoint-reconciler-type=none",
            # Watches of Events go straight to etcd, so compacting etcd gives a watch from an old
            # resourceVersion its 410 Gone at once (the watch cache would hide it for a while).
            "--watch-cache-sizes=events#0,events.events.k8s.io#0",
            # The server compacts etcd itself every 5 minutes by default; tests compact on purpose.
            "--etcd-compaction-interval=1h",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "-v=1",
        ],
        env={},
    )


def apiserver_tls(state: StackState) -> ssl.SSLContext | None:
    """Trust exactly the self-signed chain the server wrote into its cert dir."""
    if not state.apiserver_cert.exists():
        return None
    return ssl.create_default_context(cafile=str(state.apiserver_cert))


def _apiserver_probe(state: StackState) -> bool:
    context = apiserver_tls(state)
    if context is None:
        return False
    return http_ok(
        state.url("kube_apiserver", "https") + "/readyz",
        headers={"Authorization": f"Bearer {state.admin_token}"},
        context=context,
    )


def write_kubeconfig(
    state: StackState,
    *,
    path: Path | None = None,
    user: str = "kafkube-admin",
    token: str | None = None,
) -> Path:
    """A kubeconfig (by default the admin's) that the ``kubernetes`` client, kubectl and the
    node's components load."""
    chain = state.apiserver_cert.read_bytes()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kafkube",
                "cluster": {
                    "server": state.url("kube_apiserver", "https"),
                    "certificate-authority-data": base64.b64encode(chain).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token or state.admin_token}}],
        "contexts": [{"name": "kafkube", "context": {"cluster": "kafkube", "user": user}}],
        "current-context": "kafkube",
    }
    path = path or state.kubeconfig_path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    # JSON is YAML: every kubeconfig loader reads it.
    partial.write_text(json.dumps(config, indent=2))
    partial.chmod(0o600)
    partial.rename(path)
    return path


# --- Kafka ------------------------------------------------------------------------------------


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, unpadded, as Kafka's tool makes.

    Like Kafka's ``Uuid.randomUuid``, never one that starts with ``-``: the storage tool's
    argument parser would read it as an option (one CI run in 64 failed that way).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _packaged_text(*parts: str) -> str:
    return resources.files("kafkube.compose").joinpath(*parts).read_text()


def kafka_java_argv(
    state: StackState, main_class: str, *, heap_mb: int, log_config: str
) -> list[str]:
    """The JVM command line for one of Kafka's main classes, from the cached jars."""
    config_path = state.state_dir / "kafka" / log_config
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(_packaged_text("kafka", log_config))
    libs = fetch.kafka_libs(state.settings)
    return [
        "java",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config_path}",
        "-cp",
        f"{libs}/*",
        main_class,
    ]


def _kafka_prepare(state: StackState) -> Launch:
    home = state.state_dir / "kafka"
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    properties = home / "server.properties"
    properties.write_text(
        _packaged_text("kafka", "server.properties").format(
            host=state.host,
            broker_port=state.ports["kafka"],
            controller_port=state.ports["kafka_controller"],
            data_dir=data,
        )
    )
    if not (data / "meta.properties").exists():
        format_argv = kafka_java_argv(
            state, "kafka.tools.StorageTool", heap_mb=256, log_config="tools-log4j2.properties"
        )
        result = subprocess.run(  # noqa: PLW1510 - checked below
            [*format_argv, "format", "-t", kafka_cluster_id(), "-c", str(properties)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
    heap = state.settings.kafka_heap_mb
    argv = kafka_java_argv(state, "kafka.Kafka", heap_mb=heap, log_config="log4j2.properties")
    argv.insert(1, f"-Xms{heap // 2}m")
    return Launch(argv=[*argv, str(properties)], env={})


def _kafka_probe(state: StackState) -> bool:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only the launcher needs it here

    admin = AdminClient(
        {"bootstrap.servers": f"{state.host}:{state.ports['kafka']}", "log_level": 0}
    )
    with contextlib.suppress(Exception):
        metadata = admin.list_topics(timeout=2)
        return bool(metadata.brokers)
    return False


# --- MinIO ------------------------------------------------------------------------------------


def _minio_prepare(state: StackState) -> Launch:
    data = state.state_dir / "minio" / "data"
    data.mkdir(parents=True, exist_ok=True)
    return Launch(
        argv=[
            str(fetch.minio_binary(state.settings)),
            "server",
            str(data),
            "--address",
            f"{state.host}:{state.ports['minio']}",
            "--quiet",
        ],
        env={
            "MINIO_ROOT_USER": state.settings.s3_access_key,
            "MINIO_ROOT_PASSWORD": state.settings.s3_secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            # A fixed local key, so server-side encryption (SSE-S3 and SSE-KMS) works as on AWS.
            "MINIO_KMS_SECRET_KEY": "kafkube-key:"
            + base64.b64encode(b"kafkube-local-test-key-32-bytes!").decode(),
        },
    )


def _minio_probe(state: StackState) -> bool:
    # /minio/health/ready answers 200 before the object layer is up (a restarted MinIO then
    # refuses requests with XMinioServerNotInitialized); /cluster waits for it, its bucket
    # metadata and IAM.
    return http_ok(state.url("minio") + "/minio/health/cluster")


# --- fake-gcs-server --------------------------------------------------------------------------


def _gcs_prepare(state: StackState) -> Launch:
    data = state.state_dir / "gcs" / "data"
    data.mkdir(parents=True, exist_ok=True)
    port = state.ports["gcs"]
    return Launch(
        argv=[
            str(fetch.fake_gcs_binary()),
            "-scheme",
            "http",
            "-host",
            state.host,
            "-port",
            str(port),
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(data),
            "-public-host",
            f"{state.host}:{port}",
            "-external-url",
            state.url("gcs"),
            "-log-level",
            "warn",
        ],
        env={},
    )


def _gcs_probe(state: StackState) -> bool:
    return http_ok(state.url("gcs") + "/storage/v1/b")


# --- Apicurio Registry -------------------------------------------------------------------

REGISTRY_API = "/apis/ccompat/v7"  # the Confluent-compatible API every Kafka tool speaks


def _registry_prepare(state: StackState) -> Launch:
    app = fetch.registry_app(state.settings)
    host = state.host
    return Launch(
        argv=[
            str(app.java),
            "-Xms64m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            # Both ports on loopback: Quarkus' management port would take every interface.
            f"-Dquarkus.http.host={host}",
            f"-Dquarkus.http.port={state.ports['registry']}",
            f"-Dquarkus.management.host={host}",
            f"-Dquarkus.management.port={state.ports['registry_management']}",
            # Confluent's default rule: a new version must read what the old ones wrote.
            "-Dapicurio.rules.global.compatibility=BACKWARD",
            "-Dregistry.rules.global.compatibility=BACKWARD",  # the same, for 2.x
            "-Dquarkus.log.level=WARN",
            "-Dquarkus.http.access-log.enabled=false",
            "-jar",
            str(app.jar),
        ],
        env={},
    )


def _registry_probe(state: StackState) -> bool:
    return http_ok(state.url("registry") + REGISTRY_API + "/subjects")


# --- PostgreSQL (an Iceberg SQL catalog's database) ---------------------------------------

POSTGRES_USER = "kafkube"  # trusted on loopback: the local stack's own database


def _as_postgres(data: Path) -> list[str]:
    """The prefix that runs a PostgreSQL program: nothing for a user; for root, which the
    server refuses to run as, Debian's ``postgres`` user, owning the data folder, and keeping
    the right to pass through root's folders (the stack's state may be under one only root
    may enter)."""
    if os.geteuid() != 0:
        return []
    try:
        account = pwd.getpwnam("postgres")
    except KeyError as err:
        raise ServiceError("running as root, PostgreSQL needs the postgres user") from err
    data.mkdir(parents=True, exist_ok=True)
    os.chown(data, account.pw_uid, account.pw_gid)
    data.chmod(0o700)
    return [
        "setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups",
        "--inh-caps=+dac_override", "--ambient-caps=+dac_override",
    ]  # fmt: skip


def _postgres_prepare(state: StackState) -> Launch:
    programs = fetch.postgres_bin()
    data = state.state_dir / "postgres" / "data"
    as_postgres = _as_postgres(data)
    if not (data / "PG_VERSION").exists():
        made = subprocess.run(
            [*as_postgres, str(programs / "initdb"), "-D", str(data), "-U", POSTGRES_USER,
             "--auth=trust", "-E", "UTF8"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if made.returncode != 0:
            raise ServiceError(f"initdb failed:\n{made.stdout}{made.stderr}")
    return Launch(
        argv=[
            *as_postgres, str(programs / "postgres"), "-D", str(data),
            "-h", state.host, "-p", str(state.ports["postgres"]),
            "-k", "",  # no Unix socket: loopback TCP only, like every other service
        ],
        env={},
    )  # fmt: skip


def _postgres_probe(state: StackState) -> bool:
    ready = subprocess.run(
        [str(fetch.postgres_bin() / "pg_isready"), "-q", "-h", state.host,
         "-p", str(state.ports["postgres"]), "-U", POSTGRES_USER, "-d", "postgres"],
        check=False, timeout=10,
    )  # fmt: skip
    return ready.returncode == 0


def postgres_url(state: StackState, database: str = "postgres") -> str:
    """The SQLAlchemy URL of the stack's PostgreSQL (an Iceberg SQL catalog's ``catalog_uri``)."""
    return (
        f"postgresql+psycopg2://{POSTGRES_USER}@{state.host}:{state.ports['postgres']}/{database}"
    )


# --- Nessie (an Iceberg REST catalog) ------------------------------------------------------

NESSIE_API = "/iceberg/"  # its Iceberg REST catalog API, as pyiceberg's ``uri`` takes it


def _nessie_prepare(state: StackState) -> Launch:
    """Nessie in memory, its warehouse a bucket of its own in the stack's MinIO (made here,
    MinIO being up first). Clients write the data files with their own S3 credentials."""
    app = fetch.nessie_app(state.settings)
    settings, host = state.settings, state.host
    ensure_s3_bucket(
        state.url("minio"), settings.s3_access_key, settings.s3_secret_key, NESSIE_BUCKET
    )
    options = "-Dnessie.catalog.service.s3.default-options"
    return Launch(
        argv=[
            str(app.java), "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC",
            f"-Dquarkus.http.host={host}",
            f"-Dquarkus.http.port={state.ports['nessie']}",
            f"-Dquarkus.management.host={host}",
            f"-Dquarkus.management.port={state.ports['nessie_management']}",
            "-Dquarkus.log.level=WARN",
            "-Dnessie.version.store.type=IN_MEMORY",
            "-Dnessie.catalog.default-warehouse=warehouse",
            f"-Dnessie.catalog.warehouses.warehouse.location=s3://{NESSIE_BUCKET}/",
            f"{options}.endpoint={state.url('minio')}/",
            f"{options}.path-style-access=true",
            f"{options}.region=us-east-1",
            # The key by reference; the secret itself comes from the environment, not argv.
            f"{options}.access-key=urn:nessie-secret:quarkus:kafkube.minio",
            "-jar", str(app.jar),
        ],
        env={
            "KAFKUBE_MINIO_NAME": settings.s3_access_key,
            "KAFKUBE_MINIO_SECRET": settings.s3_secret_key,
        },
    )  # fmt: skip


def _nessie_probe(state: StackState) -> bool:
    return http_ok(state.url("nessie") + NESSIE_API + "v1/config")


def nessie_url(state: StackState) -> str:
    """The stack's Iceberg REST catalog, as ``sinks.iceberg.catalog_uri`` takes it."""
    return state.url("nessie") + NESSIE_API


SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        Service("etcd", ("etcd", "etcd_peer"), (), _etcd_prepare, _etcd_probe),
        Service(
            "kube-apiserver",
            ("kube_apiserver",),
            ("etcd",),
            _apiserver_prepare,
            _apiserver_probe,
            # The server makes its serving certificate at first start; the kubeconfig carries it.
            ready_hook=write_kubeconfig,
        ),
        Service("kafka", ("kafka", "kafka_controller"), (), _kafka_prepare, _kafka_probe),
        Service("minio", ("minio",), (), _minio_prepare, _minio_probe),
        Service("gcs", ("gcs",), (), _gcs_prepare, _gcs_probe),
        Service(
            "registry",
            ("registry", "registry_management"),
            (),
            _registry_prepare,
            _registry_probe,
        ),
        Service("postgres", ("postgres",), (), _postgres_prepare, _postgres_probe),
        Service(
            "nessie", ("nessie", "nessie_management"), ("minio",), _nessie_prepare, _nessie_probe
        ),
    )
}
