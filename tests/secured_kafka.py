"""A second, secured Kafka broker for the security tests: the same jars as the stack's, with
a CA and certificates this module generates, and three client listeners.

- ``SASL_SSL``: TLS, then SCRAM-SHA-512 or PLAIN (user ``kafkube``);
- ``SSL``: mutual TLS, a client certificate signed by the CA required;
- ``OAUTH`` (with ``oidc``): TLS, then OAUTHBEARER, a JWT of the OIDC provider checked
  against its keys (JWKS), its issuer and audience; a session logs in again every
  ``reauth_ms``, so a token's expiry is met mid-run;
- ``INTERNAL`` (plaintext, the broker's own traffic) and ``CONTROLLER``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kafkube.compose.services import kafka_cluster_id
from kafkube.compose.stack import free_port

USER = "kafkube"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(  # PKCS#8: the PEM form both Java and OpenSSL read
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(folder: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1, and a client certificate for mTLS."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca = _certificate("kafkube test CA", ca_key, "kafkube test CA", ca_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _certificate("127.0.0.1", server_key, "kafkube test CA", ca_key, server=True)
    client = _certificate(USER, client_key, "kafkube test CA", ca_key)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    (folder / "client.pem").write_bytes(client.public_bytes(pem))
    return Certificates(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=_write_key(server_key, folder / "server.key"),
        client_cert=folder / "client.pem",
        client_key=_write_key(client_key, folder / "client.key"),
    )


def _pem_one_line(path: Path) -> str:
    """A PEM block as a Java properties value (newlines escaped)."""
    return path.read_text().strip().replace("\n", "\\n")


@dataclass(frozen=True)
class OidcValidation:
    """How the broker checks an OAUTHBEARER token: the provider's keys, issuer, audience."""

    jwks: str
    issuer: str
    audience: str
    reauth_ms: int = 10_000


@dataclass
class SecuredKafka:
    folder: Path
    libs: Path
    password: str
    certificates: Certificates
    oidc: OidcValidation | None = None
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.sasl_port, self.mtls_port, self.internal_port, self.controller_port = (
            free_port("127.0.0.1") for _ in range(4)
        )
        self.oauth_port = free_port("127.0.0.1")

    @property
    def oauth_bootstrap(self) -> str:
        return f"127.0.0.1:{self.oauth_port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    @property
    def log(self) -> Path:
        return self.folder / "kafka.log"

    def _properties(self) -> Path:
        certs = self.certificates
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{USER}="{self.password}";'
        )
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": self._listeners(),
            "advertised.listeners": self._listeners(advertised=True),
            "listener.security.protocol.map": (
                "INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.plain.sasl.jaas.config": plain,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": _pem_one_line(certs.server_cert),
            "ssl.keystore.key": _pem_one_line(certs.server_key),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.certificates": _pem_one_line(certs.ca),
            "listener.name.ssl.ssl.client.auth": "required",
            "log.dirs": str(self.folder / "data"),
            "num.network.threads": "2",
            "num.io.threads": "2",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "2",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "2",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.oidc is not None:
            lines.update(self._oauth_listener(self.oidc))
        path = self.folder / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
        return path

    def _oauth_listener(self, oidc: OidcValidation) -> dict[str, str]:
        prefix = "listener.name.oauth.oauthbearer."
        return {
            "listeners": f"{self._listeners()},OAUTH://127.0.0.1:{self.oauth_port}",
            "advertised.listeners": (
                f"{self._listeners(advertised=True)},OAUTH://127.0.0.1:{self.oauth_port}"
            ),
            "listener.security.protocol.map": (
                "INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT,OAUTH:SASL_SSL"
            ),
            "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
            f"{prefix}sasl.jaas.config": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
            ),
            f"{prefix}sasl.server.callback.handler.class": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
            ),
            f"{prefix}connections.max.reauth.ms": str(oidc.reauth_ms),
            "sasl.oauthbearer.jwks.endpoint.url": oidc.jwks,
            "sasl.oauthbearer.expected.issuer": oidc.issuer,
            "sasl.oauthbearer.expected.audience": oidc.audience,
            "sasl.oauthbearer.sub.claim.name": "azp",  # the principal: the client's id
        }

    def _listeners(self, *, advertised: bool = False) -> str:
        listeners = [
            f"INTERNAL://127.0.0.1:{self.internal_port}",
            f"SASL_SSL://127.0.0.1:{self.sasl_port}",
            f"SSL://127.0.0.1:{self.mtls_port}",
        ]
        if not advertised:
            listeners.append(f"CONTROLLER://127.0.0.1:{self.controller_port}")
        return ",".join(listeners)

    def _java(self, main_class: str, heap_mb: int) -> list[str]:
        allowed = (  # Kafka fetches only from the URLs allowed (CVE-2025-27817)
            [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.oidc.jwks}"]
            if self.oidc is not None
            else []
        )
        return [
            "java", f"-Xmx{heap_mb}m", "-XX:+UseSerialGC", *allowed,
            "-cp", f"{self.libs}/*", main_class,
        ]  # fmt: skip

    def start(self, timeout: float = 120) -> None:
        properties = self._properties()
        scram_user = f"SCRAM-SHA-512=[name={USER},password={self.password}]"
        subprocess.run(
            [
                *self._java("kafka.tools.StorageTool", 128),
                "format", "--cluster-id", kafka_cluster_id(), "--config", str(properties),
                "--add-scram", scram_user,
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.launch(timeout)

    def launch(self, timeout: float = 120) -> None:
        """Start the broker on its formatted storage; wait until it takes a SCRAM login."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*self._java("kafka.Kafka", 384), str(self.folder / "server.properties")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        admin = AdminClient({**self.client("SCRAM-SHA-512"), "log_level": 0})
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, self.log.read_text()[-4000:]
            try:
                admin.list_topics(timeout=5)
            except Exception:  # noqa: BLE001 - not up yet
                assert time.monotonic() < deadline, self.log.read_text()[-4000:]
                time.sleep(1)
            else:
                return

    def change_password(self, password: str) -> None:
        """Set the SCRAM password on the broker (live sessions stay logged in until they
        reconnect); what the broker's clients log in with from now on."""
        from confluent_kafka.admin import (  # noqa: PLC0415
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({**self.client("SCRAM-SHA-512"), "log_level": 0})
        upsert = UserScramCredentialUpsertion(
            USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(30)
        self.password = password

    def client(self, mechanism: str, password: str | None = None) -> dict[str, str]:
        """librdkafka properties for the SASL_SSL listener."""
        return {
            "bootstrap.servers": self.sasl_bootstrap,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": mechanism,
            "sasl.username": USER,
            "sasl.password": password if password is not None else self.password,
            "ssl.ca.location": str(self.certificates.ca),
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
