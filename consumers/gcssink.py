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
from kafkube.consumers.naming import INDEX_FOLDER
from kafkube.consumers.objectstore import ObjectStore
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


def _environment_once(session: Any, url: str) -> None:  # noqa: ANN401 - an AuthorizedSession
    """What requests takes from the environment (proxies, a CA bundle) read once, at start.

    requests reads it at every request, going through every variable of the process twice
    for the proxies: a fifth of an upload's CPU with the few dozen variables of a test run,
    more in a pod that a namespace's services give dozens each. The environment does not
    change under a running sink."""
    settings = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies, session.verify = settings["proxies"], settings["verify"]
    session.trust_env = False


class GCSDestination(ObjectStore):
    # Uploads above this go up resumable, in chunks of this size.
    resumable_above = 8 << 20

    def __init__(self, config: GCSSinkConfig) -> None:
        super().__init__(config)
        project, endpoint = config.project, config.endpoint
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
        self._bucket: Any = self._client.bucket(self.bucket)
        _environment_once(self._client._http, endpoint or "https://storage.googleapis.com")  # noqa: SLF001 - the client's requests session

    def check(self) -> None:
        try:
            if self._client.lookup_bucket(self.bucket) is None:
                raise ConfigError("sinks.gcs.bucket", f"bucket {self.bucket!r} does not exist")
            probe = self._bucket.blob(self.key(".kafkube-write-check"))
            probe.upload_from_string(b"")
            probe.delete()
        except api_errors.Forbidden as err:
            raise ConfigError(
                "sinks.gcs.credentials", f"the credentials may not write to {self.bucket!r}"
            ) from err
        except GoogleAuthError as err:
            raise ConfigError(
                "sinks.gcs.credentials", f"cannot use bucket {self.bucket!r}: {err}"
            ) from err
        except (GoogleAPIError, OSError) as err:
            failure = store_error(f"bucket {self.bucket!r}", err)
            if failure.retriable:  # no answer, 5xx, 429: the store may answer in a while
                raise failure from err
            raise ConfigError(
                "sinks.gcs.bucket", f"cannot use bucket {self.bucket!r}: {err}"
            ) from err

    def ready(self) -> str | None:
        try:
            self._client.get_bucket(self.bucket, timeout=3, retry=None)
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            return f"GCS bucket {self.bucket!r} does not answer: {err}"
        return None

    def _upload(
        self, name: str, data: bytes, metadata: dict[str, str], generation: int | None
    ) -> None:
        blob = self._bucket.blob(
            self.key(name),
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
        key = self.key(name)
        try:
            if name.startswith(INDEX_FOLDER):
                # A partition's index is replaced at every batch by the partition's one owner:
                # "only if absent" would fail every time, and cost a read and a second write.
                self._upload(name, data, metadata, generation=None)
                return
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
            raise store_error(self.url(name), err) from err

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        try:
            for page in self._client.list_blobs(self.bucket, prefix=self.folder(under)).pages:
                self.list_requests += 1
                for blob in page:
                    yield self.name_of(str(blob.name)), blob.updated.timestamp()
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            raise SinkError(f"listing {self.url(under)}/: {err}") from err

    def names_from(self, prefix: str, start: str) -> Iterator[str]:
        listed = self._client.list_blobs(
            self.bucket, prefix=self.key(prefix), start_offset=self.key(start)
        )
        try:
            for page in listed.pages:
                self.list_requests += 1
                for blob in page:
                    yield self.name_of(str(blob.name))
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            raise SinkError(f"listing {self.url(prefix)}: {err}") from err

    def get(self, name: str) -> bytes:
        try:
            return bytes(self._bucket.blob(self.key(name)).download_as_bytes())
        except api_errors.NotFound as err:
            raise MissingObjectError(f"no {self.url(name)}") from err
        except (GoogleAPIError, GoogleAuthError, OSError) as err:
            raise SinkError(f"reading {self.url(name)}: {err}") from err


def open_destination(config: GCSSinkConfig) -> GCSDestination:
    """The destination of ``sinks.gcs``."""
    return GCSDestination(config)
