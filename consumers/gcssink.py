"""The GCS destination: one object per batch, with google-cloud-storage.

Uploads are resumable above ``resumable_above`` bytes and retried on 429 and 5xx
(the client's default retry, made safe to repeat by a generation precondition).
The first write of a name is "only if absent" (``if_generation_match=0``); when
the object is already there, as after a crash between write and commit or in a
replay, an identical object (same CRC32C) is left as it is, and a different one
is replaced only at the generation just read, so a second writer cannot slip in
between. ``endpoint`` points the client at an emulator.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import google_crc32c
from google.api_core import exceptions as api_errors
from google.api_core.exceptions import GoogleAPIError
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from kafkube.consumers.destinations import MissingObjectError
from kafkube.consumers.naming import object_prefix
from kafkube.consumers.settings import GCSSinkConfig
from kafkube.core.errors import ConfigError, SinkError, SinkRefusedError

# A timeout, a conflict or a moved generation (another writer), too many requests.
_RETRIABLE_4XX = {408, 409, 412, 429}


def store_error(where: str, err: Exception) -> SinkError:
    """What a failed GCS request means for the sink: a request GCS refuses for good (a 4xx
    other than 408 and 429: no rights, a bad name) stops it; the rest may pass (5xx, 429, a
    broken connection, a timeout), and the runner retries with the partitions paused."""
    code = getattr(err, "code", None) if isinstance(err, GoogleAPIError) else None
    if isinstance(code, int) and 400 <= code < 500 and code not in _RETRIABLE_4XX:
        return SinkRefusedError(f"{where}: {err}")
    return SinkError(f"{where}: {err}")


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


class GCSDestination:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        project: str | None = None,
        endpoint: str | None = None,
        resumable_above: int = 8 << 20,
    ) -> None:
        if not bucket:
            raise ConfigError("sinks.gcs.bucket", "is required")
        self.bucket_name, self.prefix = bucket, object_prefix(prefix, field="sinks.gcs.prefix")
        self.description = f"gs://{bucket}/{self.prefix}"
        self.list_requests = 0
        self.resumable_above = resumable_above
        try:
            if endpoint:  # an emulator takes no credentials
                self._client: Any = storage.Client(
                    project=project or "kafkube",
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": endpoint},
                )
            else:
                self._client = storage.Client(project=project)
        except GoogleAuthError as err:
            raise ConfigError(
                "sinks.gcs.credentials", f"no usable Google credentials: {err}"
            ) from err
        self._bucket: Any = self._client.bucket(bucket)

    def check(self) -> None:
        try:
            if self._client.lookup_bucket(self.bucket_name) is None:
                raise ConfigError("sinks.gcs.bucket", f"bucket {self.bucket_name!r} does not exist")
            probe = self._bucket.blob(f"{self.prefix}.kafkube-write-check")
            probe.upload_from_string(b"")
            probe.delete()
        except api_errors.Forbidden as err:
            raise ConfigError(
                "sinks.gcs.credentials", f"the credentials may not write to {self.bucket_name!r}"
            ) from err
        except GoogleAuthError as err:
            raise ConfigError(
                "sinks.gcs.credentials", f"cannot use bucket {self.bucket_name!r}: {err}"
            ) from err
        except (GoogleAPIError, OSError) as err:
            failure = store_error(f"bucket {self.bucket_name!r}", err)
            if failure.retriable:  # no answer, 5xx, 429: the store may answer in a while
                raise failure from err
            raise ConfigError(
                "sinks.gcs.bucket", f"cannot use bucket {self.bucket_name!r}: {err}"
            ) from err

    def ready(self) -> str | None:
        try:
            self._client.get_bucket(self.bucket_name, timeout=3, retry=None)
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            return f"GCS bucket {self.bucket_name!r} does not answer: {err}"
        return None

    def _upload(self, name: str, data: bytes, metadata: dict[str, str], generation: int) -> None:
        blob = self._bucket.blob(
            self.prefix + name,
            chunk_size=self.resumable_above if len(data) > self.resumable_above else None,
        )
        blob.metadata = metadata
        blob.upload_from_string(
            data,
            content_type="application/octet-stream",
            if_generation_match=generation,
            retry=DEFAULT_RETRY,
        )

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        key = self.prefix + name
        try:
            try:
                self._upload(name, data, metadata, generation=0)
            except api_errors.PreconditionFailed:
                existing = self._bucket.get_blob(key)
                if existing is not None and existing.crc32c == _crc32c(data):
                    return  # the same bytes are already there: a rewrite of a durable batch
                self._upload(
                    name, data, metadata, generation=existing.generation if existing else 0
                )
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            raise store_error(f"gs://{self.bucket_name}/{key}", err) from err

    def names(self, under: str) -> Iterator[str]:
        return (name for name, _ in self.stored(under))

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        try:
            folder = f"{self.prefix}{under}/" if under else self.prefix
            for page in self._client.list_blobs(self.bucket_name, prefix=folder).pages:
                self.list_requests += 1
                for blob in page:
                    yield str(blob.name)[len(self.prefix) :], blob.updated.timestamp()
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            raise SinkError(f"listing {self.description}{under}/: {err}") from err

    def get(self, name: str) -> bytes:
        try:
            return bytes(self._bucket.blob(self.prefix + name).download_as_bytes())
        except api_errors.NotFound as err:
            where = f"gs://{self.bucket_name}/{self.prefix}{name}"
            raise MissingObjectError(f"no {where}") from err
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            raise SinkError(f"reading gs://{self.bucket_name}/{self.prefix}{name}: {err}") from err


def open_destination(config: GCSSinkConfig) -> GCSDestination:
    """The destination of ``sinks.gcs``."""
    return GCSDestination(
        bucket=config.required_place(),
        prefix=config.prefix,
        project=config.project,
        endpoint=config.endpoint,
    )
