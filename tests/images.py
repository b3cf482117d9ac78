"""The repo's image, built once a test session with podman (no Docker engine here) on a base
that mmdebstrap makes from Debian's packages (no registry here): the image tests run it with
podman, the node's tests import it into the node's containerd."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    for tool in ("podman", "mmdebstrap", "runc"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install podman mmdebstrap runc"
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(conf)


@pytest.fixture(scope="session")
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
