"""Whether a failed write can pass on a retry is decided where the condition is, per case.

A request the store refuses for good stops the sink with the reason (retrying would loop
for ever); one that may pass pauses it and retries. The store's own exception types are
built here as the client raises them; the destinations' writes against the real stores
are the object-store tests'.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from google.api_core import exceptions as gcs
from requests.exceptions import ConnectionError as RequestsConnectionError

from kafkube.consumers import gcssink, s3sink
from kafkube.consumers.filesink import FileDestination
from kafkube.consumers.settings import FileSinkConfig
from kafkube.core.errors import SinkError, SinkRefusedError


def _s3(status: int, code: str) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (_s3(403, "AccessDenied"), False),
        (_s3(403, "InvalidAccessKeyId"), False),
        (_s3(404, "NoSuchBucket"), False),
        (_s3(400, "InvalidArgument"), False),
        (_s3(503, "SlowDown"), True),
        (_s3(500, "InternalError"), True),
        (_s3(429, "TooManyRequests"), True),
        (_s3(408, "RequestTimeout"), True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
    ],
)
def test_s3_refusals_stop_and_the_rest_retries(error: Exception, retriable: bool) -> None:  # noqa: FBT001
    classified = s3sink.store_error("s3://b/k", error)

    assert classified.retriable is retriable
    assert isinstance(classified, SinkRefusedError) is not retriable
    assert "s3://b/k" in str(classified)


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (gcs.Forbidden("no storage.objects.create"), False),
        (gcs.Unauthorized("no credentials"), False),
        (gcs.NotFound("no such bucket"), False),
        (gcs.BadRequest("invalid object name"), False),
        (gcs.ServiceUnavailable("backend error"), True),
        (gcs.InternalServerError("oops"), True),
        (gcs.TooManyRequests("rate"), True),
        (gcs.PreconditionFailed("generation moved: another writer"), True),
        (RequestsConnectionError("connection refused"), True),
        (ConnectionResetError("broken pipe"), True),
    ],
)
def test_gcs_refusals_stop_and_the_rest_retries(error: Exception, retriable: bool) -> None:  # noqa: FBT001
    classified = gcssink.store_error("gs://b/k", error)

    assert classified.retriable is retriable
    assert isinstance(classified, SinkRefusedError) is not retriable


def test_a_name_outside_the_directory_is_refused_for_good(tmp_path: Path) -> None:
    destination = FileDestination(FileSinkConfig(dir=tmp_path / "out"))
    destination.check()

    with pytest.raises(SinkRefusedError, match="outside") as refused:
        destination.put("../escaped.avro", b"x", {})
    assert refused.value.retriable is False
    assert not (tmp_path / "escaped.avro").exists()


def test_a_disk_that_refuses_the_write_may_pass_later(tmp_path: Path) -> None:
    destination = FileDestination(FileSinkConfig(dir=tmp_path / "out"))
    destination.check()
    (tmp_path / "out" / "topic").write_text("a file where a folder must go")

    with pytest.raises(SinkError) as failed:
        destination.put("topic/dt=2026-11-28/x.avro", b"x", {})
    assert failed.value.retriable is True
