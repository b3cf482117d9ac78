"""The node's CNI plugin that puts the stack's loopback services inside each pod.

The stack's services listen on 127.0.0.1 only, and Kafka hands its clients that
address back; a pod on the node's bridge has a loopback of its own. Chained after
Debian's ``bridge`` plugin, this one starts, in each new pod's network
namespace, one ``socat`` per service: it listens where the pod will dial
(``127.0.0.1:<port>``, or the API server's service address ``10.0.0.1:443``,
which kube-proxy would otherwise carry) and relays each connection, through
``nsenter``, from the node's own namespace to the service. It is the stand-in
for a cluster network, and what a pod reaches through it is exactly the
stack's services. containerd runs it as ``<node>/cni/bin/kafkube-relay``
(the CNI protocol: the command in ``CNI_COMMAND``, the network's
configuration on stdin, the result on stdout).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kafkube.compose.processes import identity, kill_recorded_groups
from kafkube.core.waiting import Deadline

SUPPORTED_VERSIONS = ["0.4.0", "1.0.0"]


def _listening(pid: int, ip: str, port: int) -> bool:
    """Whether ``pid``'s network namespace has a socket listening on ip:port."""
    wanted = f"{_hex_ip(ip)}:{port:04X}"
    try:
        table = Path(f"/proc/{pid}/net/tcp").read_text()
    except OSError:
        return False
    return any(
        fields[1] == wanted and fields[3] == "0A"  # 0A: LISTEN
        for fields in (line.split() for line in table.splitlines()[1:])
    )


def _hex_ip(ip: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it: the bytes of the word, little-endian."""
    return "".join(f"{int(part):02X}" for part in reversed(ip.split(".")))


def _pid_file(config: dict[str, Any], container: str) -> Path:
    return Path(config["runDir"]) / f"{container}.pids"


def _add(config: dict[str, Any], netns: str, container: str) -> None:
    host_netns = f"/proc/{os.getppid()}/ns/net"  # containerd's: the node's own namespace
    log = Path(config["runDir"]) / f"{container}.log"
    pids: list[str] = []  # each relay's pid:start, so a pid reused later is never killed
    with log.open("ab") as out:
        for relay in config["relays"]:
            ip, port = relay["listen"].rsplit(":", 1)
            if ip != "127.0.0.1":
                subprocess.run(
                    ["nsenter", f"--net={netns}", "ip", "addr", "add", f"{ip}/32", "dev", "lo"],
                    check=True,
                    capture_output=True,
                )
            # socat reads ':' as its own separator: escaped, they reach the inner socat.
            target = f"TCP4:{relay['connect']}".replace(":", "\\:")
            connect = f"nsenter --net={host_netns} socat STDIO {target}"
            process = subprocess.Popen(
                [
                    "nsenter",
                    f"--net={netns}",
                    "socat",
                    f"TCP4-LISTEN:{port},bind={ip},fork,reuseaddr,backlog=128",
                    f"SYSTEM:{connect}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
            pids.append(identity(process.pid))
            _pid_file(config, container).write_text("".join(f"{pid}\n" for pid in pids))
            deadline = Deadline(10)
            while not _listening(process.pid, ip, int(port)):
                if process.poll() is not None or deadline.passed():
                    raise RuntimeError(f"the relay to {relay['connect']} did not start ({log})")
                time.sleep(0.02)


def _delete(config: dict[str, Any], container: str) -> None:
    path = _pid_file(config, container)
    with contextlib.suppress(FileNotFoundError):
        kill_recorded_groups(path.read_text().split())
        path.unlink()
    (Path(config["runDir"]) / f"{container}.log").unlink(missing_ok=True)


def _answer(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")  # the CNI result, which containerd reads


def main() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        _answer({"cniVersion": "1.0.0", "supportedVersions": SUPPORTED_VERSIONS})
        return 0
    config = json.load(sys.stdin)
    container = os.environ.get("CNI_CONTAINERID", "")
    try:
        if command == "ADD":
            _add(config, os.environ["CNI_NETNS"], container)
        elif command == "DEL":
            _delete(config, container)
    except (OSError, RuntimeError, subprocess.CalledProcessError, KeyError) as err:
        _delete(config, container)
        _answer({"cniVersion": config.get("cniVersion"), "code": 999, "msg": str(err)})
        return 1
    if command == "ADD":
        _answer(config.get("prevResult", {"cniVersion": config["cniVersion"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
