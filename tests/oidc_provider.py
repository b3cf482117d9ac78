"""A real OpenID Connect provider on loopback for the token login tests: Keycloak, from Maven
Central's distribution (``compose.fetch.keycloak_dist``), in development mode with its
database in memory. A realm of its own, with a confidential client per component that trades
its id and secret for a token (the client credentials grant), each token carrying the
brokers' audience; how long a token lives is the realm's setting, changed mid-test."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafkube.compose.fetch import Keycloak
from kafkube.compose.stack import free_port

REALM = "kafkube"
AUDIENCE = "kafka"  # what the brokers expect in a token's aud


def request_json(
    url: str,
    *,
    form: dict[str, str] | None = None,
    body: Any = None,
    token: str = "",
    method: str | None = None,
) -> Any:
    data = None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        text = answer.read()
    return json.loads(text) if text else None


@dataclass
class OidcProvider:
    dist: Keycloak
    folder: Path
    port: int = field(default_factory=lambda: free_port("127.0.0.1"))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base}/realms/{REALM}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def jwks(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def log(self) -> Path:
        return self.folder / "keycloak.log"

    def start(self, timeout: float = 240) -> None:
        env = {
            **os.environ,
            "JAVA_HOME": str(self.dist.java_home),
            "JAVA_OPTS_KC_HEAP": "-Xms64m -Xmx512m",
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(self.dist.home / "bin" / "kc.sh"), "start-dev", "--db=dev-mem",
                    "--http-host=127.0.0.1", f"--http-port={self.port}",
                    f"--hostname={self.base}",  # one issuer, whichever path a request took
                ],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log.read_text()[-4000:]
            try:
                self.admin_token()
            except (urllib.error.URLError, ConnectionError, OSError):
                assert time.monotonic() < deadline, self.log.read_text()[-4000:]
                time.sleep(1)
            else:
                break
        self._realm()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(30)

    def admin_token(self) -> str:
        answer = request_json(
            f"{self.base}/realms/master/protocol/openid-connect/token",
            form={
                "grant_type": "password", "client_id": "admin-cli",
                "username": "admin", "password": self.admin_password,
            },
        )  # fmt: skip
        return str(answer["access_token"])

    def _realm(self) -> None:
        request_json(
            f"{self.base}/admin/realms",
            body={
                "realm": REALM,
                "enabled": True,
                "accessTokenLifespan": 300,
                "eventsEnabled": True,
                "enabledEventTypes": ["CLIENT_LOGIN"],
            },
            token=self.admin_token(),
        )

    def token_lifespan(self, seconds: int) -> None:
        """How long the realm's tokens live from now on."""
        request_json(
            f"{self.base}/admin/realms/{REALM}",
            body={"accessTokenLifespan": seconds},
            token=self.admin_token(),
            method="PUT",
        )

    def client(self, client_id: str) -> str:
        """A confidential client with the client credentials grant only; its secret."""
        secret = secrets.token_urlsafe(24)
        request_json(
            f"{self.base}/admin/realms/{REALM}/clients",
            body={
                "clientId": client_id, "secret": secret, "publicClient": False,
                "serviceAccountsEnabled": True, "standardFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "protocolMappers": [{
                    "name": "brokers", "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {"included.custom.audience": AUDIENCE, "access.token.claim": "true"},
                }],
            },
            token=self.admin_token(),
        )  # fmt: skip
        return secret

    def logins(self, client_id: str) -> int:
        """The tokens the provider has handed ``client_id`` (its CLIENT_LOGIN events)."""
        query = urllib.parse.urlencode({"type": "CLIENT_LOGIN", "client": client_id, "max": 1000})
        events: list[Any] = request_json(
            f"{self.base}/admin/realms/{REALM}/events?{query}", token=self.admin_token()
        )
        return len(events)


class Relay:
    """A TCP path to the provider that is cut until ``open``: the provider away, then back,
    as a network or a restart makes it (bytes passed as they are, both ways)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port("127.0.0.1")
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []

    def open(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in self._connections:
            connection.close()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                near, _ = self._server.accept()
            except OSError:
                return  # closed
            far = socket.create_connection(("127.0.0.1", self.target_port))
            self._connections += [near, far]
            for source, sink in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
