"""AWS_MSK_IAM: Amazon MSK's IAM login, as librdkafka's OAUTHBEARER with a token callback.

Amazon's signer (``aws-msk-iam-sasl-signer-python``, the ``msk`` extra) presigns a
``kafka-cluster:Connect`` request with the process's AWS credentials; the base64 of that URL
is the token MSK's IAM listener takes. confluent-kafka calls the callback for the first token
and again before each one expires (librdkafka asks at 80 % of its life), from the thread that
polls the client, so a renewed token is never late.

A token that cannot be made is one of two things. No credentials, or AWS refusing them (a
role that may not be assumed), cannot pass by itself: the login check and the client's error
callback end the process with that error (``refused``). STS or the instance's metadata away
or throttling does pass: librdkafka asks again every 10 s, the outage is said once, and the
process waits it out.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kafkube.core.errors import ConfigError, KafkaLoginError
from kafkube.core.outages import Outage

if TYPE_CHECKING:
    from kafkube.core.settings import MskIamLogin

log = logging.getLogger(__name__)

Token = tuple[str, float]  # the token, and when it expires (seconds since the epoch)

# Credentials that are not there: botocore's errors, and the signer's own (it meets no
# credentials at all as None, an AttributeError; empty keys as a ValueError).
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound")


def _lasting(err: Exception) -> bool:
    """Whether the signer's failure cannot pass by itself: no credentials, or AWS refusing
    them (an answer of 4xx but throttling). A network or server fault passes."""
    if isinstance(err, ValueError | AttributeError) or type(err).__name__ in _NO_CREDENTIALS:
        return True
    answer = getattr(err, "response", None)  # botocore's ClientError
    if not isinstance(answer, dict):
        return False
    status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = str(answer.get("Error", {}).get("Code", ""))
    return 400 <= status < 500 and status != 429 and "Throttl" not in code


class MskIamToken:
    """The ``oauth_cb`` of a client that logs in to MSK with IAM."""

    def __init__(self, login: MskIamLogin) -> None:
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
        self.signer, self.login, self.region = MSKAuthTokenProvider, login, region
        self.role = _assumed_role(login, region) if login.role_arn else None
        self.outage = Outage("AWS_MSK_IAM token (AWS credentials or STS)", log)
        # The last failure, if it cannot pass by itself; None while tokens come.
        self.refused: KafkaLoginError | None = None

    def __call__(self, _config: str) -> Token:
        try:
            if self.role is not None:
                made, expiry_ms = self.signer.generate_auth_token_from_credentials_provider(
                    self.region, self.role
                )
            else:
                made, expiry_ms = self.signer.generate_auth_token(self.region)
        except Exception as err:  # said clearly, not a trace; librdkafka asks again in 10 s
            said = f"{type(err).__name__}: {err}"
            if _lasting(err):
                self.refused = KafkaLoginError(
                    f"no AWS_MSK_IAM token: {said}; check the AWS credentials (environment, "
                    "IRSA, instance role) and kafka.security.msk_iam"
                )
                raise self.refused from err
            self.outage.failed(said)
            raise
        self.refused = None
        self.outage.recovered()
        return str(made), float(expiry_ms) / 1000


def _assumed_role(login: MskIamLogin, region: str) -> Any:  # noqa: ANN401 - botocore's, untyped
    """The role's credentials, assumed anew for each token through the region's own STS
    endpoint (the signer's own role path uses the global one, and a region only from
    AWS_DEFAULT_REGION): a botocore credential provider, as the signer takes one."""
    import boto3  # noqa: PLC0415 - with the signer's extra
    from botocore.credentials import CredentialProvider, Credentials  # noqa: PLC0415

    class AssumedRole(CredentialProvider):
        METHOD = "kafkube-assume-role"

        def load(self) -> Credentials:
            sts = boto3.client("sts", region_name=region)
            answer = sts.assume_role(RoleArn=login.role_arn, RoleSessionName=login.session_name)
            made = answer["Credentials"]
            return Credentials(made["AccessKeyId"], made["SecretAccessKey"], made["SessionToken"])

    return AssumedRole()
