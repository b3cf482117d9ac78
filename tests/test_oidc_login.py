"""OAUTHBEARER with OIDC, end to end: a real provider (Keycloak, on loopback) hands each
component a token for its client id and secret; a broker validates the tokens by the
provider's keys (JWKS), issuer and audience, and makes every session log in again every 5 s.
Tokens live 10 s here: a run of half a minute meets several expiries, and keeps every event once.
A wrong secret is the same clear login error as a wrong password, and never printed."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from kafkube.compose import fetch
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack
from tests.conftest import unique
from tests.oidc_provider import AUDIENCE, OidcProvider, Relay
from tests.processes import LISTEN, KafkubeProcess, http_get, run_kafkube
from tests.producing import EventWriter
from tests.secured_kafka import OidcValidation, SecuredKafka, make_certificates
from tests.sinking import read_avro_dir

pytestmark = pytest.mark.timeout(600)

TOKEN_SECONDS = 10  # how long a token lives: a run of half a minute outlives a few
REAUTH_MS = 5_000  # the broker makes each session log in again this often


@pytest.fixture(scope="module")
def provider(
    native_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProvider]:
    oidc = OidcProvider(
        dist=fetch.keycloak_dist(native_stack.settings),
        folder=tmp_path_factory.mktemp("keycloak"),
    )
    oidc.start()
    yield oidc
    oidc.stop()


@pytest.fixture(scope="module")
def broker(
    native_stack: Stack, provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredKafka]:
    folder = tmp_path_factory.mktemp("oauth-kafka")
    kafka = SecuredKafka(
        folder=folder,
        libs=fetch.kafka_libs(native_stack.settings),
        password="pw-" + "oauth-broker-admin",
        certificates=make_certificates(folder / "tls"),
        oidc=OidcValidation(
            jwks=provider.jwks, issuer=provider.issuer, audience=AUDIENCE, reauth_ms=REAUTH_MS
        ),
    )
    kafka.start()
    yield kafka
    kafka.stop()


def _config(path: Path, broker: SecuredKafka, provider: OidcProvider, client_id: str) -> Path:
    """The secret is not in the file: it comes by environment or as a file."""
    security = {
        "protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "ca_file": str(broker.certificates.ca),
        "oidc": {"token_endpoint": provider.token_endpoint, "client_id": client_id},
    }
    path.write_text(
        yaml.safe_dump(
            {"kafka": {"bootstrap_servers": broker.oauth_bootstrap, "security": security}}
        )
    )
    return path


def test_producer_and_sink_log_in_by_oidc_and_keep_every_event_once_across_token_expiries(
    broker: SecuredKafka,
    provider: OidcProvider,
    endpoints: Endpoints,
    kube_api: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    provider.token_lifespan(TOKEN_SECONDS)
    producer_secret = provider.client("kafkube-producer")
    producing = _config(tmp_path / "p.yaml", broker, provider, "kafkube-producer")
    sink_secret = provider.client("kafkube-sink")
    (tmp_path / "sink-secret").write_text(sink_secret + "\n")
    topic, group = unique("oidc"), unique("sink-oidc")
    producer = KafkubeProcess()
    producer.log = tmp_path / "producer.log"
    producer.launch(
        "produce", "--cluster", "oidc", "--kubeconfig", endpoints.kubeconfig,
        "--namespace", namespace, "--topic", topic, "--partitions", "2",
        "--transactional-id", unique("tx"), "--linger-seconds", "0.05",
        env={
            "KAFKUBE_CONFIG": str(producing),
            "KAFKUBE_KAFKA__SECURITY__OIDC__CLIENT_SECRET": producer_secret,
        },
    )  # fmt: skip
    producer.wait_for("watching from resourceVersion", timeout=90)
    sink = KafkubeProcess()
    sink.log = tmp_path / "sink.log"
    sink.launch(
        "sink", "file", "--dir", str(tmp_path / "out"), "--topic", topic, "--group", group,
        "--max-age-seconds", "0.5",
        env={
            "KAFKUBE_CONFIG": str(_config(tmp_path / "s.yaml", broker, provider, "kafkube-sink")),
            "KAFKUBE_KAFKA__SECURITY__OIDC__CLIENT_SECRET_FILE": str(tmp_path / "sink-secret"),
        },
    )  # fmt: skip
    sink.wait_for("assigned partition", timeout=90)

    writer = EventWriter(kube_api, namespace)
    until = time.monotonic() + 3 * TOKEN_SECONDS  # events all along three tokens' lives
    number = 0
    while time.monotonic() < until:
        assert producer.alive(), producer.log.read_text()[-3000:]
        assert sink.alive(), sink.log.read_text()[-3000:]
        writer.create(f"oidc-{number}.{unique('e')}")
        number += 1
        time.sleep(0.25)  # the pace of a busy namespace, not a wait for anything
    deadline = time.monotonic() + 120
    while set(held := read_avro_dir(tmp_path / "out")) < writer.occurrences:
        assert sink.alive(), sink.log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{len(held)} of {len(writer.occurrences)} written"
        time.sleep(0.5)
    assert producer.terminate() == 0
    assert sink.terminate() == 0

    counts = Counter(read_avro_dir(tmp_path / "out"))
    assert set(counts) == writer.occurrences
    assert set(counts.values()) == {1}
    for client_id in ("kafkube-producer", "kafkube-sink"):  # renewed, not logged in once
        assert provider.logins(client_id) >= 3
    logs = producer.log.read_text() + sink.log.read_text()
    assert "refused" not in logs
    assert producer_secret not in logs
    assert sink_secret not in logs


def test_a_wrong_client_secret_is_the_clear_login_error_and_never_printed(
    broker: SecuredKafka, provider: OidcProvider, tmp_path: Path
) -> None:
    provider.client("kafkube-wrong")
    wrong = "not-the-" + "client-secret-42"
    env = {
        **os.environ,
        "KAFKUBE_CONFIG": str(_config(tmp_path / "w.yaml", broker, provider, "kafkube-wrong")),
        "KAFKUBE_KAFKA__SECURITY__OIDC__CLIENT_SECRET": wrong,
    }

    sink = run_kafkube(
        "sink", "file", "--dir", str(tmp_path / "out"), "--topic", unique("refused"), env=env,
        timeout=120,
    )  # fmt: skip
    status = run_kafkube("status", env=env, timeout=120)

    for result in (sink, status):
        assert result.returncode == 1, result.stderr
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith("kafkube: Kafka refused the login"), result.stderr
        assert "SASL_SSL OAUTHBEARER as OIDC client 'kafkube-wrong'" in message
        assert "kafka.security oidc" in message
        assert wrong not in result.stdout + result.stderr


def test_a_provider_away_is_waited_out_and_the_sink_logs_in_once_it_answers(
    broker: SecuredKafka, provider: OidcProvider, tmp_path: Path
) -> None:
    """The provider does not answer at the sink's start (its path cut): no token, so no
    login. The sink waits, alive and not ready, saying so once; the path back, it logs in
    and takes its partitions."""
    secret = provider.client("kafkube-patient")
    relay = Relay(provider.port)
    config = _config(tmp_path / "a.yaml", broker, provider, "kafkube-patient")
    away = provider.token_endpoint.replace(f":{provider.port}/", f":{relay.port}/")
    config.write_text(config.read_text().replace(provider.token_endpoint, away))
    topic = unique("patient")
    admin = AdminClient({**broker.client("SCRAM-SHA-512"), "log_level": 0})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    sink = KafkubeProcess()
    sink.log = tmp_path / "sink.log"
    sink.launch(
        "sink", "file", "--dir", str(tmp_path / "out"), "--topic", topic,
        "--group", unique("sink-patient"),
        env={"KAFKUBE_CONFIG": str(config), "KAFKUBE_KAFKA__SECURITY__OIDC__CLIENT_SECRET": secret,
             **LISTEN},
    )  # fmt: skip
    try:
        sink.wait_for("unavailable", timeout=90)
        status, said = http_get(f"{sink.served_at()}/readyz")
        relay.open()
        sink.wait_for("assigned partition", timeout=120)
    finally:
        relay.close()
    code = sink.terminate()

    assert code == 0, sink.log.read_text()[-3000:]
    assert status == 503, said
    text = sink.log.read_text()
    assert "Failed to acquire SASL OAUTHBEARER token" in text
    assert text.count(" unavailable (") == 1  # said once, not a flood
    assert "refused" not in text
    assert secret not in text
