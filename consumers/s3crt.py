"""Objects up to S3 through the AWS Common Runtime (awscrt, the native client boto3 and the
AWS CLI use for their own transfers).

boto3 spends about 4 ms of Python a PutObject (its request pipeline, whatever the size),
and the sink's loop waits on the interpreter for all of it: S3 ran at two thirds of the file
sink. The CRT builds, signs, sends and retries a request in its own threads, outside the
interpreter: about 0.1 ms of it. Everything else (the bucket check, listing, reading back,
credentials, the endpoint and addressing style) stays with boto3, so both reach the same
URL as the same identity.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import quote, urlsplit

from awscrt.auth import AwsCredentials, AwsCredentialsProvider
from awscrt.exceptions import AwsCrtError
from awscrt.http import HttpHeaders, HttpRequest
from awscrt.io import (
    ClientBootstrap,
    ClientTlsContext,
    DefaultHostResolver,
    EventLoopGroup,
    TlsContextOptions,
)
from awscrt.s3 import (
    S3ChecksumAlgorithm,
    S3ChecksumConfig,
    S3ChecksumLocation,
    S3Client,
    S3RequestTlsMode,
    S3RequestType,
    S3ResponseError,
    S3RetryConfig,
    create_default_s3_signing_config,
)

from kafkube.core.errors import SinkError

# A request that has not ended in this long (plus a second a MiB) is given up and retried
# by the runner, as boto3's read timeout would: the CRT has no timeout of its own.
_TIMEOUT_S = 60.0


class CrtPutError(SinkError):
    """A PutObject the CRT could not do: ``status`` is S3's HTTP status, 0 without one."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class CrtPut:
    """PutObject to one bucket, the URL and the credentials as boto3 resolves them."""

    def __init__(
        self,
        url: str,
        region: str,
        credentials: Any,  # noqa: ANN401 - botocore's (refreshable) credentials
        *,
        ca_bundle: str | None,
        multipart_threshold: int,
    ) -> None:
        place = urlsplit(url)  # an object "k"'s URL: https://host/bucket/k or https://bucket.host/k
        self._host, self._path = place.netloc, place.path.removesuffix("k")
        self._botocore_credentials = credentials
        loop = EventLoopGroup(1)
        bootstrap = ClientBootstrap(loop, DefaultHostResolver(loop))
        provider = AwsCredentialsProvider.new_delegate(self._credentials)
        tls, tls_options = S3RequestTlsMode.DISABLED, None
        if place.scheme == "https":
            options = TlsContextOptions()
            if ca_bundle:
                options.override_default_trust_store_from_path(ca_filepath=ca_bundle)
            tls, tls_options = (
                S3RequestTlsMode.ENABLED,
                ClientTlsContext(options).new_connection_options(),
            )
        self._client = S3Client(
            bootstrap=bootstrap,
            region=region,
            tls_mode=tls,
            tls_connection_options=tls_options,
            signing_config=create_default_s3_signing_config(
                region=region, credential_provider=provider
            ),
            part_size=multipart_threshold,
            multipart_upload_threshold=multipart_threshold,
            connect_timeout_ms=5000,
            # A few quick tries, as boto3's: a store away longer is the runner's to wait out
            # (paused, said once); the CRT's own five, up to 20 s apart, held a write a minute.
            retry_config=S3RetryConfig(
                max_retries=3, backoff_scale_factor_ms=200, max_backoff_secs=2
            ),
        )
        # The body's CRC32 in a header, as boto3 sends it: S3 refuses bytes changed on the way.
        self._checksum = S3ChecksumConfig(
            algorithm=S3ChecksumAlgorithm.CRC32, location=S3ChecksumLocation.HEADER
        )

    def _credentials(self) -> AwsCredentials:
        """Asked by the CRT before each request: botocore's, refreshed as botocore does."""
        frozen = self._botocore_credentials.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    def put(
        self, key: str, data: bytes, headers: list[tuple[str, str]], timeout: float | None = None
    ) -> None:
        """``data`` as the object ``key``, with ``headers`` (metadata, encryption, class);
        given up after ``timeout`` seconds (else a minute and a second a MiB)."""
        request = HttpRequest(
            "PUT",
            self._path + quote(key, safe="/~"),
            HttpHeaders([("Host", self._host), ("Content-Length", str(len(data))), *headers]),
            io.BytesIO(data),
        )
        done = self._client.make_request(
            type=S3RequestType.PUT_OBJECT, request=request, checksum_config=self._checksum
        )
        try:
            done.finished_future.result(timeout or _TIMEOUT_S + len(data) / (1 << 20))
        except S3ResponseError as err:
            raise CrtPutError(_said(err), err.status_code) from err
        except AwsCrtError as err:
            raise CrtPutError(f"{err.name}: {err.message}") from err
        except TimeoutError as err:
            done.cancel()
            raise CrtPutError("no answer in time") from err


def _said(err: S3ResponseError) -> str:
    """S3's error as boto3 words it: its code and message from the XML body, and the status."""
    body = (err.body or b"").decode("utf-8", "replace")
    code = _element(body, "Code") or err.name
    message = _element(body, "Message") or err.message
    return f"{code} ({err.status_code}): {message}"


def _element(xml: str, tag: str) -> str:
    start = xml.find(f"<{tag}>")
    end = xml.find(f"</{tag}>", start)
    return xml[start + len(tag) + 2 : end] if start >= 0 and end > start else ""
