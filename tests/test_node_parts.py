"""The node's pieces that need no service: what `up node` starts and in which order, the
relay plugin's side of the CNI protocol, and the pause image's archive."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kafkube.compose.cni import _hex_ip
from kafkube.compose.node import _oci_archive
from kafkube.compose.settings import NODE_SERVICES, OPTIONAL_SERVICES, SERVICES
from kafkube.compose.stack import SERVICES as ALL_SERVICES
from kafkube.compose.stack import _waves, _with_requirements
from kafkube.core.errors import ConfigError


def test_the_node_is_off_by_default_and_node_brings_what_it_needs_in_waves() -> None:
    # The names the CLI offers are the services the launcher knows, in its start order.
    assert tuple(ALL_SERVICES) == SERVICES + OPTIONAL_SERVICES + NODE_SERVICES
    assert not set(NODE_SERVICES) & set(_with_requirements(SERVICES))

    order = _with_requirements(["node"])

    assert order == [
        "etcd", "kube-apiserver", "containerd", "kube-scheduler", "kube-controller-manager",
        "kubelet",
    ]  # fmt: skip
    # Each wave starts once the ones it requires answer: the kubelet's kubeconfig carries the
    # API server's certificate, which the server writes at its first start.
    assert _waves(order) == [
        ["etcd", "containerd"],
        ["kube-apiserver"],
        ["kube-scheduler", "kube-controller-manager"],
        ["kubelet"],
    ]
    assert "kube-scheduler" not in _with_requirements(["kubelet"])  # pods would wait, not fail


def test_an_unknown_service_is_refused_with_the_known_ones_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown service 'kublet'.*kubelet, node"):
        _with_requirements(["kublet"])


def test_the_relay_reads_listening_sockets_as_the_kernel_writes_them() -> None:
    assert _hex_ip("127.0.0.1") == "0100007F"
    assert _hex_ip("10.0.0.1") == "0100000A"


def test_the_relay_plugin_answers_the_cni_version_query() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kafkube.compose.cni"],
        env={**os.environ, "CNI_COMMAND": "VERSION"},
        input="",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    answer = json.loads(done.stdout)
    assert answer["cniVersion"] == "1.0.0"
    assert "1.0.0" in answer["supportedVersions"]


def test_the_pause_archive_is_an_oci_layout_whose_blobs_match_their_digests(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF not really")

    with tarfile.open(fileobj=io.BytesIO(_oci_archive(binary, "localhost/pause:v1"))) as archive:
        files = {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
        }

    (manifest_ref,) = json.loads(files["index.json"])["manifests"]
    assert manifest_ref["annotations"]["io.containerd.image.name"] == "localhost/pause:v1"
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.removeprefix("blobs/sha256/")
    manifest = json.loads(files[f"blobs/sha256/{manifest_ref['digest'][7:]}"])
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
    assert config["config"]["Entrypoint"] == ["/pause"]
    layer_blob = files[f"blobs/sha256/{manifest['layers'][0]['digest'][7:]}"]
    with tarfile.open(fileobj=io.BytesIO(layer_blob)) as layer:
        (entry,) = layer.getmembers()
    assert (entry.name, entry.mode, entry.uid) == ("pause", 0o755, 0)
