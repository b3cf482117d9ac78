"""The stack's optional node: pods of a Helm chart really running beside the API server.

``kafkube stack up node`` adds containerd (Debian's, with runc), kube-scheduler,
kube-controller-manager and one kubelet (built from the API server's own Kubernetes
module) to the stack. It is off by default. Everything stays on this machine:

- The kubelet, the scheduler and the controller manager listen on 127.0.0.1 and reach
  the API server with tokens of their own identities (the kubelet as
  ``system:node:kafkube-node``, held in check by the Node authorizer).
- Pods get a network namespace on a bridge (``kafkube0``, 10.244.0.0/24, from Debian's
  CNI plugins), so two replicas may use the same port and the kubelet probes each
  pod at its own address. The stack's services listen on loopback only; the relay
  plugin (``compose/cni.py``) makes them answer inside each pod at the same
  addresses, and the API server at the ``kubernetes`` Service's (10.0.0.1:443).
- The pod sandbox is a pause image the stack makes from its own small Go program,
  since registry.k8s.io is not reachable; images of one's own come in with
  ``kafkube stack load-image``, from an archive ``podman save`` or ``docker save`` wrote.

Stopping the node stops every container it ran and unmounts what it mounted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from kafkube.compose import fetch
from kafkube.compose.processes import kill_recorded_groups
from kafkube.compose.services import (
    Launch,
    Service,
    StackState,
    apiserver_tls,
    component_token,
    http_ok,
    write_kubeconfig,
)
from kafkube.core.errors import ConfigError, ServiceError

NODE_NAME = "kafkube-node"
BRIDGE = "kafkube0"
POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
SERVICE_ADDRESS = "10.0.0.1:443"  # the `kubernetes` Service: first of the API server's range
SANDBOX_IMAGE = "localhost/kafkube-pause:v1"
# Where Debian (and most distributions) put the reference CNI plugins.
CNI_PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"), Path("/usr/libexec/cni"))
NODE_TOOLS = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "socat", "nsenter", "ip")


def node_dir(state: StackState) -> Path:
    return state.state_dir / "node"


def containerd_socket(state: StackState) -> Path:
    return node_dir(state) / "containerd.sock"


def _kubeconfig(state: StackState, component: str, user: str) -> Path:
    return write_kubeconfig(
        state,
        path=node_dir(state) / component / "kubeconfig",
        user=user,
        token=component_token(state, user),
    )


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise ServiceError(
            "the node needs root: the kubelet, containerd and the pod network set up cgroups, "
            "mounts and network namespaces (sudo kafkube stack up node)"
        )
    missing = [tool for tool in NODE_TOOLS if shutil.which(tool) is None]
    if not any((folder / "bridge").is_file() for folder in CNI_PLUGIN_DIRS):
        missing.append("the CNI plugins (bridge, host-local, loopback)")
    if missing:
        raise ServiceError(
            f"the node needs {', '.join(missing)}: on Debian, apt-get install containerd "
            "runc containernetworking-plugins socat iproute2 util-linux"
        )


# --- containerd and the pod network ---------------------------------------------------------------


def _relays(state: StackState) -> list[dict[str, str]]:
    """Where a pod dials each stack service, and where the node reaches it."""
    loopback = [
        f"{state.host}:{state.ports[name]}" for name in ("kafka", "minio", "gcs", "registry")
    ]
    relays = [{"listen": address, "connect": address} for address in loopback]
    relays.append(
        {"listen": SERVICE_ADDRESS, "connect": f"{state.host}:{state.ports['kube_apiserver']}"}
    )
    return relays


def _bridge_up() -> None:
    """The pods' bridge with the node's address on it; the bridge plugin then joins pods to it."""
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True, check=False).returncode:
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    addresses = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", BRIDGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if f" {GATEWAY}/" not in addresses:
        subprocess.run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)


def _cni_setup(state: StackState) -> tuple[Path, Path]:
    cni = node_dir(state) / "cni"
    bin_dir, conf_dir, run_dir = cni / "bin", cni / "conf", cni / "run"
    for folder in (bin_dir, conf_dir, run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for plugin in ("bridge", "host-local", "loopback"):
        source = next(d / plugin for d in CNI_PLUGIN_DIRS if (d / plugin).is_file())
        link = bin_dir / plugin
        link.unlink(missing_ok=True)
        link.symlink_to(source)
    relay = bin_dir / "kafkube-relay"
    relay.write_text(
        f"#!{sys.executable}\nimport sys\nfrom kafkube.compose.cni import main\nsys.exit(main())\n"
    )
    relay.chmod(0o755)
    network = {
        "cniVersion": "1.0.0",
        "name": "kafkube",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                    "dataDir": str(cni / "ipam"),
                },
            },
            {"type": "kafkube-relay", "runDir": str(run_dir), "relays": _relays(state)},
        ],
    }
    (conf_dir / "10-kafkube.conflist").write_text(json.dumps(network, indent=2))
    return bin_dir, conf_dir


def _containerd_prepare(state: StackState) -> Launch:
    _check_tools()
    if state.host != "127.0.0.1":
        raise ConfigError("stack.host", "the node's relays carry IPv4 loopback: use 127.0.0.1")
    home = node_dir(state) / "containerd"
    home.mkdir(parents=True, exist_ok=True)
    _bridge_up()
    bin_dir, conf_dir = _cni_setup(state)
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    config = f"""version = 2
root = "{home / "root"}"
state = "{home / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{containerd_socket(state)}"
[ttrpc]
  address = "{home / "ttrpc.sock"}"
{cri}]
  sandbox_image = "{SANDBOX_IMAGE}"
  netns_mounts_under_state_dir = true
  # Root here may not lower a process's OOM score (no CAP_SYS_RESOURCE in these sandboxes):
  # the kubelet's -998 for the pause container would fail every pod.
  restrict_oom_score_adj = true
{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{shutil.which("runc")}"
{cri}.cni]
  bin_dir = "{bin_dir}"
  conf_dir = "{conf_dir}"
  max_conf_num = 1
[plugins."io.containerd.internal.v1.opt"]
  path = "{home / "opt"}"
"""
    (home / "config.toml").write_text(config)
    return Launch(argv=["containerd", "--config", str(home / "config.toml")], env={})


def _ctr(state: StackState, *args: str, timeout: float = 600) -> str:
    result = subprocess.run(
        ["ctr", "--address", str(containerd_socket(state)), "--namespace", "k8s.io", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _containerd_probe(state: StackState) -> bool:
    if not containerd_socket(state).exists():
        return False
    try:
        _ctr(state, "version", timeout=5)
    except (ServiceError, subprocess.TimeoutExpired):
        return False
    return True


def _oci_archive(binary: Path, name: str) -> bytes:
    """An OCI image archive of one static binary as its entrypoint (``ctr images import``)."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname=binary.name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755
        with binary.open("rb") as executable:
            tar.addfile(info, executable)
    layer_descriptor = blob(layer.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    image_config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": [f"/{binary.name}"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [layer_descriptor["digest"]]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(
            json.dumps(image_config).encode(), "application/vnd.oci.image.config.v1+json"
        ),
        "layers": [layer_descriptor],
    }
    manifest_descriptor = blob(
        json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"
    )
    manifest_descriptor["annotations"] = {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
    }
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps({"schemaVersion": 2, "manifests": [manifest_descriptor]}).encode(),
        **{f"blobs/sha256/{d.removeprefix('sha256:')}": data for d, data in blobs.items()},
    }
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path, content in files.items():
            entry = tarfile.TarInfo(path)
            entry.size = len(content)
            tar.addfile(entry, io.BytesIO(content))
    return archive.getvalue()


def load_image(state: StackState, archive: Path) -> list[str]:
    """Import an image archive (OCI or Docker, as ``podman save`` / ``docker save`` write it)
    into the node's containerd, where the kubelet finds it; the names it imported."""
    if not archive.is_file():
        raise ServiceError(f"no image archive at {archive}")
    said = _ctr(state, "images", "import", str(archive))
    # ctr says "unpacking <name> (sha256:...)...done" for each image it imported.
    return [line.split()[1] for line in said.splitlines() if line.startswith("unpacking ")]


def _image_names(state: StackState) -> list[str]:
    return [line for line in _ctr(state, "images", "list", "--quiet").splitlines() if line]


def _containerd_ready(state: StackState) -> None:
    """The pod sandbox image, made from the cached pause binary and imported once."""
    if SANDBOX_IMAGE in _image_names(state):
        return
    archive = node_dir(state) / "containerd" / "pause.tar"
    archive.write_bytes(
        _oci_archive(fetch.wrapped_go_binary(state.settings, "pause"), SANDBOX_IMAGE)
    )
    _ctr(state, "images", "import", str(archive))


def _shims(state: StackState) -> list[int]:
    """The runc shims of this node's containerd (they outlive it on purpose)."""
    address = str(containerd_socket(state))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address.encode() in argv:
            found.append(int(entry.name))
    return found


def _descendants(roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], list(roots)
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def _containerd_stopped(state: StackState) -> None:
    """Every container of the node, its relays and its mounts, gone with containerd."""
    if not node_dir(state).exists():
        return  # this stack never ran a node: the bridge, if any, is another stack's
    for pid in _descendants(_shims(state)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    run_dir = node_dir(state) / "cni" / "run"
    for pids in run_dir.glob("*.pids") if run_dir.is_dir() else ():
        kill_recorded_groups(pids.read_text().split())
        pids.unlink()
    unmount_under(node_dir(state))
    # No pod is left to hold an address or to use the bridge.
    shutil.rmtree(node_dir(state) / "cni" / "ipam", ignore_errors=True)
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)


def unmount_under(folder: Path) -> None:
    """Detach every mount below ``folder``, deepest first (pods' volumes, rootfs, netns)."""
    root = str(folder.resolve())
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root or point.startswith(root + "/"):
                mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


# --- the control plane's other two ----------------------------------------------------------------


def _control_plane_argv(state: StackState, component: str, user: str, port: str) -> list[str]:
    kubeconfig = _kubeconfig(state, component, user)
    return [
        str(fetch.wrapped_go_binary(state.settings, component)),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={state.host}",
        f"--secure-port={state.ports[port]}",
        f"--cert-dir={node_dir(state) / component / 'certs'}",
        "--leader-elect=false",
        "-v=1",
    ]


def _scheduler_prepare(state: StackState) -> Launch:
    return Launch(
        _control_plane_argv(state, "kube-scheduler", "system:kube-scheduler", "kube_scheduler"), {}
    )


def _controller_manager_prepare(state: StackState) -> Launch:
    argv = _control_plane_argv(
        state,
        "kube-controller-manager",
        "system:kube-controller-manager",
        "kube_controller_manager",
    )
    return Launch(
        [
            *argv,
            # Each controller with its own service account, as the built-in roles expect.
            "--use-service-account-credentials=true",
            # Published into every namespace as kube-root-ca.crt: the CA that pods trust.
            f"--root-ca-file={state.apiserver_cert}",
            f"--service-account-private-key-file={state.state_dir / 'kube-apiserver' / 'sa.key'}",
            "--cluster-name=kafkube",
        ],
        {},
    )


def _insecure_https_ok(url: str) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # its own self-signed serving cert, on loopback
    return http_ok(url, context=context)


def _scheduler_probe(state: StackState) -> bool:
    return _insecure_https_ok(state.url("kube_scheduler", "https") + "/healthz")


def _controller_manager_probe(state: StackState) -> bool:
    return _insecure_https_ok(state.url("kube_controller_manager", "https") + "/healthz")


# --- the kubelet ----------------------------------------------------------------------------------


def _kubelet_prepare(state: StackState) -> Launch:
    home = node_dir(state) / "kubelet"
    (home / "root").mkdir(parents=True, exist_ok=True)
    (home / "pod-logs").mkdir(parents=True, exist_ok=True)
    kubeconfig = _kubeconfig(state, "kubelet", f"system:node:{NODE_NAME}")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": state.host,
        "port": state.ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": state.host,
        "healthzPort": state.ports["kubelet_healthz"],
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},  # its API answers on loopback only
        "containerRuntimeEndpoint": f"unix://{containerd_socket(state)}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # machines such as these still mount cgroup v1
        "failSwapOn": False,
        "podLogsDir": str(home / "pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "serializeImagePulls": False,
        # Images are imported by hand and cannot be pulled again: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "maxPods": 30,
        "volumePluginDir": str(home / "volume-plugins"),
        "shutdownGracePeriod": "0s",
    }
    (home / "config.json").write_text(json.dumps(config, indent=2))
    return Launch(
        argv=[
            str(fetch.wrapped_go_binary(state.settings, "kubelet")),
            f"--config={home / 'config.json'}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={home / 'root'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={GATEWAY}",
            "-v=1",
        ],
        env={},
    )


def _kubelet_probe(state: StackState) -> bool:
    """The node registered and Ready: its runtime and its network answer the kubelet."""
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        state.url("kube_apiserver", "https") + f"/api/v1/nodes/{NODE_NAME}",
        headers={"Authorization": f"Bearer {state.admin_token}"},
    )
    context = apiserver_tls(state)
    if context is None:
        return False
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
            node = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    conditions = node.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


NODE_SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        Service(
            "containerd",
            (),
            (),
            _containerd_prepare,
            _containerd_probe,
            ready_hook=_containerd_ready,
            stop_hook=_containerd_stopped,
        ),
        Service(
            "kube-scheduler",
            ("kube_scheduler",),
            ("kube-apiserver",),
            _scheduler_prepare,
            _scheduler_probe,
        ),
        Service(
            "kube-controller-manager",
            ("kube_controller_manager",),
            ("kube-apiserver",),
            _controller_manager_prepare,
            _controller_manager_probe,
        ),
        Service(
            "kubelet",
            ("kubelet", "kubelet_healthz"),
            ("kube-apiserver", "containerd", "kube-controller-manager"),
            _kubelet_prepare,
            _kubelet_probe,
        ),
    )
}
