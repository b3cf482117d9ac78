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
BASE = "localhost/kafkube-slim-base:bookworm"
IMAGE = "localhost/kafkube:test"
SLIM_IMAGE = "localhost/kafkube:test-slim"
# What Debian's slim images leave out of every package (their dpkg settings).
SLIM_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
                 "/usr/share/locale/*", "/usr/share/lintian/*", "/usr/share/linda/*")  # fmt: skip
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

    def __call__(
        self, *args: str, timeout: float = 900, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """podman with the machine's settings; with ``check``, it must succeed."""
        done = subprocess.run(
            ["podman", "--storage-driver", "vfs", *args],
            capture_output=True, text=True, timeout=timeout, check=False, env=self.env,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    for tool in ("podman", "mmdebstrap", "runc"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install podman mmdebstrap runc"
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(conf)


def _build(podman: Podman, tag: str, base: str, *build_args: str) -> str:
    # pip inside the build reaches PyPI as this machine does: its CA bundle and pip settings.
    mounts = ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
    if Path("/etc/pip.conf").exists():
        mounts += ["-v", "/etc/pip.conf:/etc/pip.conf:ro"]
    args = [arg for build_arg in build_args for arg in ("--build-arg", build_arg)]
    podman(
        "build", "--isolation", "chroot", "--network", "host", *mounts,
        "--build-arg", f"PYTHON_IMAGE={base}", *args, "-t", tag, str(ROOT),
    )  # fmt: skip
    return tag


@pytest.fixture(scope="session")
def base(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local stand-in for the Dockerfile's python:3.11-slim base, made once a machine (its
    storage keeps it): Debian's python3 on the minimal variant, merged /usr without the
    usrmerge package (which pulls in perl), without documentation, manual pages, locales or
    apt's lists, as Debian's slim images leave them out: 129 MB."""
    if "kafkube-slim-base" not in podman("images", "--format", "{{.Repository}}").stdout:
        rootfs = tmp_path_factory.mktemp("base") / "rootfs.tar"
        slim = [f"--dpkgopt=path-exclude={path}" for path in SLIM_EXCLUDES]
        made = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",  # no usrmerge, so no perl
             *slim, "--dpkgopt=path-include=/usr/share/doc/*/copyright",
             "--customize-hook=rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/*",
             "bookworm", str(rootfs)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr[-3000:]
        podman("import", str(rootfs), BASE)
    return BASE


@pytest.fixture(scope="session")
def image(podman: Podman, base: str) -> str:
    """The image of the repo's Dockerfile, every sink and format, on the local base."""
    return _build(podman, IMAGE, base)


@pytest.fixture(scope="session")
def slim_image(podman: Podman, base: str, image: str) -> str:
    """The slim image: the file, S3 and GCS sinks in Avro and JSON Lines, no Arrow. Built
    after the default one, whose stage of the dependencies' wheels it reuses."""
    return _build(podman, SLIM_IMAGE, base, "EXTRAS=s3 gcs")
