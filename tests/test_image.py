"""The Dockerfile, built into an image and run as a user runs it: podman builds it (no registry
is reachable here, so on a base made from Debian's packages with mmdebstrap, through the
Dockerfile's PYTHON_IMAGE argument), it runs as its non-root user, and `kafkube produce` and
`kafkube sink file` from the image, on the host's network, take events written to the stack's
API server into the output folder exactly once."""

from __future__ import annotations

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
from tests.images import Podman
from tests.producing import EventWriter
from tests.sinking import read_avro_dir

# The first build makes the base and every wheel; a real engine and the stack: services tier.
pytestmark = [pytest.mark.timeout(900), pytest.mark.services]


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


# Each image's size at most, base included (MB), and every library its sinks and logins load,
# imported as they do: what an image leaves out must be what none of them needs.
BOUND_MB = {"image": 500, "slim_image": 300}
SLIM_LOADED = (
    "import kubernetes, google.cloud.storage, boto3, fastavro, confluent_kafka, isal; "
    # The sinks' compiled scan and the producer's one pass, built in the image's build stage
    # (its C compiler stays there).
    "from kafkube.consumers import fastpath; assert fastpath.built(); "
    "from kafkube.producer import _convert; "
    "boto3.client('s3', region_name='eu-west-1'); boto3.client('sts', region_name='eu-west-1')"
)
LOADED = {
    "slim_image": SLIM_LOADED,
    "image": SLIM_LOADED + "; "
    "import pyarrow.parquet, pyarrow.dataset, pyarrow.compute, pyarrow.fs; "
    "import pyiceberg.io.pyarrow, pyiceberg.catalog.sql, pyiceberg.catalog.rest; "
    "import aws_msk_iam_sasl_signer",
}


@pytest.fixture(params=["image", "slim_image"])
def built(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Each image: the default one, every sink and format; the slim one."""
    return request.param, request.getfixturevalue(request.param)


def test_the_image_runs_as_its_non_root_user(podman: Podman, built: tuple[str, str]) -> None:
    _, image = built
    assert podman("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip() == "10001"
    assert podman("run", "--rm", image, "--version").stdout.startswith("kafkube, version")


def test_the_image_is_small_has_no_build_tools_and_loads_every_library(
    podman: Podman, built: tuple[str, str]
) -> None:
    kind, image = built
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6
    python = ["run", "--rm", "--entrypoint", "/opt/kafkube/bin/python", image]
    found = "import importlib.util as u; print(u.find_spec('pip'), u.find_spec('pyarrow'))"
    absent = podman(*python, "-c", found).stdout.split()

    assert size <= BOUND_MB[kind], f"{size:.0f} MB"
    print(f"{kind}: {size:.0f} MB")  # noqa: T201 - the README quotes it
    assert absent[0] == "None"
    assert (absent[1] == "None") is (kind == "slim_image")
    podman(*python, "-c", LOADED[kind])  # fails the test if any import does


def test_the_slim_image_refuses_parquet_at_once_naming_what_it_lacks(
    podman: Podman, slim_image: str
) -> None:
    refused = podman(
        "run", "--rm", slim_image, "sink", "file", "--dir", "/out", "--format", "parquet",
        "--bootstrap-server", "127.0.0.1:9", "--topic", "t", check=False,
    )  # fmt: skip

    assert refused.returncode == 1, refused.stderr
    assert refused.stderr == (
        "kafkube: sinks.file.format: needs pyarrow, not installed: pip install 'kafkube[parquet]'\n"
    )  # at once: not after waiting for Kafka


def test_produce_and_sink_from_the_image_take_every_event_once(
    podman: Podman,
    built: tuple[str, str],
    containers: list[str],
    endpoints: Endpoints,
    kube_api: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    _, image = built
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
