"""A schema registry (Confluent's API: Confluent Schema Registry, Apicurio's ccompat API,
Karapace, Redpanda's), through ``confluent_kafka``'s own client.

The producer registers its writer schema once at start; a sink looks a schema id up the
first time it meets it. Both keep what they learnt, so a registry that goes down later
changes nothing for ids already seen; a registry down at start is a clear error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Self

import httpx2
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from kafkube.core.errors import (
    RegistryRefusedError,
    RegistryUnreachableError,
    SchemaIdNotYetKnownError,
    SchemaIncompatibleError,
)
from kafkube.core.redaction import shown_url

log = logging.getLogger(__name__)

_NOT_FOUND = 404
_CONFLICT = 409  # the registry's "incompatible with the subject's versions"
# Subjects a value schema is registered under: Confluent's TopicNameStrategy, the default
# of every Kafka tool, or RecordNameStrategy (one subject for the record, whatever the topic).
SUBJECT_STRATEGIES = ("topic", "record")


def subject_name(strategy: str, topic: str, record_name: str) -> str:
    if strategy == "topic":
        return f"{topic}-value"
    if strategy == "record":
        return record_name
    raise ValueError(f"unknown subject strategy {strategy!r}: {', '.join(SUBJECT_STRATEGIES)}")


class SchemaRegistry:
    """One registry, its answers kept: ids by schema, schemas by id."""

    def __init__(
        self,
        properties: Mapping[str, str],
        *,
        unknown_id_grace: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``unknown_id_grace``: how long an id the registry answers 404 for is asked again
        (``SchemaIdNotYetKnownError``, retriable) before it is taken as unknown (None)."""
        self.url = shown_url(properties["url"])  # for messages: never a user or password
        # A registry frozen or its network cut must not hold a request for ever: it is retried.
        self._client = SchemaRegistryClient({"timeout": 10, **properties})
        self._schemas: dict[int, str] = {}
        self.unknown_id_grace = unknown_id_grace
        self._clock = clock
        self._unknown_since: dict[int, float] = {}  # ids answered 404, since when

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client's connections (what it learnt stays usable)."""
        self._client.close()

    def _failed(self, doing: str, err: Exception) -> Exception:
        if isinstance(err, SchemaRegistryError):
            return RegistryRefusedError(
                f"the schema registry at {self.url} refused {doing}: {err.error_message} "
                f"(HTTP {err.http_status_code}); check kafka.schema_registry"
            )
        return RegistryUnreachableError(
            f"the schema registry at {self.url} does not answer ({doing}): {err}; "
            "check kafka.schema_registry.url"
        )

    def check(self) -> None:
        """Fail now, saying what to fix, when the registry does not answer or refuses us."""
        try:
            self._client.get_subjects()
        except (SchemaRegistryError, httpx2.HTTPError, OSError) as err:
            raise self._failed("listing subjects", err) from err

    def register(self, subject: str, schema_json: str) -> int:
        """The schema's id under ``subject``: the one it has, else a new version, asked first
        whether it is compatible with the subject's versions (SchemaIncompatibleError with
        the registry's verdict if not)."""
        schema = Schema(schema_json, "AVRO")
        try:
            try:
                found = self._client.lookup_schema(subject, schema).schema_id
                if found is not None:
                    return int(found)
            except SchemaRegistryError as err:
                if err.http_status_code != _NOT_FOUND:
                    raise
            if not self._client.test_compatibility(subject, schema):
                raise SchemaIncompatibleError(
                    f"the schema registry at {self.url} finds this schema incompatible with "
                    f"subject {subject}: {self._verdict(subject, schema)}"
                )
            schema_id = int(self._client.register_schema(subject, schema))
        except SchemaRegistryError as err:
            if err.http_status_code == _CONFLICT:
                raise SchemaIncompatibleError(
                    f"the schema registry at {self.url} refuses this schema under subject "
                    f"{subject}: {err.error_message}"
                ) from err
            raise self._failed(f"registering under {subject}", err) from err
        except (httpx2.HTTPError, OSError) as err:
            raise self._failed(f"registering under {subject}", err) from err
        log.info("schema registered under %s at %s: id %d", subject, self.url, schema_id)
        return schema_id

    def _verdict(self, subject: str, schema: Schema) -> str:
        """Why the registry refuses: its own words, from the registration it refuses
        (test_compatibility answers only yes or no)."""
        try:
            self._client.register_schema(subject, schema)
        except SchemaRegistryError as err:
            return str(err.error_message)
        return "it said incompatible, then accepted the schema"  # pragma: no cover

    def schema(self, schema_id: int) -> str | None:
        """The schema registered under ``schema_id`` (its JSON), kept once found; None if the
        registry has none for longer than the grace (asked again each time after that: a
        registry behind may catch up)."""
        known = self._schemas.get(schema_id)
        if known is not None:
            return known
        try:
            found = str(self._client.get_schema(schema_id).schema_str)
        except SchemaRegistryError as err:
            if err.http_status_code != _NOT_FOUND:
                raise self._failed(f"schema id {schema_id}", err) from err
            since = self._unknown_since.setdefault(schema_id, self._clock())
            if self._clock() - since < self.unknown_id_grace:
                raise SchemaIdNotYetKnownError(
                    f"the schema registry at {self.url} does not know schema id {schema_id} "
                    f"(yet: asked again for {self.unknown_id_grace:.0f} s)"
                ) from err
            return None
        except (httpx2.HTTPError, OSError) as err:
            raise self._failed(f"schema id {schema_id}", err) from err
        self._unknown_since.pop(schema_id, None)
        self._schemas[schema_id] = found
        return found
