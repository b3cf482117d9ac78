"""AWS_MSK_IAM: Amazon MSK's IAM login, as librdkafka's OAUTHBEARER with a token callback.

Amazon's signer (``aws-msk-iam-sasl-signer-python``, the ``msk`` extra) presigns a
``kafka-cluster:Connect`` request with the process's AWS credentials; the base64 of that URL
is the token MSK's IAM listener takes. confluent-kafka calls the callback for the first token
and again before each one expires (librdkafka asks at 80 % of its life), from the thread that
polls the client, so a renewed token is never late.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kafkube.core.errors import ConfigError, KafkaLoginError

if TYPE_CHECKING:
    from kafkube.core.settings import MskIamLogin

Token = tuple[str, float]  # the token, and when it expires (seconds since the epoch)


def msk_iam_token(login: MskIamLogin) -> Callable[[str], Token]:
    """The ``oauth_cb`` of a client that logs in to MSK with IAM."""
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # noqa: PLC0415
    except ImportError as err:
        raise ConfigError(
            "kafka.security.sasl_mechanism",
            "AWS_MSK_IAM needs Amazon's signer: pip install 'kafkube[msk]'",
        ) from err
    region = login.found_region()
    if region is None:  # the settings' check says so first; here for the type
        raise ConfigError("kafka.security.msk_iam.region", "is required (or AWS_REGION)")

    def token(_config: str) -> Token:
        try:
            if login.role_arn:
                made, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_role_arn(
                    region, login.role_arn, login.session_name
                )
            else:
                made, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        except Exception as err:  # no credentials, STS refusing: said clearly, not a trace
            raise KafkaLoginError(
                f"no AWS_MSK_IAM token: {type(err).__name__}: {err}; check the AWS credentials "
                "(environment, IRSA, instance role) and kafka.security.msk_iam"
            ) from err
        return str(made), float(expiry_ms) / 1000

    return token
