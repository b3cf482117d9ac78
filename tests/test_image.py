"""The Dockerfile, built into an image and run as a user runs it: podman builds it (no registry
is reachable here, so on a base made from Debian's packages with mmdebstrap, through the
Dockerfile's PYTHON_IMAGE argument), it runs as its non-root user, and `kafkube produce` and
`kafkube sink file` from the image, on the host's network, take events written to the stack's
API server into the output folder exactly once."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkube.compose.endpoints import Endpoints
from tests.conftest import unique
from tests.producing import EventWriter
from tests.sinking import read_avro_dir

# The first build makes the base and every wheel; a real engine and the stack: services tier.
pytestmark = [pytest.mark.timeout(900), pytest.mark.services]

ROOT = Path(__file__).resolve().parent.parent
BASE = "localhost/kafkube-base:bookworm"
IMAGE = "localhost/kafkube:test"
# podman on these machines (README, "The image"): runc (crun refuses hybrid cgroups), cgroupfs,
# no default ulimits (podman's file limit is above the machine's hard limit), vfs storage.
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""


class Podman:
    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", "--storage-driver", "vfs", *args],
            capture_output=True, text=True, timeout=timeout, check=False, env=self.env,
        )  # fmt: skip
        assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    for tool in ("podman", "mmdebstrap", "runc"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install podman mmdebstrap runc"
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(conf)


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image of the repo's Dockerfile on a local Debian base (the base made once a
    machine: its storage keeps it)."""
    if "kafkube-base" not in podman("images", "--format", "{{.Repository}}").stdout:
        rootfs = tmp_path_factory.mktemp("base") / "rootfs.tar"
        made = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "bookworm", str(rootfs)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr[-3000:]
        podman("import", str(rootfs), BASE)
    # pip inside the build reaches PyPI as this machine does: its CA bundle and pip settings.
    mounts = ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
    if Path("/etc/pip.conf").exists():
        mounts += ["-v", "/etc/pip.conf:/etc/pip.conf:ro"]
    podman(
        "build", "--isolation", "chroot", "--network", "host", *mounts,
        "--build-arg", f"PYTHON_IMAGE={BASE}", "-t", IMAGE, str(ROOT),
    )  # fmt: skip
    return IMAGE


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture
def containers(podman: Podman) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(
            ["podman", "--storage-driver", "vfs", "rm", "-f", "-t", "5", name],
            capture_output=True, timeout=120, check=False, env=podman.env,
        )  # fmt: skip


def test_the_image_runs_as_its_non_root_user(podman: Podman, image: str) -> None:
    assert podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip() == "10001"
    assert podman("run", "--rm", image, "--version").stdout.startswith("kafkube, version")


def test_produce_and_sink_from_the_image_take_every_event_once(
    podman: Podman,
    image: str,
    containers: list[str],
    endpoints: Endpoints,
    kube_api: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    topic, out = unique("image"), tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the image's user writes it
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(endpoints.kubeconfig).read_text())
    kubeconfig.chmod(0o644)
    ports = {"sink": _free_port(), "producer": _free_port()}
    kafka = ["--bootstrap-server", endpoints.kafka_bootstrap, "--topic", topic]

    def run(role: str, *args: str) -> None:
        name = unique(f"kafkube-{role}")
        containers.append(name)
        podman(
            "run", "-d", "--name", name, "--network", "host",
            "-e", f"KAFKUBE_OBSERVABILITY__LISTEN=127.0.0.1:{ports[role]}", *args,
        )  # fmt: skip

    # The sink first, as a chart may start it: it waits for the producer to make the topic.
    run("sink", "-v", f"{out}:/out", image, "sink", "file", "--dir", "/out",
        "--max-age-seconds", "1", *kafka)  # fmt: skip
    run("producer", "-v", f"{kubeconfig}:/etc/kafkube/kubeconfig:ro", image, "produce",
        "--cluster", "image", "--namespace", namespace, "--kubeconfig",
        "/etc/kafkube/kubeconfig", *kafka)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (_ready(ports["producer"]) and _ready(ports["sink"])):
        assert time.monotonic() < deadline, podman("logs", containers[-1]).stderr[-3000:]
        time.sleep(0.5)

    writer = EventWriter(kube_api, namespace)
    for n in range(30):
        name = writer.create(f"pod-{n}.{unique('e')}")
        if n % 3 == 0:
            writer.repeat(name)
    deadline = time.monotonic() + 120
    while set(found := read_avro_dir(out)) != writer.occurrences:
        assert time.monotonic() < deadline, (len(found), len(writer.occurrences))
        time.sleep(0.5)

    for name in reversed(containers):  # the producer first: it commits its last transaction
        podman("stop", "-t", "30", name)
    found = read_avro_dir(out)
    assert Counter(found) == Counter(writer.occurrences)  # every occurrence, once
    assert {path.stat().st_uid for path in out.rglob("*.avro")} == {10001}
