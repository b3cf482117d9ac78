"""One error root for kafkube.

Every error says what failed and whether trying again can help, so a caller
decides "retry or stop" from the type, never from the message text.
"""

from __future__ import annotations


class KafkubeError(Exception):
    """Root of every error kafkube raises on purpose."""

    retriable: bool = False


class ConfigError(KafkubeError):
    """A setting is missing or wrong; the message names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ServiceError(KafkubeError):
    """A service of the local stack could not be fetched, built or started."""


class SourceError(KafkubeError):
    """The event source (the Kubernetes API or a recorded stream) failed."""

    retriable = True


class SinkError(KafkubeError):
    """A sink could not make a batch durable; trying again may help (the store may come back)."""

    retriable = True


class SinkRefusedError(SinkError):
    """The store refused the write for good (a request it will never accept): stop, loudly."""

    retriable = False


class KafkaLoginError(KafkubeError):
    """Kafka refused this client's credentials or its TLS set-up: at start, or later in a run
    (a password or certificate rotated). Retrying with the same ones cannot help."""


class KafkaUnreachableError(KafkubeError):
    """No broker answered in time: Kafka may be down or the address wrong; it may come back."""

    retriable = True


class RegistryUnreachableError(KafkubeError):
    """The schema registry did not answer (down, or the URL wrong); it may come back."""

    retriable = True


class SchemaIdNotYetKnownError(KafkubeError):
    """The registry does not know a schema id yet (a replica behind, a registry restarted):
    asked again within its grace period."""

    retriable = True


class SchemaIncompatibleError(KafkubeError):
    """The schema registry refuses this schema under the subject (its compatibility rule):
    publishing with it would break the subject's readers. Retrying cannot help."""


class RegistryRefusedError(KafkubeError):
    """The schema registry refused the request for good (credentials, rights, a bad URL)."""
