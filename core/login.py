"""Kafka's answer to this client's login, checked at start and watched for the rest of a run.

librdkafka retries a refused login for ever and reports only a timeout; the producer,
the sinks and the CLI's own Kafka commands all want one clear error that says what to fix.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from kafkube.core.errors import KafkaLoginError, KafkaUnreachableError
from kafkube.core.outages import Outage
from kafkube.core.waiting import Deadline, Stopped, waited_out

log = logging.getLogger(__name__)

_REFUSED_LOGIN = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}  # noqa: SLF001


# librdkafka's words when it could not get an OAUTHBEARER token, followed by the identity
# provider's answer (an OAuth error in JSON: the provider refused) or the transport's (the
# provider away, which passes by itself: waited out like Kafka away).
_NO_TOKEN = "Failed to acquire SASL OAUTHBEARER token:"  # noqa: S105 - a message, no secret
# confluent-kafka's words when a client's first token did not come (its callback failed).
_NO_FIRST_TOKEN = "OAuth token not set"  # noqa: S105 - a message, no secret


def _provider_refused(said: str) -> bool:
    """Whether the text after ``_NO_TOKEN`` is the provider's own refusal (its JSON error)."""
    answer = said.split(_NO_TOKEN, 1)[1].strip()
    try:
        return "error" in json.loads(answer[answer.index("{") :])
    except (ValueError, TypeError):
        return False


def login_refusal(properties: Mapping[str, Any], error: KafkaError) -> KafkaLoginError | None:
    """The clear error for a refused login or TLS set-up; None for any other Kafka error (an
    identity provider that does not answer included: that passes by itself)."""
    said = error.str()
    if error.code() in _REFUSED_LOGIN:
        callback = properties.get("oauth_cb")  # AWS_MSK_IAM's token maker knows its failure
        if callback is not None and (_NO_TOKEN in said or _NO_FIRST_TOKEN in said):
            return getattr(callback, "refused", None)
        if _NO_TOKEN in said and not _provider_refused(said):
            return None
        how = f"{properties.get('security.protocol')} {properties.get('sasl.mechanism')}"
        if "oauth_cb" in properties:  # AWS_MSK_IAM's token
            who, check = "with an AWS_MSK_IAM token", "msk_iam and the AWS credentials"
        elif "sasl.oauthbearer.client.id" in properties:
            who = f"as OIDC client {properties['sasl.oauthbearer.client.id']!r}"
            check = "oidc (token_endpoint, client_id, client_secret)"
        else:
            who = f"as {properties.get('sasl.username')!r}"
            check = "(username, password)"
        return KafkaLoginError(
            f"Kafka refused the login ({how} {who}): {said}; check kafka.security {check}"
        )
    if error.code() == KafkaError._SSL:  # noqa: SLF001
        return KafkaLoginError(
            f"TLS with Kafka failed: {said}; check kafka.security (ca_file, cert_file, key_file)"
        )
    return None


def check_kafka_login(properties: Mapping[str, str], timeout: float = 30) -> None:
    """Fail at once, saying what to fix, when Kafka refuses these credentials or this TLS
    set-up; librdkafka itself would retry the login for ever and report only a timeout."""
    problems: list[KafkaError] = []
    client: dict[str, Any] = {**properties, "log_level": 0, "error_cb": problems.append}
    try:
        admin = AdminClient(client)
    except KafkaException as err:  # its first token did not come (AWS_MSK_IAM's callback)
        refused = login_refusal(properties, err.args[0])
        if refused is not None:
            raise refused from None
        raise KafkaUnreachableError(f"no login to Kafka yet: {err.args[0].str()}") from None
    deadline = Deadline(timeout)
    while True:
        try:
            admin.list_topics(timeout=2)
        except KafkaException as err:
            failure = err
        else:
            return
        admin.poll(0)  # hands the errors met meanwhile to error_cb
        for problem in problems:
            refused = login_refusal(properties, problem)
            if refused is not None:
                raise refused
        if deadline.passed():
            where = properties.get("bootstrap.servers")
            said = problems[-1].str() if problems else failure.args[0].str()
            raise KafkaUnreachableError(
                f"cannot reach Kafka at {where} within {timeout:.0f} s: {said}"
            )


def wait_for_kafka_login(properties: Mapping[str, str], stop: threading.Event) -> bool:
    """``check_kafka_login`` for a service: Kafka not answering is waited out (said once per
    change of state, readiness says why), a refused login ends it; False if stopped first."""
    outage = Outage(f"Kafka at {properties.get('bootstrap.servers')}", log)
    try:
        waited_out(
            lambda: check_kafka_login(properties, timeout=10),
            outage,
            stop,
            away=lambda err: isinstance(err, KafkaUnreachableError),
        )
    except Stopped:
        return False
    return True


def refusing_later_logins(properties: Mapping[str, str]) -> dict[str, Any]:
    """The properties, with an error callback that ends the process with the same clear error
    as at start when Kafka refuses the login later in the run (a rotated password or
    certificate, met at a reconnect): librdkafka would retry it silently for ever. The client
    raises it from its own poll, consume or flush, in the thread that drives it."""

    def refuse(error: KafkaError) -> None:
        refused = login_refusal(properties, error)
        if refused is not None:
            raise refused

    return {**properties, "error_cb": refuse}
