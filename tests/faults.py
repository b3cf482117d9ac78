"""Real faults for the producer tests: a TCP proxy that stalls and drops, and etcd compaction."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml


class LoopbackProxy:
    """Forwards 127.0.0.1:<port> to a target; the test can stall replies or cut every connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._trickling = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._closed:
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections += [client, upstream]
            for source, sink, reply in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pipe, args=(source, sink), kwargs={"reply": reply}, daemon=True
                ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, *, reply: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if reply:
                    self._flowing.wait()
                if reply and self._trickling.is_set():
                    for byte in data:  # a byte every half second: never idle long enough to
                        sink.sendall(bytes([byte]))  # trip a socket's own read timeout
                        time.sleep(0.5)
                    continue
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def stall(self) -> None:
        """Hold back everything the server sends, as a congested network would."""
        self._flowing.clear()

    def trickle(self) -> None:
        """Let replies through one byte every half second, as a server that never stops
        answering but never finishes."""
        self._trickling.set()

    def drop_all(self) -> None:
        """Cut every open connection (new ones are still accepted), and let replies flow again,
        at full speed."""
        self._trickling.clear()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.drop_all()


@contextlib.contextmanager
def proxied_kubeconfig(kubeconfig: str, directory: Path) -> Iterator[tuple[str, LoopbackProxy]]:
    """A copy of the kubeconfig whose server is reached through a LoopbackProxy."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    proxy = LoopbackProxy(host, int(port))
    config["clusters"][0]["cluster"]["server"] = f"https://{host}:{proxy.port}"
    path = directory / "kubeconfig-proxied"
    path.write_text(json.dumps(config))
    try:
        yield str(path), proxy
    finally:
        proxy.close()


def _etcd_post(etcd_url: str, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - the stack's own loopback etcd
        etcd_url + path, data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        result: dict[str, object] = json.loads(response.read())
        return result


def compact_etcd(etcd_url: str) -> int:
    """Compact etcd to its current revision (its v3 HTTP gateway); returns that revision."""
    header = _etcd_post(etcd_url, "/v3/kv/range", {"key": "AA=="})["header"]
    assert isinstance(header, dict)
    revision = int(header["revision"])
    _etcd_post(etcd_url, "/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision
