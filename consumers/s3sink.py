"""The S3 destination (AWS S3, MinIO, any S3 API): one object per batch, with boto3.

boto3's standard retry mode retries throttling (503 SlowDown), 5xx and connection
errors with exponential backoff and jitter; a store down for longer surfaces as a
retriable SinkError, and the runner pauses and keeps retrying. Objects above the
multipart threshold go up in parts, and a failed multipart upload is aborted
(boto3's transfer manager does both).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kafkube.consumers.destinations import MissingObjectError
from kafkube.consumers.naming import object_prefix
from kafkube.consumers.settings import S3SinkConfig
from kafkube.core.errors import ConfigError, SinkError, SinkRefusedError

_MISSING = {"404", "NoSuchBucket", "NotFound"}
_REFUSED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_RETRIABLE_4XX = {408, 429}  # request timeout, too many requests


def store_error(where: str, err: Exception) -> SinkError:
    """What a failed S3 request means for the sink: a request S3 refuses for good (a 4xx other
    than 408 and 429: no rights, a bad key or encryption setting) stops it; the rest may pass
    (5xx and SlowDown after boto3's own retries, connection refused, timeouts), and the
    runner retries with the partitions paused."""
    if isinstance(err, ClientError):
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if 400 <= status < 500 and status not in _RETRIABLE_4XX:
            return SinkRefusedError(f"{where}: {err}")
    return SinkError(f"{where}: {err}")


class S3Destination:
    def __init__(  # noqa: PLR0913 - the store's settings, all keyword-only
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        server_side_encryption: str | None = None,
        kms_key_id: str | None = None,
        storage_class: str | None = None,
        multipart_threshold: int | None = None,  # boto3's own when not given
    ) -> None:
        if not bucket:
            raise ConfigError("sinks.s3.bucket", "is required")
        if server_side_encryption not in {None, "AES256", "aws:kms"}:
            raise ConfigError("sinks.s3.sse", "must be AES256 or aws:kms")
        if kms_key_id and server_side_encryption != "aws:kms":
            raise ConfigError("sinks.s3.kms_key_id", "goes with --sse aws:kms")
        self.bucket, self.prefix = bucket, object_prefix(prefix, field="sinks.s3.prefix")
        self.description = f"s3://{bucket}/{self.prefix}"
        self.list_requests = 0
        self._client: Any = boto3.client(
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
        self._probe: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=3),
        )
        self._transfer = (
            TransferConfig(multipart_threshold=multipart_threshold)
            if multipart_threshold is not None
            else TransferConfig()
        )
        self._extra: dict[str, str] = {}
        if server_side_encryption:
            self._extra["ServerSideEncryption"] = server_side_encryption
        if kms_key_id:
            self._extra["SSEKMSKeyId"] = kms_key_id
        if storage_class:
            self._extra["StorageClass"] = storage_class

    def check(self) -> None:
        """The bucket exists and this identity can write to it, or the sink does not start."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            probe = f"{self.prefix}.kafkube-write-check"
            # The probe carries the same encryption and storage class as every object will.
            self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"", **self._extra)
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

    def ready(self) -> str | None:
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            return f"S3 bucket {self.bucket!r} does not answer: {err}"
        return None

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        try:
            self._client.upload_fileobj(
                io.BytesIO(data),
                self.bucket,
                self.prefix + name,
                ExtraArgs={"Metadata": metadata, **self._extra},
                Config=self._transfer,
            )
        except (ClientError, BotoCoreError) as err:
            raise store_error(f"s3://{self.bucket}/{self.prefix}{name}", err) from err

    def names(self, under: str) -> Iterator[str]:
        return (name for name, _ in self.stored(under))

    def stored(self, under: str) -> Iterator[tuple[str, float]]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            folder = f"{self.prefix}{under}/" if under else self.prefix
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                self.list_requests += 1
                for item in page.get("Contents", []):
                    yield str(item["Key"])[len(self.prefix) :], item["LastModified"].timestamp()
        except (ClientError, BotoCoreError) as err:
            raise SinkError(f"listing {self.description}{under}/: {err}") from err

    def get(self, name: str) -> bytes:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
            return bytes(body.read())
        except self._client.exceptions.NoSuchKey as err:
            raise MissingObjectError(f"no s3://{self.bucket}/{self.prefix}{name}") from err
        except (ClientError, BotoCoreError) as err:
            raise SinkError(f"reading s3://{self.bucket}/{self.prefix}{name}: {err}") from err


def open_destination(config: S3SinkConfig) -> S3Destination:
    """The destination of ``sinks.s3``."""
    return S3Destination(
        bucket=config.required_place(),
        prefix=config.prefix,
        endpoint_url=config.endpoint_url,
        region=config.region,
        server_side_encryption=config.sse,
        kms_key_id=config.kms_key_id,
        storage_class=config.storage_class,
        multipart_threshold=config.multipart_threshold_mb << 20,
    )
