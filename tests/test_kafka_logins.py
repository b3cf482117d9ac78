"""The token logins' wiring, without a broker: OAUTHBEARER through OIDC becomes librdkafka's
own OIDC client properties; AWS_MSK_IAM hands librdkafka the tokens of Amazon's signer
through the OAUTHBEARER callback, renewed before they expire. (No AWS is reachable here: the
token is a presigned URL the signer makes from the credentials alone, which only MSK checks.)
"""

from __future__ import annotations

import base64
import itertools
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from confluent_kafka import KafkaError, Producer

from kafkube.core.errors import KafkaLoginError
from kafkube.core.login import login_refusal
from kafkube.core.settings import KafkaConfig

OIDC = {
    "protocol": "SASL_SSL",
    "sasl_mechanism": "OAUTHBEARER",
    "oidc": {
        "token_endpoint": "https://idp.example/realms/kafka/protocol/openid-connect/token",
        "client_id": "kafkube",
        "scope": "kafka",
        "extensions": {"logicalCluster": "lkc-1", "identityPoolId": "pool-2"},
    },
}


def test_oidc_becomes_librdkafkas_own_client_credentials_login(tmp_path: Path) -> None:
    secret, ca = tmp_path / "client-secret", tmp_path / "idp-ca.pem"
    secret.write_text("s3cr3t-from-a-mounted-secret\n")
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    oidc = {**OIDC["oidc"], "client_secret_file": str(secret), "ca_file": str(ca)}  # type: ignore[dict-item]
    kafka = KafkaConfig(bootstrap_servers="b:9093", security={**OIDC, "oidc": oidc})

    properties = kafka.client_properties()

    assert properties == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": oidc["token_endpoint"],
        "sasl.oauthbearer.client.id": "kafkube",
        "sasl.oauthbearer.client.secret": "s3cr3t-from-a-mounted-secret",
        "sasl.oauthbearer.scope": "kafka",
        "sasl.oauthbearer.extensions": "logicalCluster=lkc-1,identityPoolId=pool-2",
        "https.ca.location": str(ca),
    }
    Producer({**properties, "log_level": 0})  # librdkafka takes every one of them
    assert "s3cr3t" not in repr(kafka)


def test_a_refused_token_login_names_the_client_and_what_to_check() -> None:
    kafka = KafkaConfig(
        bootstrap_servers="b:9093",
        security={**OIDC, "oidc": {**OIDC["oidc"], "client_secret": "never-in-the-error"}},  # type: ignore[dict-item]
    )
    error = KafkaError(KafkaError._AUTHENTICATION, "Failed to acquire SASL OAUTHBEARER token")  # noqa: SLF001

    refused = login_refusal(kafka.client_properties(), error)

    assert isinstance(refused, KafkaLoginError)
    assert "OIDC client 'kafkube'" in str(refused)
    assert "check kafka.security oidc (token_endpoint, client_id, client_secret)" in str(refused)
    assert "never-in-the-error" not in str(refused)


@pytest.mark.parametrize(
    ("said", "refused"),
    [  # librdkafka's words, as it said them against Keycloak and a closed port
        ('{"error":"unauthorized_client","error_description":"Invalid client credentials"}',
         True),
        ('{"error":"Unable to find matching target resource method"}', True),  # a wrong URL
        ("Failed to connect to 127.0.0.1:9 after 0 ms: Could not connect to server", False),
        ("Timeout was reached", False),
        ("<html><body>502 Bad Gateway</body></html>", False),
    ],
)  # fmt: skip
def test_a_provider_that_refuses_ends_the_login_one_that_is_away_is_waited_out(
    said: str,
    refused: bool,  # noqa: FBT001 - pytest's parameters
) -> None:
    kafka = KafkaConfig(
        bootstrap_servers="b:9093",
        security={**OIDC, "oidc": {**OIDC["oidc"], "client_secret": "s"}},  # type: ignore[dict-item]
    )
    error = KafkaError(
        KafkaError._AUTHENTICATION,  # noqa: SLF001
        f"Failed to acquire SASL OAUTHBEARER token: {said}",
    )

    assert isinstance(login_refusal(kafka.client_properties(), error), KafkaLoginError) is refused


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Credentials in the environment, the first link of the AWS chain; no file or instance
    metadata to fall back on."""
    key = "AKIAKAFKUBETEST00001"
    for name, value in {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": "kafkube-test-secret-key",
        "AWS_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    return key


def test_msk_iam_hands_librdkafka_the_signers_token_and_renews_it_before_it_expires(
    aws_credentials: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real librdkafka client (no broker answers: the token comes first) with kafkube's
    callback. The signer's tokens live 15 minutes; here 6 s (its own setting), so that
    librdkafka's renewal, at 80 % of a token's life, comes within the test. The signer dates
    a token to the whole second, so one lives between 5 and 6 s."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # noqa: PLC0415

    monkeypatch.setattr(MSKAuthTokenProvider, "DEFAULT_TOKEN_EXPIRY_SECONDS", 6)
    kafka = KafkaConfig(
        bootstrap_servers="127.0.0.1:9",
        security={"protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM"},
    )
    properties = kafka.client_properties()
    assert properties["sasl.mechanism"] == "OAUTHBEARER"
    handed: list[tuple[float, str, float]] = []  # when, the token, its expiry
    errors: list[KafkaError] = []

    def recorded(config: str) -> Any:
        token, expiry = properties["oauth_cb"](config)
        handed.append((time.time(), token, expiry))
        return token, expiry

    client = Producer(
        {**properties, "oauth_cb": recorded, "error_cb": errors.append, "log_level": 0}
    )
    deadline = time.monotonic() + 20
    while len(handed) < 2:
        assert time.monotonic() < deadline, f"librdkafka asked for {len(handed)} tokens"
        client.poll(0.2)

    for (asked, _, expiry), (renewed, _, _) in itertools.pairwise(handed):
        assert asked < renewed < expiry  # a new token before the last one expired
    url = urlparse(base64.urlsafe_b64decode(handed[0][1] + "==").decode())
    query = parse_qs(url.query)
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith(f"{aws_credentials}/")
    assert "/eu-west-1/kafka-cluster/aws4_request" in query["X-Amz-Credential"][0]
    assert len({token for _, token, _ in handed}) == len(handed)
    assert not [e for e in errors if e.code() == KafkaError._AUTHENTICATION]  # noqa: SLF001


def _msk_config(**login: str) -> KafkaConfig:
    return KafkaConfig(
        bootstrap_servers="127.0.0.1:9",
        security={"protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM", "msk_iam": login},
    )


# What the client's error callback and constructor say when the callback made no token.
NO_TOKEN = [
    KafkaError(KafkaError._AUTHENTICATION,  # noqa: SLF001
               "Failed to acquire SASL OAUTHBEARER token: OAuth callback raised exception"),
    KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED,
               "OAuth token not set within 10 seconds timeout"),
]  # fmt: skip


def test_msk_iam_without_credentials_is_a_clear_login_error(
    aws_credentials: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    properties = _msk_config().client_properties()

    with pytest.raises(KafkaLoginError, match=r"no AWS_MSK_IAM token: .*check the AWS credentials"):
        properties["oauth_cb"]("")
    # The client says only that no token came: the login's check and its error callback
    # end the run with the callback's reason.
    for said in NO_TOKEN:
        refused = login_refusal(properties, said)
        assert refused is properties["oauth_cb"].refused
        assert "no AWS_MSK_IAM token: " in str(refused)


def test_msk_iam_with_sts_away_is_waited_out_and_said_once(
    aws_credentials: str,  # the role is assumed with them
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The role is assumed through STS, at the region's own endpoint; STS here is a closed
    port (AWS's own setting of an endpoint): a network fault, which passes."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    properties = _msk_config(role_arn="arn:aws:iam::123456789012:role/kafkube").client_properties()
    token = properties["oauth_cb"]

    for _ in range(3):  # librdkafka asks every 10 s
        with pytest.raises(Exception, match=r"127\.0\.0\.1:9") as raised:
            token("")
        assert not isinstance(raised.value, KafkaLoginError)
    for said in NO_TOKEN:
        assert login_refusal(properties, said) is None  # waited out
    unavailable = [r.getMessage() for r in caplog.records if "AWS_MSK_IAM token" in r.getMessage()]
    assert len(unavailable) == 1, unavailable
    assert "unavailable (EndpointConnectionError" in unavailable[0]
    assert aws_credentials not in unavailable[0]
