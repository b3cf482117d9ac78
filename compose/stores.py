"""Clients for the stack's object stores (MinIO, the GCS emulator), and their buckets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kafkube.compose.endpoints import Endpoints


def s3_client(endpoints: Endpoints) -> Any:  # noqa: ANN401 - boto3 clients are built at run time
    import boto3  # noqa: PLC0415 - only where a store is used

    return boto3.client(
        "s3",
        endpoint_url=endpoints.s3_endpoint,
        aws_access_key_id=endpoints.s3_access_key,
        aws_secret_access_key=endpoints.s3_secret_key,
        region_name=endpoints.s3_region,
    )


def gcs_client(endpoints: Endpoints) -> Any:  # noqa: ANN401
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
    from google.cloud import storage  # noqa: PLC0415

    return storage.Client(
        project="kafkube",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": endpoints.gcs_endpoint},
    )


def ensure_s3_bucket(
    endpoint: str, access_key: str, secret_key: str, bucket: str, region: str = "us-east-1"
) -> None:
    """Create the bucket in an S3 API (the stack's MinIO) unless it exists."""
    import boto3  # noqa: PLC0415

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
    )
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)


def ensure_bucket(endpoints: Endpoints, scheme: str, bucket: str) -> None:
    """Create the bucket in the stack's store for ``<scheme>://`` unless it exists."""
    if scheme == "s3":
        ensure_s3_bucket(
            endpoints.s3_endpoint,
            endpoints.s3_access_key,
            endpoints.s3_secret_key,
            bucket,
            endpoints.s3_region,
        )
    elif scheme == "gs":
        gcs = gcs_client(endpoints)
        if gcs.lookup_bucket(bucket) is None:
            gcs.create_bucket(bucket)
    else:
        endpoints.store(scheme)  # names the schemes the stack serves


def ensure_buckets(endpoints: Endpoints, *, s3_bucket: str, gcs_bucket: str) -> None:
    """Create the buckets in MinIO and the GCS emulator unless they exist."""
    ensure_bucket(endpoints, "s3", s3_bucket)
    ensure_bucket(endpoints, "gs", gcs_bucket)


@dataclass(frozen=True)
class StackStores:
    """The stack's stores as the sinks' local wiring asks for them (by scheme)."""

    endpoints: Endpoints

    def endpoint(self, scheme: str) -> str:
        return self.endpoints.store(scheme)

    def make_bucket(self, scheme: str, bucket: str) -> None:
        ensure_bucket(self.endpoints, scheme, bucket)
