"""The S3 destination (AWS S3, MinIO, any S3 API): one object per batch, with boto3, and
the AWS Common Runtime for the objects themselves (``kafkube.consumers.s3crt``; boto3 with
``transfer_client: boto3`` or behind an HTTP proxy).

boto3's standard retry mode retries throttling (503 SlowDown), 5xx and connection
errors with exponential backoff and jitter; a store down for longer surfaces as a
retriable SinkError, and the runner pauses and keeps retrying. Objects above the
multipart threshold go up in parts, and a failed multipart upload is aborted
(boto3's transfer manager does both).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.httpsession import get_cert_path
from botocore.utils import get_environ_proxies

from kafkube.consumers.destinations import MissingObjectError
from kafkube.consumers.objectstore import ObjectStore
from kafkube.consumers.s3crt import CrtPut, CrtPutError
from kafkube.consumers.settings import S3SinkConfig
from kafkube.core.errors import ConfigError, SinkError, SinkRefusedError

log = logging.getLogger(__name__)

_MISSING = {"404", "NoSuchBucket", "NotFound"}
_REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_RETRIABLE_4XX = {408, 429}  # request timeout, too many requests
# The extra arguments of a PutObject, as the headers of its request.
_HEADERS = {
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "StorageClass": "x-amz-storage-class",
}


def store_error(where: str, err: Exception) -> SinkError:
    """What a failed S3 request means for the sink: a request S3 refuses for good (a 4xx other
    than 408 and 429: no rights, a bad key or encryption setting) stops it; the rest may pass
    (5xx and SlowDown after boto3's own retries, connection refused, timeouts), and the
    runner retries with the partitions paused."""
    status = 0
    if isinstance(err, ClientError):
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    elif isinstance(err, CrtPutError):  # with S3's status when it answered
        status = err.status
    if 400 <= status < 500 and status not in _RETRIABLE_4XX:
        return SinkRefusedError(f"{where}: {err}")
    return SinkError(f"{where}: {err}")


class S3Destination(ObjectStore):
    def __init__(self, config: S3SinkConfig) -> None:
        super().__init__(config)
        if config.kms_key_id and config.sse != "aws:kms":
            raise ConfigError("sinks.s3.kms_key_id", "goes with --sse aws:kms")
        endpoint_url, region = config.endpoint_url, config.region
        core = botocore.session.get_session()
        session = boto3.session.Session(botocore_session=core)
        self._client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                retries={"mode": "standard", "max_attempts": 6},
                connect_timeout=5,
                read_timeout=60,
            ),
        )
        # For readiness: one try, a few seconds, so a probe answers before Kubernetes gives up.
        self._probe: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=3),
        )
        self._transfer = TransferConfig(multipart_threshold=config.multipart_threshold_mb << 20)
        self._extra: dict[str, str] = {}
        if config.sse:
            self._extra["ServerSideEncryption"] = config.sse
        if config.kms_key_id:
            self._extra["SSEKMSKeyId"] = config.kms_key_id
        if config.storage_class:
            self._extra["StorageClass"] = config.storage_class
        self._crt = self._crt_put(core, config) if config.transfer_client == "crt" else None

    def _crt_put(self, core: botocore.session.Session, config: S3SinkConfig) -> CrtPut | None:
        """The CRT's PutObject to the URL boto3 resolves for this bucket (endpoint, region,
        addressing style), as boto3's identity; None behind an HTTP proxy (the CRT's S3
        client takes none), where boto3 writes."""
        unsigned: Any = core.create_client(
            "s3", endpoint_url=config.endpoint_url, region_name=config.region,
            config=Config(signature_version=UNSIGNED),
        )  # fmt: skip
        url = unsigned.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": "k"}
        )
        if get_environ_proxies(url):
            log.info("S3 through an HTTP proxy: objects go up with boto3")
            return None
        return CrtPut(
            url,
            self._client.meta.region_name,
            core.get_credentials(),
            # boto3's trust: AWS_CA_BUNDLE or the config file's, else its own default bundle
            # (certifi's), not the system's, which a slim image may lack.
            ca_bundle=get_cert_path(core.get_config_variable("ca_bundle") or True),
            multipart_threshold=self._transfer.multipart_threshold,
        )

    def check(self) -> None:
        """The bucket exists and this identity can write to it, or the sink does not start."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            probe = self.key(".kafkube-write-check")
            # The probe carries the same encryption and storage class as every object will.
            self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"", **self._extra)
            self._check_crt(probe)
            self._client.delete_object(Bucket=self.bucket, Key=probe)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise ConfigError(
                    "sinks.s3.bucket", f"bucket {self.bucket!r} does not exist"
                ) from err
            if code in _REFUSED:
                raise ConfigError(
                    "sinks.s3.credentials",
                    f"the S3 credentials may not write to bucket {self.bucket!r} ({code})",
                ) from err
            failure = store_error(f"bucket {self.bucket!r}", err)
            if failure.retriable:  # 5xx, SlowDown: the store may answer in a while
                raise failure from err
            raise ConfigError(
                "sinks.s3.bucket", f"cannot write to bucket {self.bucket!r} as configured: {err}"
            ) from err
        except BotoCoreError as err:  # no answer at all: waited out, readiness says so
            raise SinkError(f"cannot reach S3 ({err})") from err

    def _check_crt(self, probe: str) -> None:
        """The probe again through the CRT, which has its own TLS and connections: what it
        cannot do where boto3 could is said at start, not at the first batch."""
        if self._crt is None:
            return
        try:
            self._crt.put(probe, b"", self._headers({}), timeout=15)
        except CrtPutError as err:
            if not store_error(f"bucket {self.bucket!r}", err).retriable:
                raise ConfigError(
                    "sinks.s3.transfer_client",
                    f"S3 refuses through the CRT what it takes from boto3 ({err}); "
                    "transfer_client: boto3 writes with boto3",
                ) from err
            raise SinkError(
                f"S3 does not answer through the CRT, where it answers boto3 ({err}): a TLS "
                "setting the CRT does not take? transfer_client: boto3 writes with boto3"
            ) from err

    def ready(self) -> str | None:
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            return f"S3 bucket {self.bucket!r} does not answer: {err}"
        return None

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        if self._crt is not None:
            try:
                self._crt.put(self.key(name), data, self._headers(metadata))
            except CrtPutError as err:
                raise store_error(self.url(name), err) from err
            return
        try:
            if len(data) < self._transfer.multipart_threshold:
                # One request: the transfer manager costs threads of its own for every object
                # (a third of the sink's CPU on objects of a few hundred kB).
                self._client.put_object(
                    Bucket=self.bucket, Key=self.key(name), Body=data, Metadata=metadata,
                    **self._extra,
                )  # fmt: skip
                return
            self._client.upload_fileobj(
                io.BytesIO(data),
                self.bucket,
                self.key(name),
                ExtraArgs={"Metadata": metadata, **self._extra},
                Config=self._transfer,
            )
        except (ClientError, BotoCoreError) as err:
            raise store_error(self.url(name), err) from err

    def _headers(self, metadata: dict[str, str]) -> list[tuple[str, str]]:
        """The request headers boto3 makes of the metadata and the extra arguments."""
        return [
            *((f"x-amz-meta-{key}", value) for key, value in metadata.items()),
            *((_HEADERS[key], value) for key, value in self._extra.items()),
        ]

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.folder(under)):
                self.list_requests += 1
                for item in page.get("Contents", []):
                    yield self.name_of(str(item["Key"])), item["LastModified"].timestamp()
        except (ClientError, BotoCoreError) as err:
            raise SinkError(f"listing {self.url(under)}/: {err}") from err

    def names_from(self, prefix: str, start: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=self.key(prefix), StartAfter=self.key(start)
        )
        try:
            for page in pages:
                self.list_requests += 1
                for item in page.get("Contents", []):
                    yield self.name_of(str(item["Key"]))
        except (ClientError, BotoCoreError) as err:
            raise SinkError(f"listing {self.url(prefix)}: {err}") from err

    def get(self, name: str) -> bytes:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
            return bytes(body.read())
        except self._client.exceptions.NoSuchKey as err:
            raise MissingObjectError(f"no {self.url(name)}") from err
        except (ClientError, BotoCoreError) as err:
            raise SinkError(f"reading {self.url(name)}: {err}") from err


def open_destination(config: S3SinkConfig) -> S3Destination:
    """The destination of ``sinks.s3``."""
    return S3Destination(config)
