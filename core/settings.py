"""The settings every package shares: the Kafka cluster (its security and schema registry),
and observability; the base of every section; and the environment's naming of fields.

Each section's model lives beside the code it configures (the producer's in
``kafkube.producer.settings``, each sink's in ``kafkube.consumers.settings``); the loader,
which reads the file and the environment into one tree of these, is
``kafkube.cli.configuration.loading``. The running code takes its frozen section as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, core_schema

from kafkube.core.errors import ConfigError
from kafkube.core.redaction import split_userinfo

# A field's environment variable: KAFKUBE_ and the dotted path joined by __
# (KAFKUBE_KAFKA__SECURITY__PASSWORD for kafka.security.password).
ENV_PREFIX = "KAFKUBE_"
ENV_NESTING = "__"

DEFAULT_TOPIC = "kafkube.events"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"]
# The mechanisms that log in with a user name and password; the others have sections of their own.
_PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class Section(BaseModel):
    """A part of the configuration: unknown keys refused, values frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class OneOf:
    """A field's value must be one of ``names()`` as they are when it is validated: the keys
    of a table that may grow after import (``FORMATS``, the formats' codecs). The CLI's
    choices read it too (``one_of``), so the table is the only list."""

    names: Callable[[], Iterable[str]]

    def __get_pydantic_core_schema__(
        self,
        source: Any,  # noqa: ANN401 - pydantic's interface
        handler: GetCoreSchemaHandler,
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._known, handler(source))

    def _known(self, name: str) -> str:
        names = list(self.names())
        if name not in names:
            choices = ", ".join(key or "empty (the default)" for key in names)
            raise ValueError(f"must be one of {choices}, got {name!r}")
        return name


def one_of(field: FieldInfo) -> OneOf | None:
    """The table a field's value comes from, if it is one (``OneOf``)."""
    return next((m for m in field.metadata if isinstance(m, OneOf)), None)


def check_client_properties(kafka: dict[str, Any], owned: tuple[str, ...], why: str) -> None:
    """Refuse librdkafka properties a component cannot start with: no brokers, or one of
    the properties it sets itself (``owned``, set by kafkube: ``why``)."""
    if not kafka.get("bootstrap.servers"):
        raise ConfigError("kafka.bootstrap_servers", "is required")
    for key in owned:
        if key in kafka:
            raise ConfigError(f"kafka.{key}", f"is set by kafkube {why}")


# What Kafka accepts as a topic name (it also refuses "." and ".."): letters, digits, ".",
# "_", "-", at most 249. No record can steer a path through one.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def is_topic_name(name: str) -> bool:
    return bool(_TOPIC_NAME.fullmatch(name)) and name not in {".", ".."}


def secret_value(value: SecretStr | None, file: Path | None) -> str | None:
    """A secret given inline or as a file (a mounted Kubernetes Secret), its newline off."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    return None


# librdkafka properties the security section owns: set them there, not under properties.
_SECURITY_PROPERTIES = {
    "security.protocol": "protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "username",
    "sasl.password": "password",
    "ssl.ca.location": "ca_file",
    "ssl.certificate.location": "cert_file",
    "ssl.key.location": "key_file",
    "ssl.key.password": "key_password",
    "sasl.oauthbearer.method": "oidc",
    "sasl.oauthbearer.token.endpoint.url": "oidc.token_endpoint",
    "sasl.oauthbearer.client.id": "oidc.client_id",
    "sasl.oauthbearer.client.secret": "oidc.client_secret",
    "sasl.oauthbearer.scope": "oidc.scope",
    "sasl.oauthbearer.extensions": "oidc.extensions",
    "https.ca.location": "oidc.ca_file",
    "oauth_cb": "msk_iam",
}


def _existing_file(path: Path | None, field: str) -> None:
    if path is not None and not path.is_file():
        raise ValueError(f"{field}: no such file: {path}")


class OidcLogin(Section):
    """OAUTHBEARER through an OpenID Connect provider: this client's credentials traded at the
    token endpoint for a token (a JWT) that the brokers validate; a new one before it
    expires (librdkafka's ``sasl.oauthbearer.method=oidc``)."""

    token_endpoint: str | None = Field(
        None, description="The provider's token endpoint URL (client credentials grant)."
    )
    client_id: str | None = Field(None, description="This client's id at the provider.")
    client_secret: SecretStr | None = Field(
        None, description="This client's secret; give it by environment or a secret file."
    )
    client_secret_file: Path | None = Field(
        None, description="A file holding the client secret (a mounted Kubernetes Secret)."
    )
    scope: str | None = Field(None, description="The scope to ask for, if the provider wants one.")
    extensions: dict[str, str] = Field(
        default_factory=dict,
        description="SASL extensions sent with the token (Confluent Cloud: logicalCluster, "
        "identityPoolId).",
    )
    ca_file: Path | None = Field(
        None, description="PEM CA bundle that signed the token endpoint's HTTPS certificate."
    )

    def missing(self) -> list[str]:
        """The fields a login needs that are not set, by their full names."""
        wanted = [("token_endpoint", self.token_endpoint), ("client_id", self.client_id)]
        missing = [f"oidc.{name}" for name, value in wanted if not value]
        if self.client_secret is None and self.client_secret_file is None:
            missing.append("oidc.client_secret (or oidc.client_secret_file)")
        return missing

    def librdkafka(self) -> dict[str, str]:
        properties = {
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.token.endpoint.url": str(self.token_endpoint),
            "sasl.oauthbearer.client.id": str(self.client_id),
            "sasl.oauthbearer.client.secret": str(
                secret_value(self.client_secret, self.client_secret_file)
            ),
        }
        if self.scope:
            properties["sasl.oauthbearer.scope"] = self.scope
        if self.extensions:
            properties["sasl.oauthbearer.extensions"] = ",".join(
                f"{key}={value}" for key, value in self.extensions.items()
            )
        if self.ca_file is not None:
            properties["https.ca.location"] = str(self.ca_file)
        return properties


class MskIamLogin(Section):
    """AWS_MSK_IAM: a token signed with this process's AWS credentials (the usual chain:
    environment, IRSA's web identity, the instance's role), made by Amazon's
    ``aws-msk-iam-sasl-signer-python`` (``pip install 'kafkube[msk]'``) and handed to
    librdkafka as an OAUTHBEARER token, a new one before it expires."""

    region: str | None = Field(
        None, description="The cluster's AWS region. Also AWS_REGION or AWS_DEFAULT_REGION."
    )
    role_arn: str | None = Field(
        None, description="A role to assume for the login (else the credentials as found)."
    )
    session_name: str = Field("kafkube", description="The assumed role's session name.")

    def found_region(self) -> str | None:
        import os  # noqa: PLC0415 - only this mechanism reads the AWS variables

        return self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


class KafkaSecurity(Section):
    """How kafkube authenticates to Kafka and checks the brokers: SASL and/or TLS."""

    protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="How to talk to the brokers (librdkafka security.protocol)."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None, description="With SASL_SSL or SASL_PLAINTEXT: how to log in."
    )
    username: str | None = Field(None, description="SASL user name.")
    password: SecretStr | None = Field(
        None, description="SASL password; give it by environment or a mounted secret file."
    )
    password_file: Path | None = Field(
        None, description="A file holding the SASL password (a mounted Kubernetes Secret)."
    )
    ca_file: Path | None = Field(
        None, description="PEM CA bundle that signed the brokers' certificates."
    )
    cert_file: Path | None = Field(
        None, description="mTLS: this client's PEM certificate (with key_file)."
    )
    key_file: Path | None = Field(None, description="mTLS: this client's PEM private key.")
    key_password: SecretStr | None = Field(None, description="mTLS: the private key's password.")
    oidc: OidcLogin = Field(
        default_factory=OidcLogin, description="With sasl_mechanism OAUTHBEARER."
    )
    msk_iam: MskIamLogin = Field(
        default_factory=MskIamLogin, description="With sasl_mechanism AWS_MSK_IAM."
    )

    def _missing(self) -> list[str]:
        """What the chosen mechanism needs and is not set."""
        if self.sasl_mechanism is None:
            return ["sasl_mechanism"]
        if self.sasl_mechanism == "OAUTHBEARER":
            return self.oidc.missing()
        if self.sasl_mechanism == "AWS_MSK_IAM":
            return [] if self.msk_iam.found_region() else ["msk_iam.region (or AWS_REGION)"]
        missing = [] if self.username else ["username"]
        if self.password is None and self.password_file is None:
            missing.append("password (or password_file)")
        return missing

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        sasl = self.protocol.startswith("SASL_")
        if sasl:
            missing = self._missing()
            if missing:
                how = f" with {self.sasl_mechanism}" if self.sasl_mechanism else ""
                raise ValueError(f"{self.protocol}{how} needs {', '.join(missing)}")
            if self.sasl_mechanism not in _PASSWORD_MECHANISMS and (
                self.username or self.password or self.password_file
            ):
                section = "oidc" if self.sasl_mechanism == "OAUTHBEARER" else "msk_iam"
                raise ValueError(
                    f"{self.sasl_mechanism} logs in without username and password: "
                    f"set kafka.security.{section}"
                )
            if self.sasl_mechanism == "AWS_MSK_IAM" and self.protocol != "SASL_SSL":
                raise ValueError("AWS_MSK_IAM needs protocol SASL_SSL (MSK's IAM listener)")
        elif self.sasl_mechanism or self.username or self.password or self.password_file:
            raise ValueError(
                f"SASL settings given but protocol is {self.protocol}: use SASL_SSL (or "
                "SASL_PLAINTEXT on a trusted network)"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mTLS)")
        if not self.protocol.endswith("SSL") and (self.ca_file or self.cert_file):
            raise ValueError(
                f"TLS files given but protocol is {self.protocol}: use SSL or SASL_SSL"
            )
        for name in ("password_file", "ca_file", "cert_file", "key_file"):
            _existing_file(getattr(self, name), name)
        for name in ("client_secret_file", "ca_file"):
            _existing_file(getattr(self.oidc, name), f"oidc.{name}")
        return self

    def librdkafka(self) -> dict[str, Any]:
        """librdkafka's properties for this security; with AWS_MSK_IAM, the token callback
        (``oauth_cb``) that confluent-kafka calls for each new token."""
        properties: dict[str, Any] = {"security.protocol": self.protocol}
        password = secret_value(self.password, self.password_file)
        mechanism = self.sasl_mechanism
        if mechanism == "OAUTHBEARER":
            properties.update(self.oidc.librdkafka())
        elif mechanism == "AWS_MSK_IAM":
            from kafkube.core.msk import MskIamToken  # noqa: PLC0415 - its extra, when used

            mechanism = "OAUTHBEARER"  # librdkafka's, the token made by the callback
            properties["oauth_cb"] = MskIamToken(self.msk_iam)
        for key, value in (
            ("sasl.mechanism", mechanism),
            ("sasl.username", self.username),
            ("sasl.password", password),
            ("ssl.ca.location", self.ca_file),
            ("ssl.certificate.location", self.cert_file),
            ("ssl.key.location", self.key_file),
            ("ssl.key.password", self.key_password and self.key_password.get_secret_value()),
        ):
            if value is not None:
                properties[key] = str(value)
        return properties


class SchemaRegistryConfig(Section):
    """A schema registry with Confluent's API (Confluent Schema Registry, Apicurio's
    ``/apis/ccompat/v7``, Karapace, Redpanda): the producer registers its schema there and
    frames each value as every Kafka tool reads it (a zero byte, the schema id, the datum);
    the sinks look ids up there. Unset: the registry-less mode, Avro single-object encoding,
    which kafkube alone reads."""

    url: str | None = Field(
        None,
        description="The registry's URL (Apicurio: http://host:port/apis/ccompat/v7). "
        "Also SCHEMA_REGISTRY_URL. Unset: no registry.",
    )
    subject_strategy: Literal["topic", "record"] = Field(
        "topic",
        description="The subject the value schema is registered under. topic: "
        "<topic>-value (TopicNameStrategy, every tool's default); record: the record's full "
        "name (RecordNameStrategy).",
    )
    username: str | None = Field(None, description="HTTP basic auth user name.")
    password: SecretStr | None = Field(
        None, description="HTTP basic auth password; give it by environment or a secret file."
    )
    password_file: Path | None = Field(
        None, description="A file holding the password (a mounted Kubernetes Secret)."
    )
    ca_file: Path | None = Field(
        None, description="PEM CA bundle that signed the registry's HTTPS certificate."
    )

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_the_url(cls, data: Any) -> Any:  # noqa: ANN401 - pydantic's input
        """A URL's ``user:password@`` goes into username and password: the URL is shown in
        logs and errors, and must carry no secret there."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        url, user, password = split_userinfo(data["url"])
        if user is None and password is None:
            return data
        if data.get("username") or data.get("password") or data.get("password_file"):
            raise ValueError(
                "url carries a user and password, and username or password is set too: "
                "give them once, in username and password (or password_file)"
            )
        return {**data, "url": url, "username": user, "password": password}

    @model_validator(mode="after")
    def _consistent(self) -> SchemaRegistryConfig:
        has_password = self.password is not None or self.password_file is not None
        if has_password and not self.username:
            raise ValueError("a password goes with a username")
        if self.username and not has_password:
            raise ValueError("username needs password (or password_file)")
        for name in ("password_file", "ca_file"):
            _existing_file(getattr(self, name), name)
        return self

    def client_properties(self) -> dict[str, str] | None:
        """The registry client's configuration; None without a registry."""
        if not self.url:
            return None
        properties = {"url": self.url}
        password = secret_value(self.password, self.password_file)
        if self.username and password is not None:
            properties["basic.auth.user.info"] = f"{self.username}:{password}"
        if self.ca_file is not None:
            properties["ssl.ca.location"] = str(self.ca_file)
        return properties


def _topic_name(name: str) -> str:
    if not is_topic_name(name):
        raise ValueError(f"not a Kafka topic name: {name!r} (letters, digits, '.', '_', '-')")
    return name


class KafkaConfig(Section):
    """The Kafka cluster every component talks to."""

    bootstrap_servers: str | None = Field(
        None, description="Brokers, host:port[,host:port]. Also KAFKA_BOOTSTRAP_SERVERS."
    )
    topic: Annotated[str, AfterValidator(_topic_name)] = Field(
        DEFAULT_TOPIC, description="The events topic."
    )
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    schema_registry: SchemaRegistryConfig = Field(default_factory=SchemaRegistryConfig)
    properties: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Any librdkafka property, passed through (e.g. message.max.bytes).",
    )

    @model_validator(mode="after")
    def _no_owned_properties(self) -> KafkaConfig:
        for key in self.properties:
            if key == "bootstrap.servers":
                raise ValueError("properties.bootstrap.servers: set kafka.bootstrap_servers")
            if key in _SECURITY_PROPERTIES:
                raise ValueError(
                    f"properties.{key}: set kafka.security.{_SECURITY_PROPERTIES[key]} instead"
                )
        return self

    def client_properties(self) -> dict[str, Any]:
        """librdkafka properties: brokers, security, then the pass-through ones (all strings
        but an AWS_MSK_IAM login's token callback)."""
        if not self.bootstrap_servers:
            raise ConfigError("kafka.bootstrap_servers", "is required (or KAFKA_BOOTSTRAP_SERVERS)")
        properties = {"bootstrap.servers": self.bootstrap_servers, **self.security.librdkafka()}
        for key, value in self.properties.items():
            properties[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return properties


class Observability(Section):
    """Metrics, health and logs of producer and sinks."""

    listen: str = Field(
        "",
        description="host:port of /metrics, /healthz and /readyz (the image sets "
        "0.0.0.0:9464); empty: none.",
    )
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="The least severe level logged."
    )

    def address(self) -> tuple[str, int] | None:
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - [::]:9464 is IPv6

    @model_validator(mode="after")
    def _valid_listen(self) -> Observability:
        if self.listen:
            _, sep, port = self.listen.rpartition(":")
            if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(f"listen: expected host:port, got {self.listen!r}")
        return self
