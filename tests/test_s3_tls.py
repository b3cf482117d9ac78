"""S3 over TLS, as on AWS: a MinIO serving HTTPS with a certificate of a test CA, reached
through both transfer clients (the CRT's TLS and boto3's), the CA given as AWS_CA_BUNDLE as
a user gives it (and the CRT, with none given, trusts what boto3 trusts, not the system's
store). A store whose certificate the CA did not sign is refused at start, never written to.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from kafkube.compose import fetch
from kafkube.compose.endpoints import Endpoints
from kafkube.compose.stack import Stack, free_port
from kafkube.consumers.destinations import open_destination
from kafkube.consumers.settings import S3SinkConfig
from kafkube.core.errors import SinkError
from kafkube.core.waiting import Deadline
from tests.conftest import unique
from tests.secured_kafka import make_certificates
from tests.sinking import s3_env

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def tls_minio(
    native_stack: Stack, endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A second MinIO, serving HTTPS on a port of its own; its URL and the CA that signed it."""
    folder = tmp_path_factory.mktemp("tls-minio")
    made = make_certificates(folder / "pki")
    certs = folder / "certs"
    certs.mkdir()
    shutil.copy(made.server_cert, certs / "public.crt")
    shutil.copy(made.server_key, certs / "private.key")
    port = free_port("127.0.0.1")
    server = subprocess.Popen(
        [str(fetch.minio_binary(native_stack.settings)), "server", str(folder / "data"),
         "--address", f"127.0.0.1:{port}", "--certs-dir", str(certs), "--quiet"],
        env={"MINIO_ROOT_USER": endpoints.s3_access_key,
             "MINIO_ROOT_PASSWORD": endpoints.s3_secret_key, "MINIO_BROWSER": "off",
             "MINIO_UPDATE": "off", "HOME": str(folder)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    client = boto3.client(
        "s3", endpoint_url=url, region_name=endpoints.s3_region, verify=str(made.ca),
        aws_access_key_id=endpoints.s3_access_key, aws_secret_access_key=endpoints.s3_secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
    )  # fmt: skip
    deadline = Deadline(60)
    while True:
        try:
            client.create_bucket(Bucket="tls")
            break
        except Exception:
            if deadline.passed() or server.poll() is not None:
                raise
    try:
        yield url, made.ca
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("transfer", ["crt", "boto3"])
def test_objects_go_up_over_tls_to_a_store_the_ca_bundle_vouches_for(
    tls_minio: tuple[str, Path], endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch,
    transfer: str,
) -> None:  # fmt: skip
    url, ca = tls_minio
    for name, value in {**s3_env(endpoints), "AWS_CA_BUNDLE": str(ca)}.items():
        monkeypatch.setenv(name, value)
    config = S3SinkConfig(
        bucket="tls", endpoint_url=url, prefix=unique("p"), transfer_client=transfer
    )
    destination = open_destination(config)
    destination.check()

    destination.put("t/a.avro", b"over tls", {"kafkube-topic": "t"})

    assert destination.get("t/a.avro") == b"over tls"
    assert list(destination.names("t")) == ["t/a.avro"]


@pytest.mark.parametrize("transfer", ["crt", "boto3"])
def test_a_store_whose_certificate_the_bundle_does_not_vouch_for_is_refused(
    tls_minio: tuple[str, Path], endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path, transfer: str,
) -> None:  # fmt: skip
    url, _ = tls_minio
    other = make_certificates(tmp_path / "other")  # another CA, which signed nothing of it
    for name, value in {**s3_env(endpoints), "AWS_CA_BUNDLE": str(other.ca)}.items():
        monkeypatch.setenv(name, value)
    config = S3SinkConfig(
        bucket="tls", endpoint_url=url, prefix=unique("p"), transfer_client=transfer
    )
    destination = open_destination(config)

    with pytest.raises(SinkError, match="certificate verify failed"):  # said at start
        destination.check()
